"""The archive: storage, index and the operations on both, for every interface to share."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Connection, select

from pacsflow.archive.db import make_engine, make_sessionmaker, migrate
from pacsflow.archive.delete import remove_instances
from pacsflow.archive.ingest import (
    IngestError,
    IngestResult,
    Source,
    StudyCheck,
    ingest,
    ingest_many,
    recover_interrupted,
)
from pacsflow.archive.models import Instance, Series, Study
from pacsflow.archive.s3storage import S3Storage
from pacsflow.archive.storage import FileStorage, Storage
from pacsflow.audit import AuditTrail
from pacsflow.settings import Settings


class Archive:
    """One per process; cheap to share between threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.sqlalchemy_url)
        self.sessions = make_sessionmaker(self.engine)
        self._writer = self.engine.execution_options(sqlite_immediate=True)
        # SQLite has one writer: threads here queue on a lock that wakes the next one when
        # free, instead of on SQLite's, whose busy handler sleeps 1, 2, 5, 10... ms per retry.
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if self.engine.dialect.name == "sqlite" else nullcontext()
        )
        self.storage: Storage = (
            S3Storage.from_settings(settings)
            if settings.storage_url
            else FileStorage(settings.storage_root)
        )
        self.audit = AuditTrail(self._writer)

    def migrate(self) -> None:
        migrate(self.settings.sqlalchemy_url)

    def recover(self) -> int:
        """Clean up after ingests that a crash interrupted (any process, any time)."""
        return recover_interrupted(self)

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A transaction that takes SQLite's write lock at BEGIN; commits on success."""
        with self._write_lock, self._writer.begin() as conn:
            yield conn

    def ingest(
        self,
        staged: Path,
        source: Source,
        transfer_syntax_uid: str = "",
        study_instance_uid: str = "",
    ) -> IngestResult:
        """Store a staged file; see :func:`pacsflow.archive.ingest.ingest`."""
        return ingest(self, staged, source, transfer_syntax_uid, study_instance_uid)

    def ingest_many(
        self,
        staged: Sequence[Path],
        source: Source,
        study_instance_uid: str = "",
        may_store: StudyCheck | None = None,
    ) -> list[IngestResult | IngestError]:
        """Store several staged files with one group commit; see :func:`ingest_many`."""
        return ingest_many(
            self, staged, source, study_instance_uid=study_instance_uid, may_store=may_store
        )

    def ingest_stream(self, stream: BinaryIO, source: Source) -> IngestResult:
        """Copy a readable stream to staging and ingest it (for import and tests)."""
        staged = self.storage.staging_file()
        try:
            with open(staged, "wb") as out:
                while chunk := stream.read(1024 * 1024):
                    out.write(chunk)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        return self.ingest(staged, source)

    def delete(
        self, study_uid: str, series_uid: str | None = None, sop_instance_uid: str | None = None
    ) -> int:
        """Delete a study, series or instance; return how many instances went.

        The index rows go in one transaction; files are removed only after it commits, so a
        failure keeps both. A crash in between leaves unreferenced files that fsck reports.
        """
        query = (
            select(Instance.sop_instance_uid)
            .join(Series, Instance.series_fk == Series.id)
            .join(Study, Series.study_fk == Study.id)
            .where(Study.study_instance_uid == study_uid)
        )
        if series_uid is not None:
            query = query.where(Series.series_instance_uid == series_uid)
        if sop_instance_uid is not None:
            query = query.where(Instance.sop_instance_uid == sop_instance_uid)
        with self.write_connection() as conn:
            uids = list(conn.execute(query).scalars())
            keys = remove_instances(conn, uids)
        self.storage.remove(keys)
        return len(keys)

    def close(self) -> None:
        self.audit.close()
        self.storage.close()
        self.engine.dispose()
