"""The audit trail: every access to patient data, recorded in the archive's database.

Each interface describes an access as an AuditRecord (who, from where, what, which studies,
outcome, after IHE ATNA); an AuditTrail writes them in batches from a background thread, so
that a viewer fetching hundreds of frames does not pay a database write (on SQLite, an
fsync) per request. Records reach the table within FLUSH_SECONDS; ``flush`` writes what is
pending at once, and closing the archive flushes. What a process had not flushed when it
was killed is lost: at most FLUSH_SECONDS of records.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any, Final, cast

from sqlalchemy import Engine, Table, Text, insert, select
from sqlalchemy import cast as sql_cast

from pacsflow.archive.ingest import utc_now
from pacsflow.archive.models import AuditEvent

__all__ = [
    "AuditKind",
    "AuditOutcome",
    "AuditRecord",
    "AuditTrail",
    "dimse_outcome",
    "http_outcome",
    "read_events",
]

logger = logging.getLogger(__name__)

FLUSH_SECONDS: Final = 1.0
OUTAGE_WARNING_SECONDS: Final = 60.0
EVENTS = cast(Table, AuditEvent.__table__)


class AuditKind(StrEnum):
    QUERY = "query"
    RETRIEVE = "retrieve"
    STORE = "store"
    DELETE = "delete"
    SEARCH = "search"
    EXPORT = "export"


# ATNA EventID (DCM codes, PS3.16 CID 400) and EventActionCode of each kind.
ATNA: Final[dict[AuditKind, tuple[str, str]]] = {
    AuditKind.QUERY: ("110112", "E"),  # Query
    AuditKind.RETRIEVE: ("110103", "R"),  # DICOM Instances Accessed
    AuditKind.STORE: ("110104", "C"),  # DICOM Instances Transferred
    AuditKind.DELETE: ("110105", "D"),  # DICOM Study Deleted
    AuditKind.SEARCH: ("110112", "E"),  # Query
    AuditKind.EXPORT: ("110106", "R"),  # Export
}


class AuditOutcome(IntEnum):
    """ATNA EventOutcomeIndicator."""

    SUCCESS = 0
    MINOR_FAILURE = 4
    SERIOUS_FAILURE = 8


def http_outcome(status: int) -> AuditOutcome:
    """202 (some parts refused) and 4xx are minor failures, 5xx serious ones."""
    if status >= 500:
        return AuditOutcome.SERIOUS_FAILURE
    if status >= 400 or status == 202:
        return AuditOutcome.MINOR_FAILURE
    return AuditOutcome.SUCCESS


def dimse_outcome(status: int) -> AuditOutcome:
    """Success, warnings (0xB..., 0x0001, 0x0107, 0x0116) and cancels are not failures of
    the service; everything else is."""
    if status == 0:
        return AuditOutcome.SUCCESS
    if 0xB000 <= status <= 0xBFFF or status in (0x0001, 0x0107, 0x0116, 0xFE00):
        return AuditOutcome.MINOR_FAILURE
    return AuditOutcome.SERIOUS_FAILURE


@dataclass(frozen=True)
class AuditRecord:
    kind: AuditKind
    user: str  # username, or the calling AE title for DIMSE; "" when not signed in
    source: str  # the client's address
    interface: str  # dicomweb, rest, dimse
    status: int
    outcome: AuditOutcome
    studies: Sequence[str] = ()
    detail: str = ""
    at: datetime = field(default_factory=utc_now)

    def row(self) -> dict[str, Any]:
        code, action = ATNA[self.kind]
        return {
            "at": self.at,
            "event": self.kind.value,
            "event_code": code,
            "action": action,
            "outcome": int(self.outcome),
            "status": self.status,
            "user": self.user[:256],
            "source": self.source[:128],
            "interface": self.interface,
            "studies": sorted(set(self.studies)),
            "detail": self.detail[:2000],
        }


class AuditTrail:
    """Buffers records and writes them in batches, on its own thread, to ``engine``."""

    def __init__(self, engine: Engine, flush_seconds: float = FLUSH_SECONDS) -> None:
        self._engine = engine
        self._flush_seconds = flush_seconds
        self._pending: list[AuditRecord] = []
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # one flush at a time keeps records in order
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, record: AuditRecord) -> None:
        with self._lock:
            self._pending.append(record)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-trail", daemon=True)
                self._thread.start()

    def flush(self) -> None:
        """Write every pending record now; on a database error they stay pending."""
        with self._writing:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(EVENTS), [record.row() for record in batch])
            except Exception:
                with self._lock:
                    self._pending[:0] = batch
                raise

    def _run(self) -> None:
        # The traceback is logged once per outage; while the database stays unreachable a line
        # a minute says how much is waiting, rather than a traceback every flush.
        failing_since: float | None = None
        last_warning = 0.0
        while not self._stop.wait(self._flush_seconds):
            try:
                self.flush()
            except Exception as error:
                now = time.monotonic()
                if failing_since is None:
                    failing_since = last_warning = now
                    logger.exception("audit records could not be written; retrying")
                elif now - last_warning >= OUTAGE_WARNING_SECONDS:
                    last_warning = now
                    logger.warning(
                        "audit records still not written after %.0f s (%d waiting): %s",
                        now - failing_since,
                        self.pending_count,
                        type(error).__name__,
                    )
                continue
            if failing_since is not None:
                logger.info("audit records written again")
                failing_since = None

    @property
    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()


def read_events(
    engine: Engine,
    *,
    user: str | None = None,
    kind: AuditKind | None = None,
    study: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Events matching every filter given, newest first."""
    query = select(EVENTS).order_by(EVENTS.c.at.desc(), EVENTS.c.id.desc()).limit(limit)
    if user is not None:
        query = query.where(EVENTS.c.user == user)
    if kind is not None:
        query = query.where(EVENTS.c.event == kind.value)
    if study is not None:  # UIDs hold digits and dots only: no LIKE wildcards
        query = query.where(sql_cast(EVENTS.c.studies, Text).like(f'%"{study}"%'))
    if since is not None:
        query = query.where(EVENTS.c.at >= since)
    if until is not None:
        query = query.where(EVENTS.c.at < until)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [{**row._asdict(), "at": row.at.replace(tzinfo=UTC).isoformat()} for row in rows]
