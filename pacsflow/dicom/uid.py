"""UID validation: storage paths derive from UIDs, so only safe UIDs may pass."""

from __future__ import annotations

import re

MAX_UID_LENGTH = 64
# PS3.5 9.1 allows only digits and dots; components may not be empty. Leading zeros in a
# component are invalid too, but real modalities send them, and they are harmless for paths.
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class InvalidUIDError(ValueError):
    """A UID is missing or malformed; the message names the attribute."""


def is_valid_uid(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_UID_LENGTH and bool(_UID.match(value))


def check_uid(value: object, attribute: str) -> str:
    """Return ``value`` as a UID string, or raise naming ``attribute`` and the problem."""
    if value is None or value == "":
        raise InvalidUIDError(f"{attribute} is missing")
    text = str(value).rstrip("\x00 ")
    if len(text) > MAX_UID_LENGTH:
        raise InvalidUIDError(f"{attribute} is longer than {MAX_UID_LENGTH} characters")
    if not _UID.match(text):
        raise InvalidUIDError(
            f"{attribute} {text[:80]!r} is not a valid UID (digits and dots only)"
        )
    return text
