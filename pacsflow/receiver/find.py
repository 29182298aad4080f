"""C-FIND SCP for the Patient Root and Study Root Query/Retrieve models (PS3.4 C.4.1).

The identifier is translated into the archive's query model
(:mod:`pacsflow.archive.query`), so DIMSE and QIDO-RS match the same way: person names
case-insensitively, UID lists, date and time ranges, ``*`` and ``?`` wildcards.

Choices where PS3.4 leaves room (the conformance statement should repeat them):

- Hierarchical search only (no relational queries): below the top level, the unique key of
  every level above (PatientID in the Patient Root model, StudyInstanceUID,
  SeriesInstanceUID) needs a single value without wildcards, else 0xA900.
- A key of a level below the query level with a value is refused with 0xA900; given empty,
  it is returned from the first instance of the match, like any key that is not indexed.
- Keys the index cannot match on (counts, attributes that are not index columns, sequences,
  so no sequence matching) are return keys: their value is ignored, matching is universal,
  and every match is sent with 0xFF01 (optional keys not supported) instead of 0xFF00.
- Each response holds exactly the requested keys, plus QueryRetrieveLevel, the unique keys
  of the query level and above, and SpecificCharacterSet ``ISO_IR 192`` when it holds text.
  Values come from index columns and counts, else from the first instance's stored JSON;
  bulk data and private attributes are never returned.
- Matches are read in pages of :data:`PAGE_SIZE`, each in its own short transaction, in
  index order; an object deleted while a peer reads a long answer may shift one match out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import Enum, IntEnum
from typing import TYPE_CHECKING, Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom.events import Event
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # made at import time
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)
from sqlalchemy.exc import SQLAlchemyError

from pacsflow.archive.access import Action, access_for_peer
from pacsflow.archive.query import (
    ATTRIBUTES,
    Level,
    Matching,
    Query,
    QueryError,
    parse_query,
    parse_tag,
    resolve,
    search,
)
from pacsflow.audit import AuditKind
from pacsflow.receiver.audit import audited, calling_ae, record_service
from pacsflow.receiver.identifier import decoded_identifier
from pacsflow.receiver.status import RequestFailure

if TYPE_CHECKING:
    from pacsflow.archive.archive import Archive

logger = logging.getLogger(__name__)

FIND_SOP_CLASSES = (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)
PAGE_SIZE = 200
SPECIFIC_CHARACTER_SET = "ISO_IR 192"
# VRs whose values depend on the Specific Character Set (PS3.5 6.1.2.3).
TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})
_WILDCARD = re.compile(r"[*?]")


class FindStatus(IntEnum):
    """C-FIND response statuses (PS3.4 C.4.1.1.4, PS3.7 C)."""

    SUCCESS = 0x0000
    PENDING = 0xFF00
    PENDING_OPTIONAL_KEYS_NOT_SUPPORTED = 0xFF01
    CANCEL = 0xFE00
    OUT_OF_RESOURCES = 0xA700
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    UNABLE_TO_PROCESS = 0xC000
    CANNOT_DECODE_IDENTIFIER = 0xC310  # in the 0xCxxx "unable to process" range


class QueryRetrieveLevelValues(Enum):
    """Defined terms of QueryRetrieveLevel (0008,0052)."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"


_LEVELS = {
    QueryRetrieveLevelValues.PATIENT: Level.PATIENT,
    QueryRetrieveLevelValues.STUDY: Level.STUDY,
    QueryRetrieveLevelValues.SERIES: Level.SERIES,
    QueryRetrieveLevelValues.IMAGE: Level.INSTANCE,
}
# The levels of each model, top first.
MODEL_LEVELS: dict[str, tuple[QueryRetrieveLevelValues, ...]] = {
    PatientRootQueryRetrieveInformationModelFind: tuple(QueryRetrieveLevelValues),
    StudyRootQueryRetrieveInformationModelFind: (
        QueryRetrieveLevelValues.STUDY,
        QueryRetrieveLevelValues.SERIES,
        QueryRetrieveLevelValues.IMAGE,
    ),
}
UNIQUE_KEYS = {
    QueryRetrieveLevelValues.PATIENT: "PatientID",
    QueryRetrieveLevelValues.STUDY: "StudyInstanceUID",
    QueryRetrieveLevelValues.SERIES: "SeriesInstanceUID",
    QueryRetrieveLevelValues.IMAGE: "SOPInstanceUID",
}
_QUERY_RETRIEVE_LEVEL = 0x00080052
_SPECIFIC_CHARACTER_SET = 0x00080005
# Levels below each level, for telling a misplaced key from an unindexed one.
_BELOW = {
    Level.PATIENT: (Level.STUDY, Level.SERIES, Level.INSTANCE),
    Level.STUDY: (Level.SERIES, Level.INSTANCE),
    Level.SERIES: (Level.INSTANCE,),
    Level.INSTANCE: (),
}

