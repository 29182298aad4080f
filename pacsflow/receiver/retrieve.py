"""C-MOVE and C-GET SCP for the Patient Root and Study Root Query/Retrieve models (PS3.4 C.4.2,
C.4.3).

The identifier is parsed exactly as for C-FIND (:func:`pacsflow.receiver.find.parse_identifier`),
so hierarchical unique-key rules and matching are the same; every instance below the matched
patients, studies, series or instances is sent, read from the stored Part-10 file and sent as
stored (pynetdicom converts between uncompressed transfer syntaxes only if the peer needs it).

Choices where PS3.4 leaves room (the conformance statement should repeat them):

- The unique key of the retrieve level needs a value (a UID list is allowed, wildcards are
  not), else 0xA900: a retrieve never means "everything".
- A C-MOVE destination must be registered (``pacsflow ae add --host --port``); an unknown
  title, or one without host and port, is refused with 0xA801 before anything is matched.
- A refused identifier is answered after pynetdicom has associated with the destination (its
  handler protocol asks for the destination first), so an unreachable destination is reported
  as 0xA801 even then.
- At most :data:`MAX_SUB_OPERATIONS` instances per request (the counts are US), else 0xA701.
- The destination is offered one presentation context per SOP class (stored syntaxes, then
  Explicit and Implicit VR Little Endian), at most 128; instances of classes past that, or
  of a context the destination rejects, are failed sub-operations.
- A stored file that cannot be read is a failed sub-operation (listed in
  FailedSOPInstanceUIDList), not a failure of the whole request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # made at import time
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from pacsflow.archive.models import Instance, Patient, Series, Study
from pacsflow.archive.query import Level
from pacsflow.archive.remote_aes import find_peer
from pacsflow.audit import AuditKind
from pacsflow.receiver.audit import audited, record_service
from pacsflow.receiver.find import (
    UNIQUE_KEYS,
    FindRequest,
    for_caller,
    parse_identifier,
)
from pacsflow.receiver.identifier import decoded_identifier
from pacsflow.receiver.status import RequestFailure
from pacsflow.receiver.syntaxes import VERIFICATION_SOP_CLASS

if TYPE_CHECKING:
    from pacsflow.archive.archive import Archive

logger = logging.getLogger(__name__)

# Each retrieve model, and the C-FIND model whose identifier rules it shares.
MOVE_SOP_CLASSES = {
    PatientRootQueryRetrieveInformationModelMove: PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove: StudyRootQueryRetrieveInformationModelFind,
}
GET_SOP_CLASSES = {
    PatientRootQueryRetrieveInformationModelGet: PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet: StudyRootQueryRetrieveInformationModelFind,
}
MAX_SUB_OPERATIONS = 65535  # NumberOfRemainingSuboperations is US
MAX_PRESENTATION_CONTEXTS = 128  # PS3.8 9.3.2.2: odd context IDs 1 to 255
_FALLBACK_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


class RetrieveStatus(IntEnum):
    """C-MOVE and C-GET response statuses (PS3.4 C.4.2.1.5, C.4.3.1.4)."""

    SUCCESS = 0x0000
    PENDING = 0xFF00
    CANCEL = 0xFE00
    WARNING_SUB_OPERATIONS_FAILED = 0xB000
    OUT_OF_RESOURCES_MATCHES = 0xA701
    OUT_OF_RESOURCES_SUB_OPERATIONS = 0xA702
    MOVE_DESTINATION_UNKNOWN = 0xA801
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    UNABLE_TO_PROCESS = 0xC000
    CANNOT_DECODE_IDENTIFIER = 0xC310


@dataclass(frozen=True)
class Match:
    """One instance to send."""

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    storage_key: str
    study_instance_uid: str


RetrieveResponse = tuple[int | Dataset, Dataset | None]


def handle_move(event: Event, archive: Archive) -> Iterator[Any]:
    """Answer a C-MOVE request (bind to ``evt.EVT_C_MOVE``).

    Yields the destination, then the number of sub-operations, then a (status, data set)
    pair per instance; pynetdicom sends the C-STOREs and the final response.
    """
    title = str(event.move_destination or "")
    peer = find_peer(archive, title)
    if peer is None or not peer.host or peer.port is None:
        logger.info("C-MOVE refused: destination %r is not a registered peer", title.strip())
        status = RetrieveStatus.MOVE_DESTINATION_UNKNOWN
        record_service(event, archive, AuditKind.RETRIEVE, status, "C-MOVE refused")
        yield None, None  # pynetdicom answers 0xA801
        return
    try:
        matches = _resolve(event, MOVE_SOP_CLASSES, archive)
    except RequestFailure as failure:
        record_service(event, archive, AuditKind.RETRIEVE, failure.status, "C-MOVE refused")
        # pynetdicom associates before it reads the failure; it needs a context to propose.
        yield peer.host, peer.port, {"contexts": [build_context(VERIFICATION_SOP_CLASS)]}
        yield 1
        yield failure.status_dataset(), None
        return
    logger.info("C-MOVE of %d instances to %s", len(matches), peer.ae_title)
    yield peer.host, peer.port, {"contexts": destination_contexts(matches)}
    yield len(matches)
    detail = f"C-MOVE {len(matches)} instances to {peer.ae_title}"
    yield from _audited_send(event, archive, detail, matches)


def handle_get(event: Event, archive: Archive) -> Iterator[Any]:
    """Answer a C-GET request (bind to ``evt.EVT_C_GET``); the peer stores on this association.

    Yields the number of sub-operations, then a (status, data set) pair per instance.
    """
    try:
        matches = _resolve(event, GET_SOP_CLASSES, archive)
    except RequestFailure as failure:
        record_service(event, archive, AuditKind.RETRIEVE, failure.status, "C-GET refused")
        yield 1
        yield failure.status_dataset(), None
        return
    logger.info("C-GET of %d instances", len(matches))
    yield len(matches)
    yield from _audited_send(event, archive, f"C-GET {len(matches)} instances", matches)


def _audited_send(
    event: Event, archive: Archive, detail: str, matches: list[Match]
) -> Iterator[RetrieveResponse]:
    studies = {match.study_instance_uid for match in matches}
    responses = _send(event, archive, matches)
    yield from audited(event, archive, AuditKind.RETRIEVE, detail, responses, studies)


def destination_contexts(matches: Sequence[Match]) -> list[PresentationContext]:
    """One context per SOP class, offering the stored syntaxes and then the uncompressed ones."""
    syntaxes: dict[str, list[str]] = {}
    for match in matches:
        offered = syntaxes.setdefault(match.sop_class_uid, [])
        if match.transfer_syntax_uid not in offered:
            offered.insert(0, match.transfer_syntax_uid)
    contexts = []
    for sop_class, stored in list(syntaxes.items())[:MAX_PRESENTATION_CONTEXTS]:
        offered = [*stored, *(ts for ts in _FALLBACK_SYNTAXES if ts not in stored)]
        contexts.append(build_context(UID(sop_class), [UID(ts) for ts in offered]))
    return contexts


def _resolve(event: Event, models: dict[str, str], archive: Archive) -> list[Match]:
    """The instances the identifier asks for; raises :class:`RequestFailure`."""
    model = str(event.request.AffectedSOPClassUID)
    find_model = models.get(model)
    if find_model is None:
        raise RequestFailure(
            RetrieveStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
            f"SOP Class {model} is not a supported retrieve model",
        )
    identifier = decoded_identifier(event, RetrieveStatus.CANNOT_DECODE_IDENTIFIER, "Retrieve")
    # Refusals share C-FIND's statuses.
    request = for_caller(event, archive, parse_identifier(find_model, identifier))
    _check_unique_key(identifier, request)
    try:
        matches = _instances(archive, request)
    except SQLAlchemyError as error:
        # The error's text holds bound values, i.e. PHI: log the class only.
        logger.error("Retrieve query failed: %s", type(error).__name__)
        raise RequestFailure(RetrieveStatus.UNABLE_TO_PROCESS, "The archive index failed") from None
    if len(matches) > MAX_SUB_OPERATIONS:
        raise RequestFailure(
            RetrieveStatus.OUT_OF_RESOURCES_MATCHES,
            f"More than {MAX_SUB_OPERATIONS} instances match; retrieve fewer at once",
        )
    return matches


def _check_unique_key(identifier: Dataset, request: FindRequest) -> None:
    keyword = UNIQUE_KEYS[request.level]
    tag = tag_for_keyword(keyword)
    element = identifier.get(tag) if tag is not None else None
    value = element.value if element is not None else None
    values = [str(v) for v in value] if isinstance(value, list | tuple) else [str(value or "")]
    if not any(v.strip() for v in values) or any("*" in v or "?" in v for v in values):
        raise RequestFailure(
            RetrieveStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
            f"{keyword} needs a value (UIDs, no wildcards) at {request.level.value} level",
            tag,
        )


def _instances(archive: Archive, request: FindRequest) -> list[Match]:
    """Every instance below the matches of ``request``, in the order they were stored."""
    statement = (
        select(
            Instance.sop_instance_uid,
            Instance.sop_class_uid,
            Instance.transfer_syntax_uid,
            Instance.storage_key,
            Study.study_instance_uid,
        )
        .join(Series, Instance.series_fk == Series.id)
        .join(Study, Series.study_fk == Study.id)
    )
    if request.query.level is Level.PATIENT:
        statement = statement.join(Patient, Study.patient_fk == Patient.id)
    conditions = [m.condition for m in request.query.matchers if m.condition is not None]
    if request.query.visible is not None:
        conditions.append(request.query.visible)
    statement = statement.where(*conditions).order_by(Instance.id).limit(MAX_SUB_OPERATIONS + 1)
    with archive.sessions() as session:
        return [Match(*row) for row in session.execute(statement)]


def _send(event: Event, archive: Archive, matches: list[Match]) -> Iterator[RetrieveResponse]:
    """A pending response per instance, read only when it is its turn."""
    for sent, match in enumerate(matches):
        if event.is_cancelled:
            logger.info("Retrieve cancelled by the peer after %d of %d", sent, len(matches))
            yield RetrieveStatus.CANCEL, None
            return
        yield RetrieveStatus.PENDING, _read(archive, match)


def _read(archive: Archive, match: Match) -> Dataset:
    """The stored data set; if unreadable, a stub without SOP Class UID, which pynetdicom
    cannot send and so counts as a failed sub-operation listing its SOP Instance UID."""
    try:
        with archive.storage.open(match.storage_key) as stream:
            return dcmread(stream)
    except Exception as error:  # noqa: BLE001 - any read failure fails this sub-operation only
        logger.error("Stored file %s cannot be read: %s", match.storage_key, type(error).__name__)
        stub = Dataset()
        stub.SOPInstanceUID = match.sop_instance_uid
        return stub


__all__ = [
    "GET_SOP_CLASSES",
    "MAX_SUB_OPERATIONS",
    "MOVE_SOP_CLASSES",
    "Match",
    "RetrieveStatus",
    "destination_contexts",
    "handle_get",
    "handle_move",
]
