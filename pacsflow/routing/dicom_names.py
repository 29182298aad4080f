"""The DICOM names a rules file may use, checked against pydicom's dictionaries.

Rules are written by people, so names are resolved once, when the file is loaded: a typo
becomes an error naming the rule (with a suggestion), not a rule that silently never matches.
"""

from __future__ import annotations

import difflib
import re
from functools import cache

from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import dictionary_VR, keyword_dict, tag_for_keyword

from pacsflow.dicom.uid import is_valid_uid

SOP_CLASS = "SOP Class"  # the UID type pydicom's dictionary gives SOP classes
RETIRED = "Retired"
# Values of these VRs are bytes or nested data sets: nothing a rule can compare with text.
UNMATCHABLE_VRS = frozenset({"SQ", "OB", "OD", "OF", "OL", "OV", "OW", "UN"})
# PS3.5 6.2 CS: upper-case letters, digits, space and underscore, up to 16 characters.
_MODALITY = re.compile(r"[A-Z0-9_ ]{1,16}")


def _normalized(name: str) -> str:
    """Names compare ignoring case and spaces, so "Segmentation Storage" = "SegmentationStorage"."""
    return "".join(name.split()).casefold()


@cache
def _sop_classes_by_name() -> dict[str, str]:
    """Normalized name and keyword of every SOP class → UID; current classes win over retired."""
    by_name: dict[str, str] = {}
    entries = sorted(UID_dictionary.items(), key=lambda item: item[1][3] != RETIRED)
    for uid, (name, uid_type, _info, _retired, keyword) in entries:
        if uid_type == SOP_CLASS:
            for label in (name, keyword):
                if label:
                    by_name[_normalized(label)] = uid
    return by_name


def _suggestion(word: str, candidates: dict[str, str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return f'; did you mean "{candidates[close[0]]}"?' if close else ""


def resolve_sop_class(value: str) -> str:
    """The UID of a SOP class given by UID, name or keyword.

    UIDs that pydicom does not know are accepted: private SOP classes are real.
    """
    value = value.strip()
    if is_valid_uid(value):
        known = UID_dictionary.get(value)
        if known is not None and known[1] != SOP_CLASS:
            raise ValueError(f'"{value}" is a {known[1]} UID ({known[0]}), not a SOP class')
        return value
    uid = _sop_classes_by_name().get(_normalized(value))
    if uid is None:
        names = {
            _normalized(entry[0]): entry[0]
            for entry in UID_dictionary.values()
            if entry[1] == SOP_CLASS and entry[0]
        }
        hint = _suggestion(_normalized(value), names)
        raise ValueError(f'unknown SOP class "{value}": give its UID, name or keyword{hint}')
    return uid


def check_keyword(keyword: str) -> str:
    """A DICOM attribute keyword whose values a rule can compare as text or numbers."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        keywords = {name: name for name in keyword_dict}
        hint = _suggestion(keyword, keywords)
        raise ValueError(f'unknown DICOM keyword "{keyword}" (keywords are case-sensitive){hint}')
    vr = dictionary_VR(tag)  # some are ambiguous, e.g. "OB or OW"
    if UNMATCHABLE_VRS.intersection(vr.split(" or ")):
        raise ValueError(f"{keyword} has VR {vr}: its values cannot be matched")
    return keyword


def check_modality(value: str) -> str:
    """A Modality code (CS), so that "ct" is caught instead of never matching."""
    value = value.strip()
    if not _MODALITY.fullmatch(value):
        raise ValueError(f'"{value}" is not a Modality code: use capitals, e.g. CT, MR, SEG')
    return value
