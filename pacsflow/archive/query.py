"""QIDO-RS searches over the archive index (PS3.18 10.6, matching per PS3.4 C.2.2.2).

A search is parsed from query parameters into a :class:`Query` (one matcher per attribute),
compiled into a single SQLAlchemy ``select`` on the level's table joined to its parents, and
answered from row columns as DICOM JSON. Only attributes that are not index columns come
from the stored DICOM JSON of a representative instance, fetched in one more query per page.
Nothing here knows about HTTP, so the dashboard and the REST API can search the same way.

Matching choices where PS3.4 leaves room (the conformance statement should repeat them):

- Person names match case-insensitively, through the upper-cased ``*_name_search`` columns;
  every other attribute matches case-sensitively.
- ``fuzzymatching=true`` makes a person name match when any of its components (split on
  ``^``, ``=`` or space) starts with the value, case-insensitively; wildcards still apply.
- UID attributes take a list of UIDs separated by ``,`` or ``\\``; ModalitiesInStudy takes a
  list too and matches a study holding any of the values (OR, not PS3.4 C.2.2.2.8's AND).
- A single time value matches every time it is a prefix of (``1030`` matches 10:30:00 to
  10:30:59.999999); range bounds are padded the same way. Empty dates and times never match a
  range. StudyDate and StudyTime are matched independently, never as one date-time.
- An attribute given more than once must repeat the same value, except UID lists and
  ModalitiesInStudy, whose values are joined.
- Universal matching (an empty value) on any known attribute only asks for it to be returned.
- Unknown parameters, and attributes the level cannot match on, are refused (400) rather than
  ignored, so a client never mistakes an ignored filter for an empty result.
- At most :data:`MAX_RESULTS` matches are returned per request; more are left for paging.

The PATIENT level is not part of QIDO-RS; it serves the C-FIND Patient Root model and matches
on the patients table, with NumberOfPatientRelated* counted from the patient's studies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from functools import cached_property
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_dict, keyword_for_tag, tag_for_keyword
from sqlalchemy import ColumnElement, Select, String, and_, exists, func, literal, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from pacsflow.archive.attributes import name_search_key
from pacsflow.archive.dicomjson import PIXEL_DATA_TAGS, with_root
from pacsflow.archive.models import Instance, Patient, Series, Study
from pacsflow.dicom.uid import is_valid_uid

LIKE_ESCAPE = "!"
MAX_RESULTS = 10_000
SPECIFIC_CHARACTER_SET = "ISO_IR 192"  # the JSON is UTF-8 whatever the stored encoding
ONLINE = "ONLINE"
MORE_RESULTS_WARNING = '299 pacsflow: "There are additional results that can be requested"'
EMPTY_VALUE_MATCHING_WARNING = (
    '299 pacsflow: "The emptyvaluematching parameter is not supported. '
    'Empty Value Matching has not been performed."'
)

INCLUDEFIELD = "includefield"
LIMIT = "limit"
OFFSET = "offset"
FUZZYMATCHING = "fuzzymatching"
EMPTYVALUEMATCHING = "emptyvaluematching"
CONTROL_PARAMETERS = (INCLUDEFIELD, LIMIT, OFFSET, FUZZYMATCHING, EMPTYVALUEMATCHING)
ALL = "all"

_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?$")
_TIME_DIGITS = 12  # HHMMSS plus six fraction digits, the form times are compared in
_WILDCARDS = frozenset("*?")
_MAX_INTEGER = 2**31 - 1  # IS and US values, limits and offsets all fit a signed 32-bit int

SqlColumn = ColumnElement[Any] | InstrumentedAttribute[Any]


class Level(Enum):
    """The query levels, parents first; QIDO-RS uses STUDY to INSTANCE, C-FIND all four."""

    PATIENT = "patient"
    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"

    @property
    def parents(self) -> tuple[Level, ...]:
        return {
            Level.PATIENT: (),
            Level.STUDY: (),
            Level.SERIES: (Level.STUDY,),
            Level.INSTANCE: (Level.SERIES, Level.STUDY),
        }[self]


class Matching(Enum):
    """How an attribute's value is matched (PS3.4 C.2.2.2), by VR and by how it is stored."""

    UID = "uid"  # single value or UID list
    TEXT = "text"  # single value or wildcard, case-sensitive
    PERSON_NAME = "person name"  # single value, wildcard or fuzzy, case-insensitive
    DATE = "date"  # single value or range
    TIME = "time"  # prefix or range, after normalising to HHMMSS.FFFFFF
    INTEGER = "integer"  # single value
    MODALITIES = "modalities"  # any of a list, single values or wildcards
    NONE = "none"  # returned only; universal matching is all it takes


