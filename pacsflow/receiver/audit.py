"""DIMSE services in the audit trail: which calling AE, from where, which studies, and how
the service ended (C-STORE per association, in pacsflow.receiver.association_log)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pynetdicom import events as evt

from pacsflow.archive.archive import Archive
from pacsflow.audit import AuditKind, AuditRecord, dimse_outcome

PENDING = frozenset({0xFF00, 0xFF01})


def peer(event: evt.Event) -> str:
    return f"{event.assoc.requestor.address}:{event.assoc.requestor.port}"


def calling_ae(event: evt.Event) -> str:
    return str(event.assoc.requestor.ae_title or "").strip()


def called_ae(event: evt.Event) -> str:
    """The AE title the peer called: ours, or a project's (pynetdicom's acceptor title is
    always ours)."""
    request = event.assoc.requestor.primitive
    called = request.called_ae_title if request is not None else event.assoc.acceptor.ae_title
    return str(called or "").strip()


def record_service(
    event: evt.Event,
    archive: Archive,
    kind: AuditKind,
    status: int,
    detail: str,
    studies: Iterable[str] = (),
) -> None:
    archive.audit.record(
        AuditRecord(
            kind=kind,
            user=calling_ae(event),
            source=peer(event),
            interface="dimse",
            status=status,
            outcome=dimse_outcome(status),
            studies=tuple(s for s in studies if s),
            detail=detail,
        )
    )


def _status(value: Any) -> int | None:
    """The status of a response: an int, or a status data set's Status."""
    if isinstance(value, int):
        return value
    status = getattr(value, "Status", None)
    return int(status) if status is not None else None


def audited(
    event: evt.Event,
    archive: Archive,
    kind: AuditKind,
    detail: str,
    responses: Iterator[tuple[Any, Any]],
    studies: Iterable[str] = (),
) -> Iterator[tuple[Any, Any]]:
    """Pass (status, data set) responses on, and record the service when they end, however
    they end (a peer may abort mid-way); studies are those given and those answered."""
    final = 0
    seen = set(studies)
    try:
        for response in responses:
            status = _status(response[0])
            if status is not None and status not in PENDING:
                final = status
            answer = response[1]
            if answer is not None and "StudyInstanceUID" in answer:
                seen.add(str(answer.StudyInstanceUID))
            yield response
    finally:
        record_service(event, archive, kind, final, detail, seen)
