"""One INFO line per association: who, from where, what happened to each object, how much;
and, when it stored anything, one record in the audit trail naming the studies.

Handlers of one association run on its own thread, but the tracker is shared by all of
them, hence the lock. Only AE titles, addresses and counts are logged: no PHI.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum

from pacsflow.audit import AuditKind, AuditRecord, AuditTrail, dimse_outcome
from pacsflow.dicom.status import StoreStatus

logger = logging.getLogger(__name__)


class StoreOutcome(Enum):
    """What a C-STORE ended as, as counted in the association log line."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    REPLACED = "replaced"
    FAILED = "failed"


class Ending(Enum):
    RELEASED = "released"
    ABORTED = "aborted"
    CLOSED = "closed"  # the connection went without a release or abort


@dataclass
class AssociationRecord:
    calling_ae: str
    peer: str
    started: float = field(default_factory=time.monotonic)
    bytes_received: int = 0
    outcomes: Counter[StoreOutcome] = field(default_factory=Counter)
    echoes: int = 0
    studies: set[str] = field(default_factory=set)


def _stores_audited(record: AssociationRecord, counts: str) -> AuditRecord:
    """The association's C-STOREs as one audit record: failed if any object failed."""
    failed = record.outcomes[StoreOutcome.FAILED]
    status = StoreStatus.SUCCESS if not failed else StoreStatus.PROCESSING_FAILURE
    return AuditRecord(
        kind=AuditKind.STORE,
        user=record.calling_ae,
        source=record.peer,
        interface="dimse",
        status=status,
        outcome=dimse_outcome(status),
        studies=tuple(record.studies),
        detail=f"C-STORE {counts}",
    )


class AssociationLog:
    """Counts per live association, keyed by the pynetdicom Association object's id."""

    def __init__(self, audit: AuditTrail | None = None) -> None:
        self._lock = threading.Lock()
        self._records: dict[int, AssociationRecord] = {}
        self._audit = audit

    def open(self, key: int, calling_ae: str, peer: str) -> None:
        with self._lock:
            self._records[key] = AssociationRecord(calling_ae, peer)

    def received(self, key: int, size: int) -> None:
        with self._lock:
            record = self._records.get(key)
            if record is not None:
                record.bytes_received += size

    def store(self, key: int, outcome: StoreOutcome, study_uid: str = "") -> None:
        with self._lock:
            record = self._records.get(key)
            if record is not None:
                record.outcomes[outcome] += 1
                if study_uid:
                    record.studies.add(study_uid)

    def echo(self, key: int) -> None:
        with self._lock:
            record = self._records.get(key)
            if record is not None:
                record.echoes += 1

    def close(self, key: int, ending: Ending) -> AssociationRecord | None:
        """Log and forget the association; later calls for it do nothing."""
        with self._lock:
            record = self._records.pop(key, None)
        if record is None:
            return None
        counts = " ".join(f"{o.value}={record.outcomes[o]}" for o in StoreOutcome)
        logger.info(
            "association %s from %s (%s): %s echo=%d bytes=%d duration=%.3fs",
            ending.value,
            record.calling_ae,
            record.peer,
            counts,
            record.echoes,
            record.bytes_received,
            time.monotonic() - record.started,
        )
        if self._audit is not None and record.outcomes:
            self._audit.record(_stores_audited(record, counts))
        return record

    def bytes_received_from(self, calling_ae: str) -> int:
        """Bytes received so far on the live associations of ``calling_ae`` (for tests)."""
        with self._lock:
            return sum(
                r.bytes_received for r in self._records.values() if r.calling_ae == calling_ae
            )

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