FindResponse = tuple[int | Dataset, Dataset | None]


@dataclass(frozen=True)
class FindRequest:
    """A C-FIND identifier translated into a query, and what each response must carry."""

    level: QueryRetrieveLevelValues
    query: Query
    returned: dict[int, str]  # tag -> VR of each key a response carries, in tag order
    unsupported: tuple[int, ...]  # keys whose value was ignored (treated as return keys)

    @property
    def pending_status(self) -> FindStatus:
        if self.unsupported:
            return FindStatus.PENDING_OPTIONAL_KEYS_NOT_SUPPORTED
        return FindStatus.PENDING

    def response(self, match: dict[str, Any]) -> Dataset:
        """The identifier of one pending response, from one QIDO-style JSON match."""
        document: dict[str, Any] = {}
        for tag, vr in self.returned.items():
            element = match.get(f"{tag:08X}")
            if element is None or "BulkDataURI" in element:
                element = {"vr": vr}  # no value here: returned zero-length
            document[f"{tag:08X}"] = element
        identifier = Dataset.from_json(document, bulk_data_uri_handler=_no_bulk_data)
        identifier.QueryRetrieveLevel = self.level.value
        if any(element.VR in TEXT_VRS and not element.is_empty for element in identifier):
            identifier.SpecificCharacterSet = SPECIFIC_CHARACTER_SET
        return identifier


def _no_bulk_data(tag: str, vr: str, uri: str) -> bytes:
    """Bulk data nested in a returned sequence: C-FIND answers never carry it."""
    return b""


def handle_find(event: Event, archive: Archive) -> Iterator[FindResponse]:
    """Answer a C-FIND request from the archive index (bind to ``evt.EVT_C_FIND``).

    pynetdicom sends the final Success itself when this generator ends.
    """
    model = str(event.request.AffectedSOPClassUID)
    try:
        identifier = decoded_identifier(event, FindStatus.CANNOT_DECODE_IDENTIFIER, "C-FIND")
        request = for_caller(event, archive, parse_identifier(model, identifier))
    except RequestFailure as failure:
        logger.info("C-FIND refused with 0x%04X (%s)", failure.status, _keyword(failure.tag) or "-")
        record_service(event, archive, AuditKind.QUERY, failure.status, "C-FIND refused")
        yield failure.status_dataset(), None
        return

    logger.info("C-FIND %s level, %d keys", request.level.value, len(request.returned))
    keys = ",".join(m.attribute.keyword for m in request.query.matchers if m.condition is not None)
    detail = f"C-FIND {request.level.value} {keys}".rstrip()
    yield from audited(event, archive, AuditKind.QUERY, detail, _matches(event, archive, request))


def for_caller(event: Event, archive: Archive, request: FindRequest) -> FindRequest:
    """``request`` limited to the studies the calling AE may query and retrieve."""
    with archive.engine.connect() as conn:
        access = access_for_peer(conn, calling_ae(event))
    return replace(request, query=replace(request.query, visible=access.studies(Action.READ)))


def _matches(event: Event, archive: Archive, request: FindRequest) -> Iterator[FindResponse]:
    """Stream matches a page at a time, stopping at a C-CANCEL."""
    offset = 0
    count = 0
    while True:
        if event.is_cancelled:
            yield from _cancelled(count)
            return
        try:
            with archive.sessions() as session:
                page = search(session, replace(request.query, limit=PAGE_SIZE, offset=offset), "")
        except SQLAlchemyError as error:
            # The error's text holds bound values, i.e. PHI: log the class only.
            logger.error("C-FIND query failed: %s", type(error).__name__)
            failure = RequestFailure(FindStatus.UNABLE_TO_PROCESS, "The archive index failed")
            yield failure.status_dataset(), None
            return
        for match in page.matches:
            if event.is_cancelled:
                yield from _cancelled(count)
                return
            yield request.pending_status, request.response(match)
            count += 1
        if not page.more:
            logger.info("C-FIND answered %d matches", count)
            return
        offset += PAGE_SIZE


def _cancelled(count: int) -> Iterator[FindResponse]:
    logger.info("C-FIND cancelled by the peer after %d matches", count)
    yield FindStatus.CANCEL, None


