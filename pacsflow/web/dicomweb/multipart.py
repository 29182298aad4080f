"""multipart/related responses (PS3.18 8.6.1.2) streamed part by part, and Accept parsing.

Bodies are generators: instances and frames go out as they are read from storage, so a
series retrieve never holds more than one chunk in memory. Parsing of STOW request bodies
lives in ``stow.py``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from flask import Response

from pacsflow.web.dicomweb.common import MediaType

CRLF = b"\r\n"
# Tokens of an Accept header: commas split media ranges, except inside quoted strings.
_ACCEPT_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[^,"]+|,')
_PARAMETER = re.compile(r'\s*;\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
WILDCARD = "*/*"


@dataclass(frozen=True)
class MediaRange:
    """One media range of an Accept header, e.g. multipart/related; type="image/jls"."""

    media_type: str  # lower case
    parameters: dict[str, str] = field(default_factory=dict)  # names in lower case
    quality: float = 1.0

    @property
    def part_type(self) -> str | None:
        """The ``type`` parameter of a multipart range, in lower case."""
        value = self.parameters.get("type")
        return value.lower() if value else None

    @property
    def transfer_syntax(self) -> str | None:
        return self.parameters.get("transfer-syntax")

    def matches(self, media_type: str) -> bool:
        """Whether ``media_type`` (no wildcards) falls in this range (``*/*``, ``image/*``)."""
        return media_type_matches(self.media_type, media_type)


def media_type_matches(pattern: str, media_type: str) -> bool:
    """``pattern`` may be ``*/*`` or ``type/*``; comparison ignores case."""
    pattern, media_type = pattern.lower(), media_type.lower()
    if pattern in (WILDCARD, media_type):
        return True
    return pattern.endswith("/*") and media_type.startswith(pattern[:-1])


def parse_accept(header: str | None) -> list[MediaRange]:
    """The ranges of an Accept header, most preferred first; ``*/*`` when absent or empty.

    Ranges with q=0 are dropped; equal q keeps the client's order (RFC 9110 12.5.1).
    """
    if not header or not header.strip():
        return [MediaRange(WILDCARD)]
    ranges = [parsed for text in _split_ranges(header) if (parsed := _parse_range(text))]
    return sorted((r for r in ranges if r.quality > 0), key=lambda r: -r.quality)


def _split_ranges(header: str) -> Iterator[str]:
    current: list[str] = []
    for token in _ACCEPT_TOKEN.findall(header):
        if token == ",":
            yield "".join(current)
            current = []
        else:
            current.append(token)
    yield "".join(current)


def _parse_range(text: str) -> MediaRange | None:
    media_type, _, rest = text.strip().partition(";")
    media_type = media_type.strip().lower()
    if "/" not in media_type:
        return None
    parameters: dict[str, str] = {}
    for name, value in _PARAMETER.findall(";" + rest):
        value = value.strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        parameters[name.lower()] = value
    try:
        quality = float(parameters.pop("q", "1"))
    except ValueError:
        quality = 1.0
    return MediaRange(media_type, parameters, min(max(quality, 0.0), 1.0))


def content_type(media_type: str, transfer_syntax: str | None = None) -> str:
    """A part's Content-Type, with the transfer-syntax parameter when there is one."""
    if transfer_syntax:
        return f"{media_type}; transfer-syntax={transfer_syntax}"
    return media_type


@dataclass(frozen=True)
class Part:
    """One body part: its Content-Type and a way to produce its bytes when it is sent."""

    content_type: str
    chunks: Callable[[], Iterable[bytes]]
    location: str | None = None

    def header(self) -> bytes:
        lines = [f"Content-Type: {self.content_type}"]
        if self.location:
            lines.append(f"Content-Location: {self.location}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def new_boundary() -> str:
    """A boundary that cannot occur in the parts with any useful probability."""
    return f"pacsflow-{secrets.token_hex(16)}"


def multipart_body(parts: Iterable[Part], boundary: str) -> Iterator[bytes]:
    """The body of a multipart/related message; small pieces are joined to few writes."""
    delimiter = b"--" + boundary.encode("ascii") + CRLF
    lead = b""
    for part in parts:
        pending = lead + delimiter + part.header()
        for chunk in part.chunks():
            if pending:
                if len(chunk) < 65536:
                    chunk = pending + chunk
                else:
                    yield pending
                pending = b""
            if chunk:
                yield chunk
        if pending:
            yield pending
        lead = CRLF
    yield lead + b"--" + boundary.encode("ascii") + b"--" + CRLF


def multipart_response(
    parts: Iterable[Part], part_type: str, status: int = 200, boundary: str | None = None
) -> Response:
    """A streamed multipart/related response whose parts are of ``part_type``."""
    boundary = boundary or new_boundary()
    mimetype = f'{MediaType.MULTIPART_RELATED}; type="{part_type}"; boundary={boundary}'
    response = Response(
        multipart_body(parts, boundary),
        status=status,
        content_type=mimetype,
        direct_passthrough=True,
    )
    return response


__all__ = [
    "MediaRange",
    "Part",
    "content_type",
    "media_type_matches",
    "multipart_body",
    "multipart_response",
    "new_boundary",
    "parse_accept",
]
