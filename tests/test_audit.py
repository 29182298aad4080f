"""The audit trail's writer: batches reach the table within a second, a failed write keeps
its records for the next one, and outcomes map to ATNA's indicators."""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy.exc import OperationalError

from pacsflow.archive.archive import Archive
from pacsflow.audit import (
    AuditKind,
    AuditOutcome,
    AuditRecord,
    AuditTrail,
    dimse_outcome,
    http_outcome,
    read_events,
)


def record(user: str) -> AuditRecord:
    return AuditRecord(AuditKind.QUERY, user, "10.0.0.1", "rest", 200, AuditOutcome.SUCCESS)


def test_records_are_written_in_the_background(archive: Archive) -> None:
    trail = AuditTrail(archive.engine, flush_seconds=0.05)
    for n in range(50):
        trail.record(record(f"user{n}"))
    deadline = time.monotonic() + 5
    while len(read_events(archive.engine)) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(read_events(archive.engine)) == 50
    trail.close()


def test_a_failed_write_keeps_the_records(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    trail = AuditTrail(archive.engine, flush_seconds=3600)
    trail.record(record("kept"))
    with monkeypatch.context() as patched:
        patched.setattr(archive.engine, "begin", _broken)
        with pytest.raises(OperationalError):
            trail.flush()
    trail.close()  # flushes what is pending
    assert [e["user"] for e in read_events(archive.engine)] == ["kept"]


def test_an_outage_logs_one_traceback_and_its_end(
    archive: Archive, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pacsflow.audit")
    trail = AuditTrail(archive.engine, flush_seconds=0.02)
    with monkeypatch.context() as patched:
        patched.setattr(archive.engine, "begin", _broken)
        trail.record(record("waiting"))
        time.sleep(0.3)  # about 15 failed flushes
    deadline = time.monotonic() + 5
    while not read_events(archive.engine) and time.monotonic() < deadline:
        time.sleep(0.02)
    trail.close()
    assert [e["user"] for e in read_events(archive.engine)] == ["waiting"]
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert any(r.getMessage() == "audit records written again" for r in caplog.records)


def _broken() -> None:
    raise OperationalError("INSERT", {}, Exception("database is locked"))


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, 0), (204, 0), (202, 4), (401, 4), (404, 4), (500, 8), (503, 8)],
)
def test_http_outcomes(status: int, outcome: int) -> None:
    assert http_outcome(status) == outcome


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(0x0000, 0), (0xB000, 4), (0x0107, 4), (0xFE00, 4), (0xA801, 8), (0xC000, 8), (0x0110, 8)],
)
def test_dimse_outcomes(status: int, outcome: int) -> None:
    assert dimse_outcome(status) == outcome