class QueryError(ValueError):
    """A query parameter is wrong; the message names it and says what is expected."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True, eq=False)
class Attribute:
    """An attribute the index keeps (or computes) at one level."""

    keyword: str
    level: Level
    matching: Matching
    column: SqlColumn | None = None  # a mapped column, or an expression such as a count
    search_column: InstrumentedAttribute[Any] | None = None  # upper-cased person names
    per_study: Any = None  # for a patient total: the aggregate over the patient's studies
    tag: int = field(init=False)
    vr: str = field(init=False)
    hex_tag: str = field(init=False)

    def __post_init__(self) -> None:
        tag = tag_for_keyword(self.keyword)
        if tag is None:
            raise ValueError(f"{self.keyword} is not a DICOM keyword")
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "vr", dictionary_VR(tag))
        object.__setattr__(self, "hex_tag", f"{tag:08X}")


def _attributes(level: Level, *specs: tuple[Any, ...]) -> dict[int, Attribute]:
    result = {}
    for spec in specs:
        attribute = Attribute(spec[0], level, *spec[1:])
        result[attribute.tag] = attribute
    return result


_COMPUTED = (
    ("SpecificCharacterSet", Matching.NONE),
    ("RetrieveURL", Matching.NONE),
)


def _patient_total(expression: Any, visible: ColumnElement[bool] | None = None) -> Any:
    """A count over the patient's (``visible``) studies, computed per row so it never goes
    stale."""
    statement = select(func.coalesce(expression, 0)).where(Study.patient_fk == Patient.id)
    if visible is not None:
        statement = statement.where(visible)
    return statement.correlate(Patient).scalar_subquery()


def _total(keyword: str, expression: Any) -> tuple[Any, ...]:
    return (keyword, Matching.NONE, _patient_total(expression), None, expression)


ATTRIBUTES: dict[Level, dict[int, Attribute]] = {
    Level.PATIENT: _attributes(
        Level.PATIENT,
        ("SpecificCharacterSet", Matching.NONE),
        ("PatientName", Matching.PERSON_NAME, Patient.patient_name, Patient.patient_name_search),
        ("PatientID", Matching.TEXT, Patient.patient_id),
        ("IssuerOfPatientID", Matching.TEXT, Patient.issuer_of_patient_id),
        ("PatientBirthDate", Matching.DATE, Patient.patient_birth_date),
        ("PatientSex", Matching.TEXT, Patient.patient_sex),
        _total("NumberOfPatientRelatedStudies", func.count(Study.id)),
        _total("NumberOfPatientRelatedSeries", func.sum(Study.number_of_series)),
        _total("NumberOfPatientRelatedInstances", func.sum(Study.number_of_instances)),
    ),
    Level.STUDY: _attributes(
        Level.STUDY,
        *_COMPUTED,
        ("InstanceAvailability", Matching.NONE),
        ("StudyInstanceUID", Matching.UID, Study.study_instance_uid),
        ("StudyDate", Matching.DATE, Study.study_date),
        ("StudyTime", Matching.TIME, Study.study_time),
        ("AccessionNumber", Matching.TEXT, Study.accession_number),
        ("ModalitiesInStudy", Matching.MODALITIES, Study.modalities_in_study),
        (
            "ReferringPhysicianName",
            Matching.PERSON_NAME,
            Study.referring_physician_name,
            Study.referring_physician_name_search,
        ),
        ("TimezoneOffsetFromUTC", Matching.TEXT, Study.timezone_offset_from_utc),
        ("PatientName", Matching.PERSON_NAME, Study.patient_name, Study.patient_name_search),
        ("PatientID", Matching.TEXT, Study.patient_id),
        ("PatientBirthDate", Matching.DATE, Study.patient_birth_date),
        ("PatientSex", Matching.TEXT, Study.patient_sex),
        ("StudyID", Matching.TEXT, Study.study_id),
        ("StudyDescription", Matching.TEXT, Study.study_description),
        ("NumberOfStudyRelatedSeries", Matching.NONE, Study.number_of_series),
        ("NumberOfStudyRelatedInstances", Matching.NONE, Study.number_of_instances),
    ),
    Level.SERIES: _attributes(
        Level.SERIES,
        *_COMPUTED,
        ("SeriesInstanceUID", Matching.UID, Series.series_instance_uid),
        ("Modality", Matching.TEXT, Series.modality),
        ("SeriesNumber", Matching.INTEGER, Series.series_number),
        ("SeriesDescription", Matching.TEXT, Series.series_description),
        ("BodyPartExamined", Matching.TEXT, Series.body_part_examined),
        (
            "PerformedProcedureStepStartDate",
            Matching.DATE,
            Series.performed_procedure_step_start_date,
        ),
        (
            "PerformedProcedureStepStartTime",
            Matching.TIME,
            Series.performed_procedure_step_start_time,
        ),
        ("TimezoneOffsetFromUTC", Matching.TEXT, Series.timezone_offset_from_utc),
        ("NumberOfSeriesRelatedInstances", Matching.NONE, Series.number_of_instances),
    ),
    Level.INSTANCE: _attributes(
        Level.INSTANCE,
        *_COMPUTED,
        ("InstanceAvailability", Matching.NONE),
        ("SOPInstanceUID", Matching.UID, Instance.sop_instance_uid),
        ("SOPClassUID", Matching.UID, Instance.sop_class_uid),
        ("InstanceNumber", Matching.INTEGER, Instance.instance_number),
        ("Rows", Matching.INTEGER, Instance.rows),
        ("Columns", Matching.INTEGER, Instance.columns),
        ("BitsAllocated", Matching.INTEGER, Instance.bits_allocated),
        ("NumberOfFrames", Matching.INTEGER, Instance.number_of_frames),
        ("TimezoneOffsetFromUTC", Matching.TEXT, Instance.timezone_offset_from_utc),
    ),
}

_UID_KEYWORDS = {
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.INSTANCE: "SOPInstanceUID",
}

# PS3.18 tables 10.6.3-3 to -5; series and instance results also carry their parents' UIDs.
_DEFAULTS: dict[Level, tuple[tuple[Level, str], ...]] = {
    Level.PATIENT: tuple(
        (Level.PATIENT, keyword)
        for keyword in (
            "SpecificCharacterSet",
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "PatientSex",
        )
    ),
    Level.STUDY: tuple(
        (Level.STUDY, keyword)
        for keyword in (
            "SpecificCharacterSet",
            "StudyDate",
            "StudyTime",
            "AccessionNumber",
            "InstanceAvailability",
            "ModalitiesInStudy",
            "ReferringPhysicianName",
            "TimezoneOffsetFromUTC",
            "RetrieveURL",
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "PatientSex",
            "StudyInstanceUID",
            "StudyID",
            "NumberOfStudyRelatedSeries",
            "NumberOfStudyRelatedInstances",
            "StudyDescription",
        )
    ),
    Level.SERIES: (
        *(
            (Level.SERIES, keyword)
            for keyword in (
                "SpecificCharacterSet",
                "Modality",
                "TimezoneOffsetFromUTC",
                "SeriesDescription",
                "RetrieveURL",
                "SeriesInstanceUID",
                "SeriesNumber",
                "NumberOfSeriesRelatedInstances",
                "PerformedProcedureStepStartDate",
                "PerformedProcedureStepStartTime",
                "BodyPartExamined",
            )
        ),
        (Level.STUDY, "StudyInstanceUID"),
    ),
    Level.INSTANCE: (
        *(
            (Level.INSTANCE, keyword)
            for keyword in (
                "SpecificCharacterSet",
                "SOPClassUID",
                "SOPInstanceUID",
                "InstanceAvailability",
                "TimezoneOffsetFromUTC",
                "RetrieveURL",
                "InstanceNumber",
                "Rows",
                "Columns",
                "BitsAllocated",
                "NumberOfFrames",
            )
        ),
        (Level.STUDY, "StudyInstanceUID"),
        (Level.SERIES, "SeriesInstanceUID"),
    ),
}
# Returned only when they have a value ("if present" in PS3.18 tables 10.6.3-3 to -5).
_OMIT_WHEN_EMPTY = frozenset({tag_for_keyword("TimezoneOffsetFromUTC")})


def _by_keyword(level: Level, keyword: str) -> Attribute:
    return ATTRIBUTES[level][tag_for_keyword(keyword)]  # type: ignore[index]


_DEFAULT_ATTRIBUTES = {
    level: tuple(_by_keyword(owner, keyword) for owner, keyword in defaults)
    for level, defaults in _DEFAULTS.items()
}


def default_attributes(level: Level) -> tuple[Attribute, ...]:
    """The attributes every result at ``level`` carries."""
    return _DEFAULT_ATTRIBUTES[level]


def resolve(level: Level, tag: int) -> Attribute | None:
    """The index attribute for ``tag`` at ``level``: the level's own first, then its parents'."""
    for candidate in (level, *level.parents):
        attribute = ATTRIBUTES[candidate].get(tag)
        if attribute is not None:
            return attribute
    return None


@dataclass(frozen=True, eq=False)
class Matcher:
    """One attribute's condition; ``condition`` is None for universal matching."""

    attribute: Attribute
    condition: ColumnElement[bool] | None


