"""Object storage: byte-exact, atomic, durable writes of DICOM files.

The interface is small so that an S3 backend can implement it: objects are staged in a
local file first (every way in writes there as data arrives), then committed under a key
derived from validated UIDs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from pacsflow.dicom.uid import check_uid


def object_key(study_uid: str, series_uid: str, sop_instance_uid: str) -> str:
    """The storage key of an instance; each part is re-validated so no key escapes the root."""
    return "/".join(
        (
            check_uid(study_uid, "StudyInstanceUID"),
            check_uid(series_uid, "SeriesInstanceUID"),
            check_uid(sop_instance_uid, "SOPInstanceUID") + ".dcm",
        )
    )


class Storage(Protocol):
    """Where DICOM files live. Keys come only from :func:`object_key`."""

    def staging_file(self) -> Path:
        """A new empty local file to receive an object; delete it or commit it."""

    def place(self, staged: Path, key: str, *, replace: bool = False) -> bool:
        """Put ``staged`` under ``key``; False if the key exists and not ``replace``.

        Not yet durable: :meth:`sync` the keys before the index refers to them.
        """

    def sync(self, keys: list[str]) -> None:
        """Make placed objects durable, all at once (one flush for a whole batch)."""

    def open(self, key: str) -> BinaryIO:
        """Open a stored object for reading."""

    def local_path(self, key: str) -> Path | None:
        """A filesystem path for zero-copy reads, or None for remote backends."""

    def size(self, key: str) -> int: ...

    def exists(self, key: str) -> bool: ...

    def remove(self, keys: list[str]) -> None:
        """Delete objects for good (after the index no longer refers to them)."""

    def iter_keys(self) -> Iterator[str]:
        """Every stored key, for consistency checks."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStorage:
    """Files under a root directory: ``<root>/<study>/<series>/<instance>.dcm``."""

    STAGING = ".staging"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging_dir = root / self.STAGING
        self.staging_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = self.root / key
        if path.parent.parent.parent != self.root or ".." in key.split("/"):
            raise ValueError(f"storage key {key!r} is not of the form study/series/instance.dcm")
        return path

    def staging_file(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.staging_dir, suffix=".part")
        os.close(fd)
        return Path(name)

    def place(self, staged: Path, key: str, *, replace: bool = False) -> bool:
        path = self._path(key)
        self._make_dirs(path.parent)
        if replace:
            os.replace(staged, path)
            return True
        try:
            os.link(staged, path)  # atomic and never clobbers an existing object
        except FileExistsError:
            return False
        os.unlink(staged)
        return True

    def sync(self, keys: list[str]) -> None:
        # Files first, then each directory once, so a crash never leaves an entry whose
        # data is not on disk; fsyncs issued together share the journal commits.
        directories: set[Path] = set()
        for key in keys:
            path = self._path(key)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            directories.update((path.parent, path.parent.parent, self.root))
        for directory in sorted(directories, key=lambda d: -len(d.parts)):
            _fsync_dir(directory)

    def _make_dirs(self, directory: Path) -> None:
        for candidate in (directory.parent, directory):
            with contextlib.suppress(FileExistsError):
                candidate.mkdir()

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def remove(self, keys: list[str]) -> None:
        parents = set()
        for key in keys:
            path = self._path(key)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            parents.add(path.parent)
        for parent in parents:
            with contextlib.suppress(OSError):  # not empty: other instances remain
                parent.rmdir()
                parent.parent.rmdir()

    def iter_keys(self) -> Iterator[str]:
        for path in self.root.glob("*/*/*.dcm"):
            yield path.relative_to(self.root).as_posix()
