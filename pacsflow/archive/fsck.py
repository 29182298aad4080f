"""Consistency check: the index and the stored files must agree."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.filereader import read_file_meta_info
from sqlalchemy import select

from pacsflow.archive.archive import Archive
from pacsflow.archive.ingest import COPY_CHUNK, dataset_digest
from pacsflow.archive.models import Instance
from pacsflow.archive.storage import Storage


@dataclass
class FsckReport:
    checked: int = 0
    missing_files: list[str] = field(default_factory=list)  # indexed, no file
    orphan_files: list[str] = field(default_factory=list)  # file, not indexed
    size_mismatches: list[str] = field(default_factory=list)
    digest_mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.missing_files
            or self.orphan_files
            or self.size_mismatches
            or self.digest_mismatches
        )


def _indexed(archive: Archive) -> Iterator[tuple[str, int, str]]:
    with archive.sessions() as session:
        yield from session.execute(
            select(Instance.storage_key, Instance.size_bytes, Instance.digest)
        ).all()


def _digest(storage: Storage, key: str) -> str:
    """The stored object's data set digest; a remote object is copied to staging first
    (verifying reads every byte anyway) so that both backends hash a file alike."""
    path = storage.local_path(key)
    if path is not None:
        return _file_digest(path)
    copy = storage.staging_file()
    try:
        with storage.open(key) as stored, open(copy, "wb") as out:
            shutil.copyfileobj(stored, out, COPY_CHUNK)
        return _file_digest(copy)
    finally:
        copy.unlink(missing_ok=True)


def _file_digest(path: Path) -> str:
    return dataset_digest(path, read_file_meta_info(path).get("FileMetaInformationGroupLength"))


def fsck(
    archive: Archive, *, verify: bool = False, progress: Callable[[int], object] | None = None
) -> FsckReport:
    """Compare index rows with stored objects; ``verify`` re-hashes every file."""
    report = FsckReport()
    on_disk = set(archive.storage.iter_keys())
    for key, size, digest in _indexed(archive):
        report.checked += 1
        if progress:
            progress(1)
        if key not in on_disk:
            report.missing_files.append(key)
            continue
        on_disk.discard(key)
        if archive.storage.size(key) != size:
            report.size_mismatches.append(key)
        elif verify and _digest(archive.storage, key) != digest:
            report.digest_mismatches.append(key)
    report.orphan_files = sorted(on_disk)
    return report