@dataclass(frozen=True, eq=False)
class Query:
    """A parsed QIDO-RS search at one level."""

    level: Level
    matchers: tuple[Matcher, ...] = ()
    include_tags: frozenset[int] = frozenset()  # includefield tags that are not index columns
    include_all: bool = False
    limit: int = MAX_RESULTS  # at most MAX_RESULTS, whatever the client asked for
    offset: int = 0
    warnings: tuple[str, ...] = ()
    # The studies the asker may see (pacsflow.archive.access); None: all of them.
    visible: ColumnElement[bool] | None = None

    @cached_property
    def returned(self) -> tuple[Attribute, ...]:
        """Column and computed attributes of each result, defaults first, no duplicates."""
        seen: dict[tuple[Level, int], Attribute] = {}
        for attribute in (
            *default_attributes(self.level),
            *(m.attribute for m in self.matchers),
        ):
            seen.setdefault((attribute.level, attribute.tag), attribute)
        return tuple(seen.values())

    @cached_property
    def columns(self) -> dict[Attribute, Any]:
        """The SQL expression of each returned attribute that has one; patient totals count
        only the visible studies, so no count tells of a study the asker may not see."""
        return {
            attribute: (
                _patient_total(attribute.per_study, self.visible)
                if attribute.per_study is not None and self.visible is not None
                else attribute.column
            )
            for attribute in self.returned
            if attribute.column is not None
        }