def parse_identifier(model: str, identifier: Dataset) -> FindRequest:
    """Translate a C-FIND identifier under ``model`` into a :class:`FindRequest`.

    Raises :class:`RequestFailure` naming the wrong attribute.
    """
    levels = MODEL_LEVELS.get(model)
    if levels is None:
        raise RequestFailure(
            FindStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
            f"SOP Class {model} is not a supported C-FIND model",
        )
    level = _query_retrieve_level(identifier, levels)
    query_level = _LEVELS[level]

    parameters: list[tuple[str, str]] = []
    returned: dict[int, str] = {}
    unsupported: list[int] = []
    for element in identifier:
        tag = int(element.tag)
        if tag in (_QUERY_RETRIEVE_LEVEL, _SPECIFIC_CHARACTER_SET):
            continue
        if element.tag.is_private or element.tag.element == 0:
            continue  # private keys and group lengths are never matched nor returned
        returned[tag] = _response_vr(element)
        name = element.keyword or f"{tag:08X}"  # QueryError messages name it this way
        text = _text(element)
        if not text:
            parameters.append((name, ""))
            continue
        attribute = resolve(query_level, tag)
        if attribute is None:
            _check_not_below(query_level, tag)
        if attribute is None or attribute.matching is Matching.NONE or element.VR == "SQ":
            unsupported.append(tag)
            parameters.append((name, ""))
        else:
            parameters.append((name, text))

    _check_unique_keys_above(identifier, level, levels)
    for above in levels[: levels.index(level) + 1]:
        tag = _tag(UNIQUE_KEYS[above])
        if tag not in returned:
            returned[tag] = dictionary_VR(tag)
            parameters.append((UNIQUE_KEYS[above], ""))

    try:
        query = parse_query(query_level, parameters)
    except QueryError as error:
        raise RequestFailure(
            FindStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
            str(error),
            parse_tag(error.parameter),
        ) from None
    return FindRequest(level, query, dict(sorted(returned.items())), tuple(unsupported))


def _query_retrieve_level(
    identifier: Dataset, levels: tuple[QueryRetrieveLevelValues, ...]
) -> QueryRetrieveLevelValues:
    value = str(identifier.get("QueryRetrieveLevel", "") or "").strip()
    names = "/".join(level.value for level in levels)
    try:
        level = QueryRetrieveLevelValues(value)
    except ValueError:
        raise RequestFailure(
            FindStatus.UNABLE_TO_PROCESS,
            f"QueryRetrieveLevel {value[:16]!r} unknown: give {names}",
            _QUERY_RETRIEVE_LEVEL,
        ) from None
    if level not in levels:
        raise RequestFailure(
            FindStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
            f"QueryRetrieveLevel {level.value} not in this model: give {names}",
            _QUERY_RETRIEVE_LEVEL,
        )
    return level


def _check_unique_keys_above(
    identifier: Dataset,
    level: QueryRetrieveLevelValues,
    levels: tuple[QueryRetrieveLevelValues, ...],
) -> None:
    """Hierarchical search: each level above needs its unique key as one plain value."""
    for above in levels[: levels.index(level)]:
        keyword = UNIQUE_KEYS[above]
        element = identifier.get(_tag(keyword))
        text = _text(element) if element is not None else ""
        if not text or _WILDCARD.search(text) or "\\" in text:
            raise RequestFailure(
                FindStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                f"{keyword} needs one value (no wildcards) at {level.value} level",
                _tag(keyword),
            )


def _check_not_below(level: Level, tag: int) -> None:
    for lower in _BELOW[level]:
        if tag in ATTRIBUTES[lower]:
            raise RequestFailure(
                FindStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                f"{_keyword(tag)} is a {lower.name} key: not matched at {level.name} level",
                tag,
            )


def _text(element: DataElement) -> str:
    """The element's value as a query parameter: multiple values joined by backslashes."""
    value = element.value
    if element.VR == "SQ":
        return "item" if any(len(item) for item in value or ()) else ""
    if value is None or value == "":
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace")
    return str(value).strip(" \x00")


def _response_vr(element: DataElement) -> str:
    """The VR a response uses: the dictionary's, unless ambiguous or unknown."""
    try:
        vr = dictionary_VR(element.tag)
    except KeyError:
        return str(element.VR)
    return vr if " or " not in vr else str(element.VR)


def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return tag


def _keyword(tag: int | None) -> str:
    if tag is None:
        return ""
    return keyword_for_tag(tag) or f"({tag:08X})"


__all__ = [
    "FIND_SOP_CLASSES",
    "MODEL_LEVELS",
    "PAGE_SIZE",
    "UNIQUE_KEYS",
    "FindRequest",
    "FindStatus",
    "QueryRetrieveLevelValues",
    "handle_find",
    "parse_identifier",
]
