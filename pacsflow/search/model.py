"""The search contract: series documents, the query model, and what a backend must do.

A document is a JSON object. Its top-level fields are listed in FIELDS with their types, so
that both backends index them alike and the query compilers know how to compare them:
dates as ``YYYY-MM-DD``, date-times as ISO 8601 in UTC (naive where DICOM gave no offset),
numbers as numbers, person names as an object of components, keywords compared exactly,
text searched by words. ``tags`` holds
every header element of a representative instance by DICOM keyword (typed the same way by
VR; sequences as lists of nested objects) and ``radiomics`` maps a pyradiomics feature name
to the list of its values (one per segment or ROI), so ranges match when any value does.

Queries address fields by dotted path: ``Modality``, ``PatientName.FamilyName``,
``tags.SliceThickness``, ``radiomics.original_shape_MeshVolume``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class FieldType(StrEnum):
    KEYWORD = "keyword"  # exact: UIDs, codes, CS values, AE titles
    TEXT = "text"  # words: descriptions, free text
    DATE = "date"  # YYYY-MM-DD
    DATETIME = "datetime"  # ISO 8601: UTC "...Z", or a naive local time (no offset known)
    NUMBER = "number"
    PERSON_NAME = (
        "person_name"  # {Alphabetic, FamilyName, GivenName, MiddleName, NamePrefix, NameSuffix}
    )
    OBJECT = "object"  # nested fields, typed by path (tags.*, radiomics.*)


FIELDS: dict[str, FieldType] = {
    # identity
    "SeriesInstanceUID": FieldType.KEYWORD,
    "StudyInstanceUID": FieldType.KEYWORD,
    # patient
    "PatientID": FieldType.KEYWORD,
    "PatientName": FieldType.PERSON_NAME,
    "PatientBirthDate": FieldType.DATE,
    "PatientSex": FieldType.KEYWORD,
    # study
    "StudyDate": FieldType.DATE,
    "StudyDateTime": FieldType.DATETIME,
    "StudyDescription": FieldType.TEXT,
    "AccessionNumber": FieldType.KEYWORD,
    "StudyID": FieldType.KEYWORD,
    "ReferringPhysicianName": FieldType.PERSON_NAME,
    "ModalitiesInStudy": FieldType.KEYWORD,  # list
    # series
    "Modality": FieldType.KEYWORD,
    "SOPClassUIDs": FieldType.KEYWORD,  # list
    "SeriesNumber": FieldType.NUMBER,
    "SeriesDescription": FieldType.TEXT,
    "BodyPartExamined": FieldType.KEYWORD,
    "SeriesDate": FieldType.DATE,
    "Manufacturer": FieldType.KEYWORD,
    # what varies across instances, summarised
    "NumberOfInstances": FieldType.NUMBER,
    "SlicePositionMin": FieldType.NUMBER,  # along the slice normal, mm
    "SlicePositionMax": FieldType.NUMBER,
    "AcquisitionDateTimeMin": FieldType.DATETIME,
    "AcquisitionDateTimeMax": FieldType.DATETIME,
    # derived
    "ArrivedAt": FieldType.DATETIME,  # the newest arrival of the series
    "SourceKind": FieldType.KEYWORD,  # stow, dimse, import, workflow
    "SourceAE": FieldType.KEYWORD,  # calling AE title (DIMSE)
    "Project": FieldType.KEYWORD,  # list; empty until projects exist
    "AnnotationLabels": FieldType.KEYWORD,  # list: SEG segment labels, RTSTRUCT ROI names
    "radiomics": FieldType.OBJECT,  # feature name -> list of numbers
    "tags": FieldType.OBJECT,  # every element of a representative instance
}

TEXT_FIELDS = (
    "PatientName.Alphabetic",
    "StudyDescription",
    "SeriesDescription",
    "AnnotationLabels",
)


# asciifolding also folds these letters, which Unicode decomposition leaves alone.
_FOLD_EXTRA = str.maketrans(
    {"ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "đ": "d", "ł": "l", "þ": "th", "ı": "i"}
)


def fold(value: str) -> str:
    """Lower case without accents: how person names and words compare in every backend
    (OpenSearch's lowercase and asciifolding filters)."""
    decomposed = unicodedata.normalize("NFKD", value.lower().translate(_FOLD_EXTRA))
    return "".join(char for char in decomposed if not unicodedata.combining(char))


# -------------------------------------------------------------------- query model


class _Clause(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Clause):
    """Free text: every word must occur in one of TEXT_FIELDS (case- and accent-blind)."""

    kind: Literal["text"] = "text"
    text: str


class Term(_Clause):
    kind: Literal["term"] = "term"
    field: str
    value: str | float | bool


class Terms(_Clause):
    kind: Literal["terms"] = "terms"
    field: str
    values: list[str | float]


class Wildcard(_Clause):
    """``*`` any characters, ``?`` one; case-sensitive on keywords, blind on person names."""

    kind: Literal["wildcard"] = "wildcard"
    field: str
    pattern: str


class Range(_Clause):
    """Bounds of the field's type: numbers, or ISO dates / date-times as strings."""

    kind: Literal["range"] = "range"
    field: str
    gte: str | float | None = None
    gt: str | float | None = None
    lte: str | float | None = None
    lt: str | float | None = None


class Exists(_Clause):
    kind: Literal["exists"] = "exists"
    field: str


class Bool(_Clause):
    kind: Literal["bool"] = "bool"
    must: list[Clause] = []
    should: list[Clause] = []  # at least one, when given
    must_not: list[Clause] = []


Clause = Annotated[
    Text | Term | Terms | Wildcard | Range | Exists | Bool, Field(discriminator="kind")
]
Bool.model_rebuild()


class Sort(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    order: Literal["asc", "desc"] = "asc"


class TermsFacet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["terms"] = "terms"
    field: str
    size: Annotated[int, Field(ge=1, le=1000)] = 20


class DateHistogramFacet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["date_histogram"] = "date_histogram"
    field: str
    interval: Literal["year", "month", "day"] = "month"


Facet = Annotated[TermsFacet | DateHistogramFacet, Field(discriminator="kind")]


class SearchRequest(BaseModel):
    """What POST /api/v1/search takes; GET builds one from QIDO-style parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query: Clause | None = None  # None: every document
    sort: list[Sort] = []  # default: ArrivedAt descending, then SeriesInstanceUID
    offset: Annotated[int, Field(ge=0)] = 0
    limit: Annotated[int, Field(ge=0, le=1000)] = 25
    facets: dict[str, Facet] = {}


class Bucket(BaseModel):
    key: str  # the term, or the interval's first day (YYYY-MM-DD)
    count: int


class SearchResult(BaseModel):
    total: int
    hits: list[dict[str, Any]]  # the documents, in order
    facets: dict[str, list[Bucket]] = {}  # terms: by count desc then key; histograms: by key


class SearchError(ValueError):
    """A request the backend cannot run: an unknown field, a bound of the wrong type...;
    the message names the field and the problem (HTTP 400)."""


class SearchBackend(Protocol):
    """Where documents are kept and searched; every method is safe to call from threads."""

    def index(self, documents: Iterable[dict[str, Any]]) -> int:
        """Add or replace documents by SeriesInstanceUID; return how many."""

    def delete(self, series_instance_uids: Sequence[str]) -> int:
        """Remove documents; return how many were there."""

    def search(self, request: SearchRequest) -> SearchResult: ...

    def clear(self) -> None:
        """Remove every document."""

    def reindex(self, documents: Iterable[dict[str, Any]]) -> int:
        """Replace every document by ``documents`` (streamed); searches keep answering from
        the old documents until the new ones are in place. Return how many."""
