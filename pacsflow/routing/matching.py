"""Which actions the routing rules give for one series.

Matching needs no database and no network: the caller gathers the facts about the series
(:class:`SeriesFacts`, usually from its DICOM JSON via DICOMweb) and gets the actions back.

Comparisons follow PS3.4 C.2.2.2: case-sensitive, leading and trailing spaces ignored;
a multi-valued attribute matches when any of its values does; wildcards use ``*`` (any
sequence, also empty) and ``?`` (one character); regular expressions must match the whole
value (``re.fullmatch``; write ``.*foo.*`` to search, ``(?i)`` to ignore case).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydicom.datadict import tag_for_keyword

from pacsflow.archive.ingest import SourceKind
from pacsflow.routing.rules import Action, Match, Rule, RuleSet, ValueMatcher

# One instance's DICOM JSON (PS3.18 F.2): {"00080060": {"vr": "CS", "Value": ["CT"]}, ...}
DicomJson = Mapping[str, Any]
MODALITY_TAG = "00080060"
SOP_CLASS_UID_TAG = "00080016"


@dataclass(frozen=True)
class SeriesFacts:
    """What rules may look at in a series: who sent it, what it is, one instance's header."""

    modality: str
    sop_class_uids: frozenset[str]
    source: SourceKind
    calling_ae: str = ""
    called_ae: str = ""
    header: DicomJson = field(default_factory=dict)

    @classmethod
    def from_dicom_json(
        cls,
        instances: Sequence[DicomJson],
        source: SourceKind,
        calling_ae: str = "",
        called_ae: str = "",
    ) -> SeriesFacts:
        """Facts from a series' metadata (WADO-RS); the first instance stands for the header."""
        if not instances:
            raise ValueError("a series has at least one instance")
        sop_classes = {uid for instance in instances for uid in _texts(instance, SOP_CLASS_UID_TAG)}
        modalities = _texts(instances[0], MODALITY_TAG)
        return cls(
            modality=modalities[0] if modalities else "",
            sop_class_uids=frozenset(sop_classes),
            source=source,
            calling_ae=calling_ae,
            called_ae=called_ae,
            header=instances[0],
        )


def matching_actions(ruleset: RuleSet, facts: SeriesFacts) -> list[tuple[Rule, Action]]:
    """The actions of every enabled rule that matches, in file order, up to a ``stop`` rule."""
    found: list[tuple[Rule, Action]] = []
    for rule in ruleset.rules:
        if not rule.enabled or not matches(rule.match, facts):
            continue
        found.extend((rule, action) for action in rule.actions)
        if rule.stop:
            break
    return found


def matches(match: Match, facts: SeriesFacts) -> bool:
    """Whether every condition given in ``match`` holds for the series."""
    if match.modality and facts.modality.strip() not in match.modality:
        return False
    if match.sop_class and not facts.sop_class_uids.intersection(match.sop_class):
        return False
    if match.source and facts.source not in match.source:
        return False
    if match.calling_ae and not _any_wildcard(match.calling_ae, facts.calling_ae.strip()):
        return False
    if match.called_ae and not _any_wildcard(match.called_ae, facts.called_ae.strip()):
        return False
    return all(
        _header_matches(keyword, matchers, facts.header)
        for keyword, matchers in match.headers.items()
    )


def _header_matches(keyword: str, matchers: Iterable[ValueMatcher], header: DicomJson) -> bool:
    tag = tag_for_keyword(keyword)
    values = header_values(header, f"{tag:08X}") if tag is not None else []
    return any(_value_matches(matcher, value) for matcher in matchers for value in values)


def _value_matches(matcher: ValueMatcher, value: str | int | float) -> bool:
    text = value.strip() if isinstance(value, str) else str(value)
    if matcher.wildcard is not None:
        return wildcard_pattern(matcher.wildcard).fullmatch(text) is not None
    if matcher.regex is not None:
        return re.fullmatch(matcher.regex, text) is not None
    expected = matcher.equals
    if isinstance(expected, str) and isinstance(value, str):
        return expected.strip() == text
    expected_number = _number(expected)
    return expected_number is not None and expected_number == _number(value)


def _number(value: str | int | float | None) -> float | None:
    """Numbers compare as numbers: ``SeriesNumber: 5`` matches IS "5", and 2.5 matches DS "2.50"."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _any_wildcard(patterns: Iterable[str], text: str) -> bool:
    return any(wildcard_pattern(pattern).fullmatch(text) for pattern in patterns)


@lru_cache(maxsize=1024)
def wildcard_pattern(wildcard: str) -> re.Pattern[str]:
    """A DICOM wildcard as a regular expression: ``*`` any sequence, ``?`` one character."""
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in wildcard)
    return re.compile("".join(parts), re.DOTALL)


def header_values(header: DicomJson, tag: str) -> list[str | int | float]:
    """An attribute's values in DICOM JSON; person names as their Alphabetic component."""
    element = header.get(tag)
    if not isinstance(element, Mapping):
        return []
    return [value for value in _values(element) if value is not None]


def _values(element: Mapping[str, Any]) -> Iterator[str | int | float | None]:
    for value in element.get("Value", []):
        if isinstance(value, Mapping):  # PN: {"Alphabetic": ..., "Ideographic": ...}
            yield value.get("Alphabetic")
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            yield value


def _texts(header: DicomJson, tag: str) -> list[str]:
    return [value.strip() for value in header_values(header, tag) if isinstance(value, str)]
