"""The embedded search backend: series documents in the archive's own database.

Where a document's fields live (tables in :mod:`pacsflow.archive.models`, migration 0004):

- ``search_documents``: the document as given, returned by searches unchanged (JSONB with a
  ``jsonb_path_ops`` GIN index on PostgreSQL, JSON text on SQLite).
- ``search_fields``: one narrow row per document with every scalar top-level field as a
  column (btree indexes on the common filters), person names folded per component, and the
  folded words of the text fields (a tsvector with a GIN index on PostgreSQL; on SQLite the
  text of the FTS5 table ``search_text``, kept in step by triggers).
- ``search_keywords`` / ``search_numbers``: one row per value of a list field (Project,
  AnnotationLabels, ModalitiesInStudy, SOPClassUIDs) and of each ``radiomics.<feature>``.

Filters, sorts and facets therefore read narrow tables and their indexes; only ``tags.*``
paths read the JSON documents (SQLite ``json_each`` over every level, since any level may
be a list; PostgreSQL jsonpath ``@?``, which the GIN index serves for equality).

Semantics, shared with the OpenSearch backend (tests/search/suite.py pins them):

- Lists match when any value does; a range needs one value within all its bounds.
- Person names compare folded (case and accents removed, as OpenSearch's lowercase +
  asciifolding); ``PatientName`` means its Alphabetic form. Under ``tags`` they compare
  case-blind only: PostgreSQL's regex ``i`` flag, SQLite's ASCII ``lower()``.
- Free text: every word of the query must be a word of some text field; words are runs of
  letters and digits (joined by ``_``, and by ``.`` or an apostrophe between two of them),
  folded. A query without words matches every document.
- Date-times compare as fixed-width ISO strings in UTC (document.iso_datetime); a date-only
  bound covers its whole day: ``lte``/``gt`` 2025-01-01 mean before/after that day ends, and
  a term on a date-only value matches the day.
- Sorts put documents without the field last; list fields sort by their smallest value
  ascending, their largest descending; SeriesInstanceUID breaks ties.
- Terms facets count documents per value, by count descending then value; numbers are keyed
  as ``3`` or ``2.5``. Date histograms key buckets by their first day and omit empty ones.

How it runs:

- A search is one snapshot: the doc_ids that match, in one string (none without a filter);
  the facets counted from doc values (pacsflow.search.doc_values: each field's values
  held in memory per generation of the index), facets on JSON fields in SQL over a
  materialized CTE of the matching rows; the page ranked from doc values when it sorts by
  columns (else in SQL); then the page's documents.
- Writes take one writer at a time (SQLite's lock at BEGIN; a transaction advisory lock on
  PostgreSQL), advance ``search_generation`` and replace a batch's rows: old rows out, new
  rows in by COPY on PostgreSQL and executemany on SQLite, doc_ids drawn first.
- ``reindex`` upserts in batches of short transactions, then removes what was indexed
  before it began: searches meanwhile find every series (as it was or as it is now), and
  SQLite's one write lock is never held for the whole rebuild.

Every value a query carries is a bound parameter, jsonpath and tsquery text included; field
names are checked against the document model before they reach SQL.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal, cast

import sqlalchemy as sa
from more_itertools import chunked
from sqlalchemy import ColumnElement, CompoundSelect, Connection, Engine, FromClause, Select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import JSONPATH, TSQUERY

from pacsflow.archive.ingest import utc_now
from pacsflow.archive.models import (
    SearchDocument,
    SearchFields,
    SearchGeneration,
    SearchKeyword,
    SearchNumber,
)
from pacsflow.search.doc_values import DocValues, Generation, IdArray, Selection, parse_ids
from pacsflow.search.document import PN_PARTS, document_field_type
from pacsflow.search.model import (
    FIELDS,
    TEXT_FIELDS,
    Bool,
    Bucket,
    Clause,
    DateHistogramFacet,
    Exists,
    FieldType,
    Range,
    SearchError,
    SearchRequest,
    SearchResult,
    Sort,
    Term,
    Terms,
    TermsFacet,
    Text,
    Wildcard,
    fold,
)

__all__ = ["BATCH_SIZE", "SqlSearchBackend", "words"]

logger = logging.getLogger(__name__)

BATCH_SIZE: Final = 500  # documents per round of statements within index()'s transaction

DOCUMENTS = cast(sa.Table, SearchDocument.__table__)
COLUMNS = cast(sa.Table, SearchFields.__table__)
KEYWORDS = cast(sa.Table, SearchKeyword.__table__)
NUMBERS = cast(sa.Table, SearchNumber.__table__)
GENERATION = cast(sa.Table, SearchGeneration.__table__)
TEXT_INDEX = sa.table("search_text", sa.column("rowid"))  # SQLite FTS5 over COLUMNS.words
DOCUMENT_COLUMNS: Final = ("series_instance_uid", "study_instance_uid", "document", "indexed_at")
FIELD_COLUMNS: Final = tuple(c.name for c in COLUMNS.columns if c.name != "words")
VALUE_COLUMNS: Final = ("field", "value", "doc_id")
WRITER_LOCK: Final = 0x70616373_73726368  # pg_advisory_xact_lock key: "pacs" "srch"

# Scalar top-level fields and their columns.
_COLUMNS: Final[dict[str, str]] = {
    "SeriesInstanceUID": "series_instance_uid",
    "StudyInstanceUID": "study_instance_uid",
    "PatientID": "patient_id",
    "PatientBirthDate": "patient_birth_date",
    "PatientSex": "patient_sex",
    "StudyDate": "study_date",
    "StudyDateTime": "study_date_time",
    "StudyDescription": "study_description",
    "AccessionNumber": "accession_number",
    "StudyID": "study_id",
    "Modality": "modality",
    "SeriesNumber": "series_number",
    "SeriesDescription": "series_description",
    "BodyPartExamined": "body_part_examined",
    "SeriesDate": "series_date",
    "Manufacturer": "manufacturer",
    "NumberOfInstances": "number_of_instances",
    "SlicePositionMin": "slice_position_min",
    "SlicePositionMax": "slice_position_max",
    "AcquisitionDateTimeMin": "acquisition_date_time_min",
    "AcquisitionDateTimeMax": "acquisition_date_time_max",
    "ArrivedAt": "arrived_at",
    "SourceKind": "source_kind",
    "SourceAE": "source_ae",
}
# Person names: one folded column per part, named <prefix>_<suffix>.
_PERSON_NAMES: Final[dict[str, str]] = {
    "PatientName": "patient",
    "ReferringPhysicianName": "referring_physician",
}
_PN_SUFFIXES: Final[dict[str, str]] = {
    "Alphabetic": "name",
    "FamilyName": "family_name",
    "GivenName": "given_name",
    "MiddleName": "middle_name",
    "NamePrefix": "name_prefix",
    "NameSuffix": "name_suffix",
}
# Top-level keyword lists, one row per value in KEYWORDS.
LIST_FIELDS: Final = ("ModalitiesInStudy", "SOPClassUIDs", "Project", "AnnotationLabels")
RADIOMICS: Final = "radiomics"
TAGS: Final = "tags"
TIEBREAK: Final = "SeriesInstanceUID"
DEFAULT_SORT: Final = (Sort(field="ArrivedAt", order="desc"),)

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CANONICAL_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z?")
_WORD = re.compile(r"\w+(?:[.'’]\w+)*")
_APOSTROPHES = str.maketrans("", "", "'’")
_HISTOGRAM: Final[dict[str, tuple[int, str]]] = {
    "year": (4, "-01-01"),
    "month": (7, "-01"),
    "day": (10, ""),
}

Op = Literal["eq", "gte", "gt", "lte", "lt", "like"]
Value = str | float


# ------------------------------------------------------------------------ words and names


def words(text: str) -> list[str]:
    """The folded words of ``text``, distinct, in order of appearance."""
    found = (word.translate(_APOSTROPHES) for word in _WORD.findall(fold(text)))
    return list(dict.fromkeys(word for word in found if word))


# ------------------------------------------------------------------------------ fields


@dataclass(frozen=True)
class _Field:
    """Where a query path is kept: a column of search_fields, rows of search_keywords or
    search_numbers under ``name``, or the JSON document at ``segments``."""

    path: str
    type: FieldType
    source: Literal["column", "keywords", "numbers", "json"]
    name: str = ""
    segments: tuple[str, ...] = ()
    folded: bool = False  # person names: compared case-blind (and accent-blind in columns)

    @property
    def prefix(self) -> bool:
        """Bare ``radiomics``: every numbers row whose name starts with ``radiomics.``."""
        return self.source == "numbers" and self.type is FieldType.OBJECT


def _resolve(path: str) -> _Field:
    field_type = document_field_type(path)
    if field_type is None:
        raise SearchError(
            f"unknown field {path!r}: use a document field ({', '.join(FIELDS)}), "
            "tags.<DICOM keyword> or radiomics.<feature>"
        )
    parts = tuple(path.split("."))
    head = parts[0]
    if head in _COLUMNS:
        return _Field(path, field_type, "column", _COLUMNS[head])
    if head in _PERSON_NAMES:
        part = parts[1] if len(parts) > 1 else "Alphabetic"
        name = f"{_PERSON_NAMES[head]}_{_PN_SUFFIXES[part]}"
        return _Field(path, field_type, "column", name, (head, part), folded=True)
    if head in LIST_FIELDS:
        return _Field(path, field_type, "keywords", head)
    if head == RADIOMICS:
        return _Field(path, field_type, "numbers", f"{RADIOMICS}." if len(parts) == 1 else path)
    if field_type is FieldType.PERSON_NAME and parts[-1] not in PN_PARTS:
        parts = (*parts, "Alphabetic")
    return _Field(
        path, field_type, "json", segments=parts, folded=field_type is FieldType.PERSON_NAME
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _keyword(value: object) -> str:
    """A keyword compared with a non-string: as DICOM writes it (and OpenSearch coerces)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number_key(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _canonical(moment: datetime) -> str:
    """document.iso_datetime's form; naive times are taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


@dataclass(frozen=True)
class _Cond:
    op: Op
    value: Value


Matcher = list[list[_Cond]]  # any of these alternatives, each all of its conditions


def _check_date(field: _Field, value: object, clause: str) -> str:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise SearchError(f"{clause} on {field.path!r} needs a date as YYYY-MM-DD, not {value!r}")


def _check_datetime(field: _Field, value: object, clause: str) -> tuple[str, str | None]:
    """The instant a bound names, and for a date alone the start of the next day too."""
    if isinstance(value, str) and _DATE.fullmatch(value):
        day = date.fromisoformat(_check_date(field, value, clause))
        start = datetime(day.year, day.month, day.day)
        return _canonical(start), _canonical(start + timedelta(days=1))
    try:
        if not isinstance(value, str) or not value[:1].isdigit():
            raise ValueError
        return _canonical(datetime.fromisoformat(value)), None
    except (ValueError, OverflowError):
        raise SearchError(
            f"{clause} on {field.path!r} needs an ISO 8601 date or date-time, not {value!r}"
        ) from None


def _no_nul(path: str, value: object, clause: str) -> None:
    """PostgreSQL text cannot hold NUL, and no DICOM value does: refuse it on both."""
    if isinstance(value, str) and "\x00" in value:
        raise SearchError(f"{clause} on {path!r}: the value contains a NUL character")


def _check(field: _Field, value: object, clause: str) -> Value:
    """``value`` as the index compares it; SearchError if it is not of the field's type."""
    _no_nul(field.path, value, clause)
    match field.type:
        case FieldType.NUMBER:
            if not _is_number(value) or not math.isfinite(cast(float, value)):
                raise SearchError(f"{clause} on {field.path!r} needs a number, not {value!r}")
            return float(cast(float, value))
        case FieldType.DATE:
            return _check_date(field, value, clause)
        case FieldType.DATETIME:
            return _check_datetime(field, value, clause)[0]
        case FieldType.PERSON_NAME:
            text = _keyword(value)
            return fold(text) if field.source == "column" else text.lower()
        case FieldType.OBJECT:
            raise SearchError(
                f"{clause} on {field.path!r}: it holds nested fields; name one of them "
                f"(e.g. {field.path}.<name>), or use exists"
            )
    return value if isinstance(value, str) else _keyword(value)


def _equal(field: _Field, value: object, clause: str) -> list[_Cond]:
    """Equality with ``value``; a date alone on a date-time field matches its whole day."""
    if field.type is FieldType.DATETIME:
        start, end = _check_datetime(field, value, clause)
        return [_Cond("gte", start), _Cond("lt", end)] if end else [_Cond("eq", start)]
    return [_Cond("eq", _check(field, value, clause))]


def _range(field: _Field, clause: Range) -> list[_Cond]:
    if field.type in (FieldType.TEXT, FieldType.PERSON_NAME, FieldType.OBJECT):
        raise SearchError(
            f"range on {clause.field!r} needs a number, date or keyword field, not {field.type}"
        )
    bounds = [(op, getattr(clause, op)) for op in ("gte", "gt", "lte", "lt")]
    given = [(op, value) for op, value in bounds if value is not None]
    if not given:
        raise SearchError(f"range on {clause.field!r} needs at least one of gte, gt, lte, lt")
    conditions = []
    for op, value in given:
        if field.type is FieldType.KEYWORD and not isinstance(value, str):
            raise SearchError(
                f"range {op} on {clause.field!r} (a keyword) needs a string, not {value!r}"
            )
        if field.type is FieldType.DATETIME:
            start, next_day = _check_datetime(field, value, f"range {op}")
            if next_day and op in ("lte", "gt"):  # the whole day is in (lte) or out (gt)
                conditions.append(_Cond("lt" if op == "lte" else "gte", next_day))
            else:
                conditions.append(_Cond(cast(Op, op), start))
        else:
            conditions.append(_Cond(cast(Op, op), _check(field, value, f"range {op}")))
    return conditions


def _wildcard(field: _Field, clause: Wildcard) -> list[_Cond]:
    if field.type not in (FieldType.KEYWORD, FieldType.TEXT, FieldType.PERSON_NAME):
        raise SearchError(
            f"wildcard on {clause.field!r} needs a text or keyword field, not {field.type}"
        )
    pattern = clause.pattern
    _no_nul(field.path, pattern, "wildcard")
    if field.folded:
        pattern = fold(pattern) if field.source == "column" else pattern.lower()
    return [_Cond("like", pattern)]


def _glob(pattern: str) -> str:
    """A wildcard pattern (``*``, ``?``) as an SQLite GLOB: only ``[`` needs escaping."""
    return pattern.replace("[", "[[]")


def _like(pattern: str) -> str:
    """A wildcard pattern as a LIKE pattern with ``\\`` as the escape character."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _regex(pattern: str) -> str:
    """A wildcard pattern as an anchored POSIX regular expression."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return "^" + "".join(parts) + "$"


def _jsonpath(segments: Sequence[str]) -> str:
    return "$" + "".join("." + json.dumps(segment) for segment in segments)


# ---------------------------------------------------------------------------- compiler


@dataclass
class _Plan:
    """What a search runs, all in one snapshot.

    ``matched``: the matching doc_ids as one string (None: no filter, every document).
    ``counts``: rows (facet number, key, number, count) of the facets on JSON fields, the
    others being counted from doc values. The page comes from ``ranking`` (every doc_id in
    the sort's order, kept as ranks under ``sort_key``) or, for sorts on list or JSON
    fields, from ``page`` (the hits' SeriesInstanceUIDs).
    """

    matched: Select[Any] | None
    counts: Select[Any] | CompoundSelect | None
    page: Select[Any] | None
    ranking: Select[Any] | None
    sort_key: tuple[tuple[str, str], ...]
    facets: list[_FacetPlan]


@dataclass(frozen=True)
class _FacetPlan:
    name: str
    type: FieldType
    histogram: tuple[int, str] | None  # date histograms: key prefix length, completion
    size: int | None  # terms: how many of the largest counts to keep
    field: tuple[str, str]  # (source, name): the doc values' cache key
    values: Select[Any] | None  # rows of (value, joined doc_ids); None: in counts


class _Compiler:
    """The query model as SQLAlchemy Core for one dialect (sqlite or postgresql)."""

    def __init__(self, dialect: str) -> None:
        self.postgres = dialect == "postgresql"

    # -- filters

    def where(self, clause: Clause | None) -> ColumnElement[bool]:
        match clause:
            case None:
                return sa.true()
            case Text():
                return self._text(clause)
            case Term():
                field = _resolve(clause.field)
                return self._match(field, [_equal(field, clause.value, "term")])
            case Terms():
                field = _resolve(clause.field)
                return self._match(field, [_equal(field, v, "terms") for v in clause.values])
            case Wildcard():
                field = _resolve(clause.field)
                return self._match(field, [_wildcard(field, clause)])
            case Range():
                field = _resolve(clause.field)
                return self._match(field, [_range(field, clause)])
            case Exists():
                return self._exists(_resolve(clause.field))
            case Bool():
                return self._bool(clause)
        raise AssertionError(f"no compiler for {clause!r}")  # pragma: no cover

    def _bool(self, clause: Bool) -> ColumnElement[bool]:
        parts = [self.where(sub) for sub in clause.must]
        if clause.should:
            parts.append(sa.or_(*(self.where(sub) for sub in clause.should)))
        parts.extend(sa.not_(self.where(sub)) for sub in clause.must_not)
        return sa.and_(sa.true(), *parts)

    def _text(self, clause: Text) -> ColumnElement[bool]:
        found = words(clause.text)
        if not found:
            return sa.true()
        if self.postgres:
            query = " & ".join(
                "'" + w.replace("\\", "\\\\").replace("'", "''") + "'" for w in found
            )
            return COLUMNS.c.words.op("@@", is_comparison=True)(sa.cast(sa.literal(query), TSQUERY))
        query = " ".join('"' + w.replace('"', '""') + '"' for w in found)
        matches = sa.select(TEXT_INDEX.c.rowid).where(
            sa.literal_column("search_text").op("MATCH", is_comparison=True)(sa.literal(query))
        )
        return COLUMNS.c.doc_id.in_(matches)

    def _match(self, field: _Field, matcher: Matcher) -> ColumnElement[bool]:
        if field.type is FieldType.OBJECT:
            _check(field, None, "term")
        if not matcher:
            return sa.false()  # terms with no values
        if field.source == "column":
            column = COLUMNS.c[field.name]
            return sa.and_(column.is_not(None), self._compare(column, matcher))
        if field.source in ("keywords", "numbers"):
            table = (KEYWORDS if field.source == "keywords" else NUMBERS).alias()
            rows = sa.select(table.c.doc_id).where(
                table.c.field == field.name, self._compare(table.c.value, matcher)
            )
            return COLUMNS.c.doc_id.in_(rows)
        if self.postgres:
            test = " || ".join(self._jsonpath_test(field, alternative) for alternative in matcher)
            return self._json_path_exists(f"{_jsonpath(field.segments)} ? ({test})")
        source = self._sqlite_values(field.segments)
        value = sa.func.lower(source.value) if field.folded else source.value
        rows = (
            sa.select(source.uid)
            .select_from(source.frm)
            .where(self._sqlite_type(field, source.type), self._compare(value, matcher))
        )
        return COLUMNS.c.series_instance_uid.in_(rows)

    def _compare(self, value: ColumnElement[Any], matcher: Matcher) -> ColumnElement[bool]:
        singles = [alt[0].value for alt in matcher if len(alt) == 1 and alt[0].op == "eq"]
        if len(singles) == len(matcher):
            return value == singles[0] if len(singles) == 1 else value.in_(singles)
        alternatives = [sa.and_(*(self._condition(value, c) for c in alt)) for alt in matcher]
        return alternatives[0] if len(alternatives) == 1 else sa.or_(*alternatives)

    def _condition(self, value: ColumnElement[Any], condition: _Cond) -> ColumnElement[bool]:
        bound = condition.value
        match condition.op:
            case "eq":
                return value == bound
            case "gte":
                return value >= bound
            case "gt":
                return value > bound
            case "lte":
                return value <= bound
            case "lt":
                return value < bound
            case "like":
                if self.postgres:
                    return value.like(_like(str(bound)), escape="\\")
                return value.op("GLOB", is_comparison=True)(_glob(str(bound)))
        raise AssertionError(condition.op)  # pragma: no cover

    def _jsonpath_test(self, field: _Field, conditions: list[_Cond]) -> str:
        """One alternative as a jsonpath filter predicate, values as jsonpath literals."""
        tests = []
        for condition in conditions:
            literal = json.dumps(condition.value, ensure_ascii=False)
            if condition.op == "like":
                pattern = json.dumps(_regex(str(condition.value)), ensure_ascii=False)
                flag = ' flag "i"' if field.folded else ""
                tests.append(f"@ like_regex {pattern}{flag}")
            elif condition.op == "eq" and field.folded:
                pattern = json.dumps(_regex_literal(str(condition.value)), ensure_ascii=False)
                tests.append(f'@ like_regex {pattern} flag "i"')
            else:
                operator = {"eq": "==", "gte": ">=", "gt": ">", "lte": "<=", "lt": "<"}
                tests.append(f"@ {operator[condition.op]} {literal}")
        return "(" + " && ".join(tests) + ")"

    def _json_path_exists(self, path: str) -> ColumnElement[bool]:
        documents = DOCUMENTS.alias()
        rows = sa.select(documents.c.series_instance_uid).where(
            documents.c.document.op("@?", is_comparison=True)(sa.cast(sa.literal(path), JSONPATH))
        )
        return COLUMNS.c.series_instance_uid.in_(rows)

    def _exists(self, field: _Field) -> ColumnElement[bool]:
        if field.source == "column":
            return COLUMNS.c[field.name].is_not(None)
        if field.source in ("keywords", "numbers"):
            table = (KEYWORDS if field.source == "keywords" else NUMBERS).alias()
            if field.prefix:  # every radiomics.* name sorts in [radiomics., radiomics/)
                named = sa.and_(table.c.field >= field.name, table.c.field < f"{RADIOMICS}/")
            else:
                named = table.c.field == field.name
            return COLUMNS.c.doc_id.in_(sa.select(table.c.doc_id).where(named))
        if self.postgres:
            return self._json_path_exists(_jsonpath(field.segments) + '[*] ? (@.type() != "null")')
        source = self._sqlite_values(field.segments)
        rows = sa.select(source.uid).select_from(source.frm).where(source.type != "null")
        return COLUMNS.c.series_instance_uid.in_(rows)

    # -- values inside JSON documents

    def _sqlite_values(self, segments: Sequence[str]) -> _JsonValues:
        """Every value at ``segments`` of each document, a list at any level unrolled:
        one json_each per level, over the value wrapped in ``[...]`` unless it is a list."""
        documents = DOCUMENTS.alias()
        frm: FromClause = documents
        parent: ColumnElement[Any] = documents.c.document
        level: Any = None
        for segment in segments:
            if level is not None:
                parent = sa.case((level.c.type == "object", level.c.value))
            value = sa.type_coerce(parent.op("->")(sa.literal(_jsonpath([segment]))), sa.Text)
            listed = sa.case(
                (sa.func.json_type(value) == "array", value),
                else_=sa.literal("[").concat(value).concat("]"),
            )
            level = sa.func.json_each(listed).table_valued("value", "type").alias()
            frm = frm.join(level, sa.true())
        return _JsonValues(frm, documents.c.series_instance_uid, level.c.value, level.c.type)

    def _sqlite_type(self, field: _Field, json_type: ColumnElement[Any]) -> ColumnElement[bool]:
        if field.type is FieldType.NUMBER:
            return json_type.in_(("integer", "real"))
        return json_type == "text"

    def _json_values(self, field: _Field) -> _JsonValues:
        """Values of a ``tags`` path (or a person name's Alphabetic), typed by the field."""
        if not self.postgres:
            source = self._sqlite_values(field.segments)
            typed = self._sqlite_type(field, source.type)
            return _JsonValues(source.frm, source.uid, source.value, source.type, typed)
        documents = DOCUMENTS.alias()
        kind = "number" if field.type is FieldType.NUMBER else "string"
        path = _jsonpath(field.segments) + f'[*] ? (@.type() == "{kind}")'
        query = sa.func.jsonb_path_query(documents.c.document, sa.cast(sa.literal(path), JSONPATH))
        values = query.table_valued("value").render_derived()
        found = values.c.value
        if kind == "number":
            value: ColumnElement[Any] = sa.cast(found, sa.Float)
        else:
            value = sa.collate(found.op("#>>")(sa.literal_column("'{}'")), "C")
        frm = documents.join(values, sa.true())  # functions in FROM are LATERAL
        return _JsonValues(frm, documents.c.series_instance_uid, value, found, sa.true())

    # -- sort

    def order_by(self, sorts: Sequence[Sort]) -> list[ColumnElement[Any]]:
        ordered: list[ColumnElement[Any]] = []
        for sort in sorts or DEFAULT_SORT:
            field = _resolve(sort.field)
            if field.type is FieldType.OBJECT:
                raise SearchError(f"sort on {sort.field!r}: it holds nested fields; name one")
            key = self._sort_key(field, sort.order)
            ordered.append((key.asc() if sort.order == "asc" else key.desc()).nulls_last())
        if not any(sort.field == TIEBREAK for sort in sorts):
            ordered.append(COLUMNS.c.series_instance_uid.asc())  # a total order: stable pages
        return ordered

    def _sort_key(self, field: _Field, order: str) -> ColumnElement[Any]:
        pick = sa.func.min if order == "asc" else sa.func.max
        if field.source == "column":
            return COLUMNS.c[field.name]
        if field.source in ("keywords", "numbers"):
            table = (KEYWORDS if field.source == "keywords" else NUMBERS).alias()
            return (
                sa.select(pick(table.c.value))
                .where(table.c.doc_id == COLUMNS.c.doc_id, table.c.field == field.name)
                .scalar_subquery()
            )
        source = self._json_values(field)
        return (
            sa.select(pick(source.value))
            .select_from(source.frm)
            .where(source.uid == COLUMNS.c.series_instance_uid, source.typed)
            .scalar_subquery()
        )

    # -- facets

    def _facet_field(self, name: str, facet: TermsFacet | DateHistogramFacet) -> _Field:
        field = _resolve(facet.field)
        if field.type is FieldType.OBJECT:
            raise SearchError(f"facet {name!r} on {facet.field!r}: it holds nested fields")
        if field.type is FieldType.PERSON_NAME:  # counted by the names as written
            segments = field.segments or tuple(field.path.split("."))
            field = _Field(field.path, FieldType.KEYWORD, "json", segments=segments)
        if isinstance(facet, DateHistogramFacet) and field.type not in (
            FieldType.DATE,
            FieldType.DATETIME,
        ):
            raise SearchError(
                f"date histogram on {facet.field!r} needs a date or date-time field, "
                f"not {field.type}"
            )
        return field

    def _facet(
        self,
        number: int,
        facet: TermsFacet | DateHistogramFacet,
        field: _Field,
        matched: Any | None,
    ) -> Select[Any]:
        """One facet on a JSON field (``tags.*``, person names as written), over the matched
        rows (a CTE) or every document: rows of (facet number, key, number, count). Date
        histograms count per day or longer prefix; search() adds them up."""
        source = self._json_values(field)
        value = source.value
        frm = source.frm
        if matched is not None:
            frm = frm.join(matched, source.uid == matched.c.series_instance_uid)
        count: ColumnElement[int] = sa.func.count(sa.distinct(source.uid))
        if isinstance(facet, DateHistogramFacet):
            # constants, not parameters: PostgreSQL must see the GROUP BY expression as
            # the selected one
            end: ColumnElement[int] = sa.literal_column(str(_HISTOGRAM[facet.interval][0]))
            key: ColumnElement[Any] = sa.func.substr(value, sa.literal_column("1"), end)
            order: list[ColumnElement[Any]] = []
            limit = None
        else:
            key = value
            order = [count.desc(), key.asc()]
            limit = facet.size
        numeric = field.type is FieldType.NUMBER and isinstance(facet, TermsFacet)
        buckets = (
            sa.select(
                sa.literal_column(str(number)).label("facet"),
                (sa.cast(sa.null(), sa.Text) if numeric else key).label("key"),
                (key if numeric else sa.cast(sa.null(), sa.Float)).label("number"),
                count.label("count"),
            )
            .select_from(frm)
            .where(source.typed)
            .group_by(key)
            .order_by(*order)
            .limit(limit)
            .subquery()
        )
        return sa.select(buckets)

    def _doc_values(self, field: _Field) -> Select[Any] | None:
        """Rows of (value, its doc_ids joined in one string) of a field doc values can
        hold; None for JSON fields. Grouping in SQL makes a field's rows as few as its
        values, read along the index that begins with them."""
        if field.source == "column":
            column = COLUMNS.c[field.name]
            return (
                sa.select(column, self.joined_ids(COLUMNS.c.doc_id))
                .where(column.is_not(None))
                .group_by(column)
            )
        if field.source in ("keywords", "numbers"):
            table = KEYWORDS if field.source == "keywords" else NUMBERS
            return (
                sa.select(table.c.value, self.joined_ids(table.c.doc_id))
                .where(table.c.field == field.name)
                .group_by(table.c.value)
            )
        return None

    # -- request

    def plan(self, request: SearchRequest) -> _Plan:
        where = self.where(request.query)
        facets = []
        in_sql: list[tuple[int, TermsFacet | DateHistogramFacet, _Field]] = []
        for number, (name, facet) in enumerate(request.facets.items()):
            field = self._facet_field(name, facet)
            values = self._doc_values(field)
            if values is None:
                in_sql.append((number, facet, field))
            facets.append(
                _FacetPlan(
                    name,
                    field.type,
                    _HISTOGRAM[facet.interval] if isinstance(facet, DateHistogramFacet) else None,
                    facet.size if isinstance(facet, TermsFacet) else None,
                    (field.source, field.name),
                    values,
                )
            )
        filtered = not _is_true(where)
        counts: Select[Any] | CompoundSelect | None = None
        if in_sql:
            # The filter runs once, into a materialized CTE of the matching series.
            matched = (
                sa.select(COLUMNS.c.series_instance_uid)
                .where(where)
                .cte("matched")
                .prefix_with("MATERIALIZED")
                if filtered
                else None
            )
            branches = [
                self._facet(number, facet, field, matched) for number, facet, field in in_sql
            ]
            counts = branches[0] if len(branches) == 1 else sa.union_all(*branches)
        page = ranking = None
        if request.limit:
            order = self.order_by(request.sort)
            if all(_resolve(sort.field).source == "column" for sort in request.sort):
                ranking = sa.select(COLUMNS.c.doc_id).order_by(*order)
            else:
                page = (
                    sa.select(COLUMNS.c.series_instance_uid)
                    .where(where)
                    .order_by(*order)
                    .offset(request.offset)
                    .limit(request.limit)
                )
        return _Plan(
            matched=sa.select(self.joined_ids()).where(where) if filtered else None,
            counts=counts,
            page=page,
            ranking=ranking,
            sort_key=tuple((sort.field, sort.order) for sort in request.sort),
            facets=facets,
        )

    def joined_ids(self, doc_id: ColumnElement[int] = COLUMNS.c.doc_id) -> ColumnElement[str]:
        """The doc_ids of the rows selected as one comma-separated string: one value to
        fetch however many rows match."""
        if self.postgres:
            return sa.func.string_agg(sa.cast(doc_id, sa.Text), ",")
        return sa.func.group_concat(doc_id)


@dataclass(frozen=True)
class _JsonValues:
    frm: FromClause
    uid: ColumnElement[Any]
    value: ColumnElement[Any]
    type: ColumnElement[Any]
    typed: ColumnElement[bool] = dataclasses.field(default_factory=sa.true)


def _is_true(clause: ColumnElement[bool]) -> bool:
    return isinstance(clause, sa.sql.elements.True_)


def _regex_literal(text: str) -> str:
    return "^" + re.escape(text) + "$"


# ---------------------------------------------------------------------------- indexing


@dataclass
class _Row:
    """One document as the tables hold it."""

    uid: str
    document: dict[str, Any]
    fields: dict[str, Any]
    words: list[str]
    keywords: set[tuple[str, str]]
    numbers: set[tuple[str, float]]


def _scalar(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _column_value(field_type: FieldType, value: Any) -> Any:
    value = _scalar(value)
    if value is None or isinstance(value, dict | list):
        return None
    match field_type:
        case FieldType.NUMBER:
            return float(value) if _is_number(value) and math.isfinite(value) else None
        case FieldType.DATETIME if isinstance(value, str) and not _CANONICAL_DATETIME.fullmatch(
            value
        ):
            try:
                return _canonical(datetime.fromisoformat(value))
            except ValueError:
                return value  # kept as written: it still matches itself
    return value if isinstance(value, str) else _keyword(value)


def _person_name(value: Any) -> dict[str, str]:
    value = _scalar(value)
    if isinstance(value, str):
        parts = value.split("^")
        value = {"Alphabetic": value} | {
            part: text for part, text in zip(PN_PARTS[1:], parts, strict=False) if text
        }
    if not isinstance(value, dict):
        return {}
    return {part: text for part in PN_PARTS if isinstance(text := value.get(part), str)}


def _json_text(document: Mapping[str, Any]) -> str:
    """The document as JSON text, serialized once here rather than by the column type."""
    try:
        return json.dumps(document, ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or an infinity somewhere
        return json.dumps(_json_safe(document), ensure_ascii=False, allow_nan=False)


def _json_safe(value: Any) -> Any:
    """``value`` without NaN or infinities (not JSON; PostgreSQL refuses them): as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _prepare(document: Mapping[str, Any], position: int, now: datetime) -> _Row:
    if not isinstance(document, Mapping):
        raise SearchError(f"document #{position} is not an object")
    uid = document.get("SeriesInstanceUID")
    if not isinstance(uid, str) or not uid:
        raise SearchError(f"document #{position} has no SeriesInstanceUID")
    study = document.get("StudyInstanceUID")
    fields: dict[str, Any] = {
        column: _column_value(FIELDS[name], document.get(name)) for name, column in _COLUMNS.items()
    }
    for name, prefix in _PERSON_NAMES.items():
        parts = _person_name(document.get(name))
        for part, suffix in _PN_SUFFIXES.items():
            component = parts.get(part)
            fields[f"{prefix}_{suffix}"] = fold(component) if component is not None else None
    text: list[str] = []
    for path in TEXT_FIELDS:
        head, _, part = path.partition(".")
        value = document.get(head)
        if part:
            value = _person_name(value).get(part)
        text.extend(
            v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)
        )
    keywords = set()
    for name in LIST_FIELDS:
        value = document.get(name)
        for item in value if isinstance(value, list) else [value]:
            if item is not None and not isinstance(item, dict | list):
                keywords.add((name, item if isinstance(item, str) else _keyword(item)))
    numbers = set()
    radiomics = document.get(RADIOMICS)
    if isinstance(radiomics, Mapping):
        for feature, values in radiomics.items():
            for number in values if isinstance(values, list) else [values]:
                if _is_number(number) and math.isfinite(number):
                    numbers.add((f"{RADIOMICS}.{feature}", float(number)))
    return _Row(
        uid=uid,
        document={
            "series_instance_uid": uid,
            "study_instance_uid": study if isinstance(study, str) else None,
            "document": _json_text(document),
            "indexed_at": now,
        },
        fields=fields,
        words=words(" ".join(text)),
        keywords=keywords,
        numbers=numbers,
    )


# ----------------------------------------------------------------------------- backend


def _buckets(spec: _FacetPlan, counted: list[tuple[Any, int]]) -> list[Bucket]:
    """A facet's buckets from (value, count) pairs: date histograms add up days (or longer
    prefixes) by interval; terms keep the largest counts, ties by value."""
    if spec.histogram is not None:
        length, completion = spec.histogram
        totals: dict[str, int] = {}
        for value, count in counted:
            first = f"{str(value)[:length]}{completion}"
            totals[first] = totals.get(first, 0) + count
        return [Bucket(key=key, count=count) for key, count in sorted(totals.items())]
    ordered = sorted(counted, key=lambda pair: (-pair[1], pair[0]))[: spec.size]
    if spec.type is FieldType.NUMBER:
        return [Bucket(key=_number_key(float(value)), count=count) for value, count in ordered]
    return [Bucket(key=str(value), count=count) for value, count in ordered]


class SqlSearchBackend:
    """SearchBackend on the archive's database (SQLite or PostgreSQL), migration 0004.

    ``index`` writes in one transaction per call (so nothing partial is kept): on SQLite that
    holds the one write lock, so give it a few thousand documents at a time, and use
    ``reindex`` for everything. Reads take one snapshot, so total, hits and facets agree.
    """

    def __init__(self, engine: Engine, *, batch_size: int = BATCH_SIZE) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"the SQL search backend needs SQLite or PostgreSQL, not {engine}")
        self.engine = engine
        self.batch_size = batch_size
        self.postgres = engine.dialect.name == "postgresql"
        self._writer = engine.execution_options(sqlite_immediate=True)
        self._compiler = _Compiler(engine.dialect.name)
        self._doc_values = DocValues()

    # -- reading

    def compile(self, request: SearchRequest) -> _Plan:
        """The statements a search runs (SearchError for a request it cannot run)."""
        return self._compiler.plan(request)

    def search(self, request: SearchRequest) -> SearchResult:
        plan = self.compile(request)
        with self._read() as conn:
            number = conn.execute(sa.select(GENERATION.c.generation)).scalar_one()
            generation = self._doc_values.generation(number, lambda: self._every_id(conn))
            matched = None
            if plan.matched is not None:
                matched = parse_ids(conn.execute(plan.matched).scalar_one())
            selection = generation.select(matched)
            in_sql = conn.execute(plan.counts).all() if plan.counts is not None else []
            counted: list[list[tuple[Any, int]]] = []
            for spec in plan.facets:
                if spec.values is None:
                    counted.append([])
                    continue
                single = spec.field[0] == "column"
                codes = generation.codes(spec.field, conn, spec.values, single=single)
                counted.append(codes.count(selection))
            hits = []
            if request.limit and request.offset < selection.total:
                hits = self._hits(conn, plan, generation, selection, request)
        for facet, key, value, count in in_sql:
            counted[facet].append((key if value is None else value, int(count)))
        facets = {
            spec.name: _buckets(spec, buckets)
            for spec, buckets in zip(plan.facets, counted, strict=True)
        }
        return SearchResult(total=selection.total, hits=hits, facets=facets)

    def _every_id(self, conn: Connection) -> IdArray:
        return parse_ids(conn.execute(sa.select(self._compiler.joined_ids())).scalar_one())

    def _hits(
        self,
        conn: Connection,
        plan: _Plan,
        generation: Generation,
        selection: Selection,
        request: SearchRequest,
    ) -> list[dict[str, Any]]:
        """The page's documents, in order."""
        if plan.ranking is not None:
            ranking = plan.ranking
            ranks = generation.ranks(plan.sort_key, lambda: conn.execute(ranking).scalars())
            doc_ids = generation.page(selection, ranks, request.offset, request.limit).tolist()
            found_uids = conn.execute(
                sa.select(COLUMNS.c.doc_id, COLUMNS.c.series_instance_uid).where(
                    COLUMNS.c.doc_id.in_(doc_ids)
                )
            )
            uids = {doc_id: uid for doc_id, uid in found_uids}
            ordered = [uids[doc_id] for doc_id in doc_ids]
        else:
            assert plan.page is not None
            ordered = list(conn.execute(plan.page).scalars())
        found = conn.execute(
            sa.select(DOCUMENTS.c.series_instance_uid, DOCUMENTS.c.document).where(
                DOCUMENTS.c.series_instance_uid.in_(ordered)
            )
        )
        documents = {uid: document for uid, document in found}
        return [dict(documents[uid]) for uid in ordered]

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if self.postgres:
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                if self.postgres:  # facets hash and sort whole result sets in memory
                    conn.exec_driver_sql("SET LOCAL work_mem = '32MB'")
                yield conn

    # -- writing

    def index(self, documents: Iterable[dict[str, Any]]) -> int:
        count = 0
        now = utc_now()
        with self._write_transaction() as conn:
            for batch in chunked(documents, self.batch_size):
                rows = {}
                for position, document in enumerate(batch, start=count):
                    row = _prepare(document, position, now)
                    rows[row.uid] = row  # the last of one series wins, as replace would
                self._write(conn, list(rows.values()))
                count += len(batch)
        logger.debug("indexed %d search documents", count)
        return count

    def reindex(self, documents: Iterable[dict[str, Any]]) -> int:
        """Replace every document: batches of ``index`` (short transactions, so SQLite's
        one writer lock is never held for long), then remove the documents indexed before
        the reindex began. Every search meanwhile finds every series, each as it was or as
        it is now; series indexed by others during the reindex stay."""
        started = utc_now()
        count = 0
        for batch in chunked(documents, self.batch_size):
            count += self.index(batch)
        with self._write_transaction() as conn:
            stale = sa.select(DOCUMENTS.c.series_instance_uid).where(
                DOCUMENTS.c.indexed_at < started
            )
            removed = self._remove(conn, stale, keep_documents=False)
        logger.info("search index rebuilt: %d documents, %d stale ones removed", count, removed)
        return count

    @contextmanager
    def _write_transaction(self) -> Iterator[Connection]:
        """One writer at a time: SQLite's lock taken at BEGIN, on PostgreSQL an advisory lock
        for the transaction, so two writers never replace the same series at once."""
        with self._writer.begin() as conn:
            if self.postgres:
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
            conn.execute(sa.update(GENERATION).values(generation=GENERATION.c.generation + 1))
            yield conn

    def _write(self, conn: Connection, rows: list[_Row]) -> None:
        """Replace the rows of these documents: old rows out, new rows in (COPY on
        PostgreSQL, executemany on SQLite), doc_ids drawn first."""
        uids = [row.uid for row in rows]
        ids: Iterable[int]
        if self.postgres:
            self._remove(conn, uids, keep_documents=False)
            ids = conn.exec_driver_sql(
                "SELECT nextval(pg_get_serial_sequence('search_fields', 'doc_id')) "
                "FROM generate_series(1, %s)",
                (len(rows),),
            ).scalars()
        else:
            self._remove(conn, uids, keep_documents=True)
            last = conn.exec_driver_sql("SELECT coalesce(max(doc_id), 0) FROM search_fields")
            first = int(last.scalar_one()) + 1
            ids = range(first, first + len(rows))
        for row, doc_id in zip(rows, ids, strict=True):
            row.fields["doc_id"] = doc_id
        documents = [
            (
                row.uid,
                row.document["study_instance_uid"],
                row.document["document"],
                row.document["indexed_at"],
            )
            for row in rows
        ]
        fields = [
            (*(row.fields[name] for name in FIELD_COLUMNS), self._words(row.words)) for row in rows
        ]
        keywords = [(n, v, row.fields["doc_id"]) for row in rows for n, v in row.keywords]
        numbers = [(n, v, row.fields["doc_id"]) for row in rows for n, v in row.numbers]
        if self.postgres:
            self._copy(conn, DOCUMENTS, DOCUMENT_COLUMNS, documents)
            self._copy(conn, COLUMNS, (*FIELD_COLUMNS, "words"), fields)
            self._copy(conn, KEYWORDS, VALUE_COLUMNS, keywords)
            self._copy(conn, NUMBERS, VALUE_COLUMNS, numbers)
            return
        conn.execute(
            self._upsert_documents(),
            [dict(zip(DOCUMENT_COLUMNS, d, strict=True)) for d in documents],
        )
        for table, columns, values in (
            (COLUMNS, (*FIELD_COLUMNS, "words"), fields),
            (KEYWORDS, VALUE_COLUMNS, keywords),
            (NUMBERS, VALUE_COLUMNS, numbers),
        ):
            if values:
                names = ", ".join(columns)  # constants of this module, never input
                marks = ", ".join("?" for _ in columns)
                conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", values)

    def _words(self, found: list[str]) -> str:
        """Words for the words column: tsvector text on PostgreSQL (each one a quoted
        lexeme), the FTS5 input on SQLite."""
        if not self.postgres:
            return " ".join(found)
        return " ".join("'" + w.replace("\\", "\\\\").replace("'", "''") + "'" for w in found)

    @staticmethod
    def _upsert_documents() -> Any:
        upsert = sqlite.insert(DOCUMENTS)
        return upsert.on_conflict_do_update(
            index_elements=[DOCUMENTS.c.series_instance_uid],
            set_={
                "study_instance_uid": upsert.excluded.study_instance_uid,
                "document": upsert.excluded.document,
                "indexed_at": upsert.excluded.indexed_at,
            },
        ).values(document=sa.type_coerce(sa.bindparam("document", type_=sa.Text), sa.Text))

    @staticmethod
    def _copy(
        conn: Connection, table: sa.Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        """COPY rows into a table (PostgreSQL), in this transaction; names are constants."""
        if not rows:
            return
        driver: Any = conn.connection.dbapi_connection  # psycopg
        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)

    def _remove(
        self, conn: Connection, uids: Sequence[str] | Select[Any], *, keep_documents: bool
    ) -> int:
        """Delete the rows of ``uids``, children first (foreign keys need not cascade)."""
        old = sa.select(COLUMNS.c.doc_id).where(COLUMNS.c.series_instance_uid.in_(uids))
        conn.execute(sa.delete(KEYWORDS).where(KEYWORDS.c.doc_id.in_(old)))
        conn.execute(sa.delete(NUMBERS).where(NUMBERS.c.doc_id.in_(old)))
        conn.execute(sa.delete(COLUMNS).where(COLUMNS.c.series_instance_uid.in_(uids)))
        if keep_documents:
            return 0
        gone = conn.execute(sa.delete(DOCUMENTS).where(DOCUMENTS.c.series_instance_uid.in_(uids)))
        return int(gone.rowcount)  # type: ignore[attr-defined]

    def delete(self, series_instance_uids: Sequence[str]) -> int:
        deleted = 0
        with self._write_transaction() as conn:
            for batch in chunked(series_instance_uids, self.batch_size):
                deleted += self._remove(conn, batch, keep_documents=False)
        return deleted

    def clear(self) -> None:
        with self._write_transaction() as conn:
            if self.postgres:
                conn.execute(
                    sa.text(
                        "TRUNCATE search_keywords, search_numbers, search_fields, search_documents"
                    )
                )
                return
            for table in (KEYWORDS, NUMBERS, COLUMNS, DOCUMENTS):
                conn.execute(sa.delete(table))