@dataclass
class SearchResult:
    """A page of matches as DICOM JSON, and whether more matches are left to page through."""

    matches: list[dict[str, Any]]
    more: bool
    warnings: list[str] = field(default_factory=list)


# -- parsing ---------------------------------------------------------------------------------


def parse_tag(text: str) -> int | None:
    """A keyword (``PatientName``) or 8 hex digits (``00100010``) as a tag; None if neither."""
    if _TAG.match(text):
        return int(text, 16)
    return tag_for_keyword(text)


def _name(tag: int) -> str:
    keyword = keyword_for_tag(tag)
    return f"{keyword} ({tag:08X})" if keyword else f"({tag:08X})"


def _keyword_hint(text: str) -> str:
    lowered = text.lower()
    for keyword in keyword_dict:
        if keyword.lower() == lowered:
            return f"; did you mean {keyword}?"
    return ""


def parse_query(
    level: Level,
    parameters: Iterable[tuple[str, str]],
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> Query:
    """Parse query parameters (name, value pairs, repeats allowed) for a search at ``level``.

    ``study_uid`` and ``series_uid`` are the UIDs of the resource path, e.g.
    ``/studies/{study}/series``. Raises :class:`QueryError` naming the wrong parameter.
    """
    values: dict[int, list[tuple[str, str]]] = {}
    controls: dict[str, list[str]] = {}
    for name, value in parameters:
        if name in CONTROL_PARAMETERS:
            controls.setdefault(name, []).append(value)
            continue
        tag = parse_tag(name)
        if tag is None:
            raise QueryError(
                name,
                f"unknown query parameter {name!r}: give a DICOM keyword or an 8-digit hex tag, "
                f"or one of {', '.join(CONTROL_PARAMETERS)}{_keyword_hint(name)}",
            )
        values.setdefault(tag, []).append((name, value))

    fuzzy = _parse_boolean(FUZZYMATCHING, controls.get(FUZZYMATCHING, []))
    warnings = []
    if _parse_boolean(EMPTYVALUEMATCHING, controls.get(EMPTYVALUEMATCHING, [])):
        warnings.append(EMPTY_VALUE_MATCHING_WARNING)

    matchers = [_path_matcher(Level.STUDY, study_uid), _path_matcher(Level.SERIES, series_uid)]
    extra_tags: set[int] = set()
    for tag, given in values.items():
        attribute = resolve(level, tag)
        texts = [v for _, v in given]
        if attribute is None:
            if any(texts):
                raise QueryError(
                    given[0][0],
                    f"{_name(tag)} cannot be matched on in a {level.value}-level search; "
                    f"matchable here: {', '.join(matchable_keywords(level))} (an attribute "
                    "given without a value, or in includefield, is only returned)",
                )
            extra_tags.add(tag)
            continue
        matchers.append(_matcher(attribute, given, fuzzy=fuzzy))

    items = [
        item
        for value in controls.get(INCLUDEFIELD, [])
        for item in (part.strip() for part in value.split(","))
        if item
    ]
    include_all = ALL in items
    if include_all and len(items) > 1:
        raise QueryError(
            INCLUDEFIELD, "includefield=all includes everything; give no other includefield"
        )
    if not include_all:
        for item in items:
            tag = parse_tag(item)
            if tag is None:
                raise QueryError(
                    INCLUDEFIELD,
                    f"includefield {item!r} is neither a DICOM keyword, an 8-digit hex tag "
                    f"nor 'all'{_keyword_hint(item)}",
                )
            attribute = resolve(level, tag)
            if attribute is None:
                extra_tags.add(tag)
            else:
                matchers.append(Matcher(attribute, None))

    limit = _parse_count(LIMIT, controls.get(LIMIT, []))
    offset = _parse_count(OFFSET, controls.get(OFFSET, []))
    return Query(
        level=level,
        matchers=tuple(m for m in matchers if m is not None),
        include_tags=frozenset() if include_all else frozenset(extra_tags),
        include_all=include_all,
        limit=MAX_RESULTS if limit is None else min(limit, MAX_RESULTS),
        offset=offset or 0,
        warnings=tuple(warnings),
    )


def matchable_keywords(level: Level) -> list[str]:
    """Keywords a search at ``level`` can match on (its own and its parents' columns)."""
    keywords: list[str] = []
    for candidate in (level, *level.parents):
        for attribute in ATTRIBUTES[candidate].values():
            if attribute.matching is not Matching.NONE and attribute.keyword not in keywords:
                keywords.append(attribute.keyword)
    return keywords


def _single(parameter: str, values: Sequence[str]) -> str | None:
    distinct = set(values)
    if len(distinct) > 1:
        raise QueryError(parameter, f"{parameter} is given more than once with different values")
    return values[0] if values else None


def _parse_boolean(parameter: str, values: Sequence[str]) -> bool:
    value = _single(parameter, values)
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise QueryError(parameter, f"{parameter} must be true or false, not {value!r}")


def _parse_count(parameter: str, values: Sequence[str]) -> int | None:
    value = _single(parameter, values)
    if value is None:
        return None
    if not value.isascii() or not value.isdigit():
        raise QueryError(parameter, f"{parameter} must be a non-negative integer, not {value!r}")
    if int(value) > _MAX_INTEGER:
        raise QueryError(parameter, f"{parameter} must be at most {_MAX_INTEGER}")
    return int(value)


def _path_matcher(level: Level, uid: str | None) -> Matcher | None:
    if uid is None:
        return None
    attribute = _by_keyword(level, _UID_KEYWORDS[level])
    if not is_valid_uid(uid):
        raise QueryError(
            attribute.keyword,
            f"{attribute.keyword} {uid[:80]!r} in the path is not a valid UID (digits and dots)",
        )
    return Matcher(attribute, _column(attribute) == uid)


def _column(attribute: Attribute) -> SqlColumn:
    assert attribute.column is not None, attribute.keyword
    return attribute.column


def _matcher(attribute: Attribute, given: list[tuple[str, str]], *, fuzzy: bool) -> Matcher:
    parameter = given[0][0]
    texts = [value for _, value in given if value != ""]
    if not texts:
        return Matcher(attribute, None)
    matching = attribute.matching
    if attribute.keyword == "SpecificCharacterSet":
        return Matcher(attribute, None)  # PS3.4 C.2.2.2: present but never matched
    if matching is Matching.NONE:
        raise QueryError(
            parameter,
            f"{attribute.keyword} is returned but cannot be matched on; give it without a value "
            "or in includefield",
        )
    if matching is Matching.UID:
        uids = [uid for text in texts for uid in re.split(r"[,\\]", text)]
        return Matcher(attribute, _uid_condition(attribute, parameter, uids))
    if matching is Matching.MODALITIES:
        codes = [code for text in texts for code in re.split(r"[,\\]", text)]
        return Matcher(attribute, _modalities_condition(parameter, codes))
    value = _single(parameter, texts)
    assert value is not None
    if matching is Matching.TEXT:
        return Matcher(attribute, _text_condition(_column(attribute), value))
    if matching is Matching.PERSON_NAME:
        return Matcher(attribute, _person_name_condition(attribute, value, fuzzy=fuzzy))
    if matching is Matching.INTEGER:
        return Matcher(attribute, _integer_condition(attribute, parameter, value))
    if matching is Matching.DATE:
        low, high = parse_date_range(parameter, value)
        return Matcher(attribute, _range_condition(_column(attribute), low, high))
    low, high = parse_time_range(parameter, value)
    column = _column(attribute)
    return Matcher(attribute, _range_condition(column, low, high, normalised_time(column)))


# -- conditions ------------------------------------------------------------------------------


def like_pattern(value: str) -> str:
    """A DICOM wildcard value as a LIKE pattern for ``ESCAPE '!'``: ``*``→%, ``?``→_.

    The LIKE metacharacters and the escape character itself match literally.
    """
    out = []
    for char in value:
        if char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        elif char in ("%", "_", LIKE_ESCAPE):
            out.append(LIKE_ESCAPE + char)
        else:
            out.append(char)
    return "".join(out)


def has_wildcard(value: str) -> bool:
    return not _WILDCARDS.isdisjoint(value)


def _like(column: SqlColumn, pattern: str) -> ColumnElement[bool]:
    return column.like(pattern, escape=LIKE_ESCAPE)


def _text_condition(column: SqlColumn, value: str) -> ColumnElement[bool] | None:
    value = value.rstrip(" ")  # trailing spaces are padding in DICOM strings
    if set(value) == {"*"}:
        return None  # PS3.4 C.2.2.2.4: "*" is universal matching
    if has_wildcard(value):
        return _like(column, like_pattern(value))
    return column == value


def _person_name_condition(
    attribute: Attribute, value: str, *, fuzzy: bool
) -> ColumnElement[bool] | None:
    column = attribute.search_column
    assert column is not None, attribute.keyword
    key = name_search_key(value.rstrip(" ^="))  # empty trailing components say nothing
    if not key or set(key) == {"*"}:
        return None
    pattern = like_pattern(key)
    if fuzzy:
        return or_(
            _like(column, pattern + "%"),
            *(_like(column, f"%{separator}{pattern}%") for separator in "^= "),
        )
    if has_wildcard(key):
        return _like(column, pattern)
    if "=" in key:
        return column == key
    # A name without component groups also matches the alphabetic group of one with them.
    return or_(column == key, _like(column, pattern + "=%"))


def _uid_condition(attribute: Attribute, parameter: str, uids: list[str]) -> ColumnElement[bool]:
    uids = [uid.strip() for uid in uids]
    for uid in uids:
        if not is_valid_uid(uid):
            raise QueryError(
                parameter,
                f"{parameter} {uid[:80]!r} is not a valid UID (digits and dots, at most 64 "
                "characters); give one UID or a list separated by ',' or '\\'",
            )
    column = _column(attribute)
    distinct = list(dict.fromkeys(uids))
    return column == distinct[0] if len(distinct) == 1 else column.in_(distinct)


def _modalities_condition(parameter: str, codes: list[str]) -> ColumnElement[bool] | None:
    conditions: list[ColumnElement[bool]] = []
    for code in (code.strip() for code in codes):
        if not code:
            raise QueryError(parameter, f"{parameter} has an empty value in its list")
        if set(code) == {"*"}:
            return None
        if has_wildcard(code):
            # Stored as /CT/SEG/, where a % could reach across values: ask the series instead.
            series = aliased(Series)
            conditions.append(
                exists().where(
                    series.study_fk == Study.id, _like(series.modality, like_pattern(code))
                )
            )
        else:
            conditions.append(_like(Study.modalities_in_study, f"%/{like_pattern(code)}/%"))
    return conditions[0] if len(conditions) == 1 else or_(*conditions)


def _integer_condition(attribute: Attribute, parameter: str, value: str) -> ColumnElement[bool]:
    try:
        number = int(value.strip())
        if abs(number) > _MAX_INTEGER:
            raise ValueError
    except ValueError:
        raise QueryError(
            parameter,
            f"{parameter} must be an integer ({attribute.vr}) of at most {_MAX_INTEGER}, "
            f"not {value[:80]!r}",
        ) from None
    return _column(attribute) == number


def _range_condition(
    column: SqlColumn,
    low: str | None,
    high: str | None,
    compared: SqlColumn | None = None,
) -> ColumnElement[bool]:
    compared = column if compared is None else compared
    if low is not None and low == high and compared is column:
        return column == low
    conditions = [column != ""]  # an empty value has no date to fall in a range
    if low is not None:
        conditions.append(compared >= low)
    if high is not None:
        conditions.append(compared <= high)
    return and_(*conditions)


def normalised_time(column: SqlColumn) -> ColumnElement[Any]:
    """A TM column as 12 digits, HHMMSSFFFFFF, zero-padded, in SQL that both databases run.

    ``10`` becomes ``100000000000`` and ``114243.273`` becomes ``114243273000``; colons of
    the retired ``HH:MM:SS`` form are dropped.
    """
    digits = func.replace(func.replace(column, ".", "", type_=String), ":", "", type_=String)
    return func.substr(digits.concat(literal("0" * _TIME_DIGITS)), 1, _TIME_DIGITS, type_=String)


def parse_date_range(parameter: str, value: str) -> tuple[str | None, str | None]:
    """``20250101``, ``20250101-20251231``, ``-20251231`` or ``20250101-`` as (low, high)."""
    value = value.strip()
    if "-" not in value:
        date = _check_date(parameter, value)
        return date, date
    start, _, end = value.partition("-")
    low = _check_date(parameter, start) if start else None
    high = _check_date(parameter, end) if end else None
    if low is None and high is None:
        raise QueryError(parameter, f"{parameter} range '-' needs a start or an end date")
    if low is not None and high is not None and low > high:
        raise QueryError(parameter, f"{parameter} range {value!r} starts after it ends")
    return low, high


def _check_date(parameter: str, text: str) -> str:
    try:
        if not _DATE.match(text):
            raise ValueError
        datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise QueryError(
            parameter,
            f"{parameter} {text[:40]!r} is not a date: give YYYYMMDD, or a range such as "
            "20250101-20251231, -20251231 or 20250101-",
        ) from None
    return text


def parse_time_range(parameter: str, value: str) -> tuple[str | None, str | None]:
    """A TM value or range as (low, high), each 12 digits HHMMSSFFFFFF.

    Digits not given are zeros in a low bound and nines in a high bound, so ``1030`` alone
    covers 10:30:00 to 10:30:59.999999 and ``-10`` ends at 10:59:59.999999.
    """
    value = value.strip()
    if "-" not in value:
        return _time_bound(parameter, value, "0"), _time_bound(parameter, value, "9")
    start, _, end = value.partition("-")
    low = _time_bound(parameter, start, "0") if start else None
    high = _time_bound(parameter, end, "9") if end else None
    if low is None and high is None:
        raise QueryError(parameter, f"{parameter} range '-' needs a start or an end time")
    if low is not None and high is not None and low > high:
        raise QueryError(parameter, f"{parameter} range {value!r} starts after it ends")
    return low, high


def _time_bound(parameter: str, text: str, fill: str) -> str:
    match = _TIME.match(text)
    hours, minutes, seconds, _ = match.groups() if match else (None, None, None, None)
    if (
        match is None
        or int(hours or 0) > 23
        or int(minutes or 0) > 59
        or int(seconds or 0) > 60  # a leap second
    ):
        raise QueryError(
            parameter,
            f"{parameter} {text[:40]!r} is not a time: give HH, HHMM, HHMMSS or HHMMSS.FFFFFF, "
            "or a range such as 0800-1700",
        )
    digits = text.replace(".", "")
    if fill == "9" and len(digits) < 6:
        # An unstated minute or second runs to 59, not 99, so the bound stays a time.
        digits += "5959"[len(digits) - 2 :]
    return digits.ljust(_TIME_DIGITS, fill)


# -- compiling and running --------------------------------------------------------------------


_IDS = {
    Level.PATIENT: Patient.id,
    Level.STUDY: Study.id,
    Level.SERIES: Series.id,
    Level.INSTANCE: Instance.id,
}


def compile_query(query: Query) -> Select[Any]:
    """One ``select`` for a page of matches, columns as :func:`selected_columns` lists them.

    One row past ``limit`` is asked for, so the caller can tell whether more are left.
    """
    statement = select(*selected_columns(query))
    if query.level is Level.SERIES:
        statement = statement.join(Study, Series.study_fk == Study.id)
    elif query.level is Level.INSTANCE:
        statement = statement.join(Series, Instance.series_fk == Series.id).join(
            Study, Series.study_fk == Study.id
        )
    conditions = [m.condition for m in query.matchers if m.condition is not None]
    if query.visible is not None:
        conditions.append(
            exists().where(Study.patient_fk == Patient.id, query.visible)
            if query.level is Level.PATIENT
            else query.visible
        )
    return (
        statement.where(*conditions)
        .order_by(_IDS[query.level])
        .limit(query.limit + 1)
        .offset(query.offset)
    )


def selected_columns(query: Query) -> list[Any]:
    """The level's id, the UIDs of its RetrieveURL, each returned column once, then (at
    instance level, when includefield needs it) the stored JSON."""
    columns: list[Any] = [_IDS[query.level], *_uid_columns(query.level)]
    for column in query.columns.values():
        if not any(column is c for c in columns):
            columns.append(column)
    if query.level is Level.INSTANCE and _wants_json(query):
        columns.append(Instance.metadata_json)
    return columns


def _uid_columns(level: Level) -> list[InstrumentedAttribute[Any]]:
    """The UIDs a RetrieveURL needs, study first; a patient has none."""
    if level is Level.PATIENT:
        return []
    return [
        Study.study_instance_uid,
        *([Series.series_instance_uid] if level is not Level.STUDY else []),
        *([Instance.sop_instance_uid] if level is Level.INSTANCE else []),
    ]


def _wants_json(query: Query) -> bool:
    return bool(query.include_tags) or query.include_all


def search(session: Session, query: Query, root: str) -> SearchResult:
    """Run ``query``; ``root`` is the absolute DICOMweb root for RetrieveURL and BulkDataURI.

    One SQL query for the results; with includefield attributes that are not index columns
    (or ``all``) one more fetches the representative instances' JSON for the whole page.
    """
    rows = session.execute(compile_query(query)).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    root = root.rstrip("/")
    columns = selected_columns(query)
    uid_count = len(_uid_columns(query.level))
    # (key, attribute, column index or None when computed), in tag order.
    plan = sorted(
        (
            attribute.hex_tag,
            attribute,
            None
            if attribute not in query.columns
            else next(i for i, c in enumerate(columns) if c is query.columns[attribute]),
        )
        for attribute in query.returned
    )
    wants_json = _wants_json(query)
    documents = (
        _representative_json(session, query.level, [r[0] for r in rows]) if wants_json else {}
    )

    matches = []
    for row in rows:
        result: dict[str, Any] = {}
        for key, attribute, index in plan:
            if index is None:
                result[key] = _computed(attribute, row[1 : 1 + uid_count], root)
            elif (element := _element(attribute, row[index])) is not None:
                result[key] = element
        if wants_json:
            text = row[-1] if query.level is Level.INSTANCE else documents.get(row[0])
            if text:
                result = dict(sorted({**_from_json(text, root, query), **result}.items()))
        matches.append(result)
    warnings = list(query.warnings)
    if more:
        warnings.append(MORE_RESULTS_WARNING)
    return SearchResult(matches, more, warnings)


def _representative_json(session: Session, level: Level, ids: list[int]) -> dict[int, str]:
    """The stored JSON of each patient's, study's or series' first instance (lowest id), by
    row id."""
    if not ids or level is Level.INSTANCE:
        return {}
    if level is Level.PATIENT:
        first = (
            select(func.min(Instance.id))
            .select_from(Instance)
            .join(Series, Instance.series_fk == Series.id)
            .join(Study, Series.study_fk == Study.id)
            .where(Study.patient_fk.in_(ids))
            .group_by(Study.patient_fk)
        )
        statement = (
            select(Study.patient_fk, Instance.metadata_json)
            .select_from(Instance)
            .join(Series, Instance.series_fk == Series.id)
            .join(Study, Series.study_fk == Study.id)
            .where(Instance.id.in_(first))
        )
    elif level is Level.SERIES:
        first = (
            select(func.min(Instance.id))
            .where(Instance.series_fk.in_(ids))
            .group_by(Instance.series_fk)
        )
        statement = select(Instance.series_fk, Instance.metadata_json).where(Instance.id.in_(first))
    else:
        first = (
            select(func.min(Instance.id))
            .select_from(Instance)
            .join(Series, Instance.series_fk == Series.id)
            .where(Series.study_fk.in_(ids))
            .group_by(Series.study_fk)
        )
        statement = (
            select(Series.study_fk, Instance.metadata_json)
            .join(Series, Instance.series_fk == Series.id)
            .where(Instance.id.in_(first))
        )
    return {row[0]: row[1] for row in session.execute(statement)}


def _from_json(text: str, root: str, query: Query) -> dict[str, Any]:
    """The requested attributes of a stored instance's JSON.

    With ``includefield=all``, every top-level attribute except pixel data, bulk data and
    group lengths (which describe the file's encoding, not the object): at study and series
    level these come from the first instance, so they include attributes of lower levels,
    which a client should read as that instance's.
    """
    document: dict[str, Any] = json.loads(with_root(text, root))
    if not query.include_all:
        wanted = (f"{tag:08X}" for tag in query.include_tags)
        return {key: document[key] for key in wanted if key in document}
    return {
        key: element
        for key, element in document.items()
        if key not in _PIXEL_DATA_KEYS and not key.endswith("0000") and "BulkDataURI" not in element
    }


_PIXEL_DATA_KEYS = frozenset(f"{tag:08X}" for tag in PIXEL_DATA_TAGS)


def _element(attribute: Attribute, value: Any) -> dict[str, Any] | None:
    vr = attribute.vr
    if attribute.matching is Matching.MODALITIES:
        value = "\\".join(code for code in str(value).split("/") if code)
    if value is None or value == "":
        return None if attribute.tag in _OMIT_WHEN_EMPTY else {"vr": vr}
    if isinstance(value, int):
        return {"vr": vr, "Value": [value]}
    if vr == "PN":
        return {"vr": vr, "Value": [_person_name(name) for name in value.split("\\")]}
    if vr == "UI":
        return {"vr": vr, "Value": [value]}
    return {"vr": vr, "Value": value.split("\\")}


def _person_name(value: str) -> dict[str, str]:
    groups = ("Alphabetic", "Ideographic", "Phonetic")
    return {group: text for group, text in zip(groups, value.split("="), strict=False) if text}


_RETRIEVE_PATHS: dict[Level, Callable[[Sequence[str]], str]] = {
    Level.STUDY: lambda uids: f"studies/{uids[0]}",
    Level.SERIES: lambda uids: f"studies/{uids[0]}/series/{uids[1]}",
    Level.INSTANCE: lambda uids: f"studies/{uids[0]}/series/{uids[1]}/instances/{uids[2]}",
}


def _computed(attribute: Attribute, uids: Sequence[str], root: str) -> dict[str, Any]:
    if attribute.keyword == "SpecificCharacterSet":
        return {"vr": "CS", "Value": [SPECIFIC_CHARACTER_SET]}
    if attribute.keyword == "InstanceAvailability":
        return {"vr": "CS", "Value": [ONLINE]}
    path = _RETRIEVE_PATHS[attribute.level](uids)
    return {"vr": "UR", "Value": [f"{root}/{path}"]}


__all__ = [
    "ATTRIBUTES",
    "LIKE_ESCAPE",
    "MAX_RESULTS",
    "MORE_RESULTS_WARNING",
    "Attribute",
    "Level",
    "Matcher",
    "Matching",
    "Query",
    "QueryError",
    "SearchResult",
    "compile_query",
    "default_attributes",
    "like_pattern",
    "matchable_keywords",
    "normalised_time",
    "parse_date_range",
    "parse_query",
    "parse_tag",
    "parse_time_range",
    "resolve",
    "search",
    "selected_columns",
]
