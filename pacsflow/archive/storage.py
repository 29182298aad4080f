"""Object storage: byte-exact, atomic, durable writes of DICOM files.

The interface is small so that an S3 backend can implement it: objects are staged in a
local file first (every way in writes there as data arrives), then committed under a key
derived from validated UIDs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
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

    @property
    def staging_dir(self) -> Path:
        """The local directory of this process's staged files."""

    def staging_file(self) -> Path:
        """A new empty local file to receive an object; delete it once ingest is done."""

    def place(self, staged: Path, key: str, *, replace: bool = False) -> bool:
        """Put a copy of ``staged`` under ``key``; False if the key exists and not ``replace``.

        Not yet durable: :meth:`sync` the keys before the index refers to them. ``staged``
        stays until the caller deletes it after the index commit, so that
        :meth:`recover` can undo a placement whose commit a crash prevented.
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

    def recover(self, unindexed_key: Callable[[Path], str | None]) -> int:
        """Clean up after processes that died while ingesting; return the files removed.

        Their staged files are deleted, and an object placed from one of them is removed
        when ``unindexed_key(staged)`` names it: its index commit never happened.
        """

    def close(self) -> None:
        """Release this process's staging area."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock_of(area: Path) -> Path:
    return area.with_name(area.name + LocalStaging.LOCK_SUFFIX)


class LocalStaging(ABC):
    """The local staging area every backend stages in, and its recovery after a crash.

    Each instance stages in its own directory ``<staging_root>/<id>/``, held by an
    exclusive ``flock`` on ``<id>.lock`` for its lifetime. The kernel drops the lock when
    the process dies, however it dies, so :meth:`recover` can tell an abandoned staging
    area from a live one without guessing from file ages. A backend says, in
    :meth:`_undo_placement`, how to find and remove what was placed from a staged file.
    """

    LOCK_SUFFIX = ".lock"

    def __init__(self, staging_root: Path) -> None:
        self.staging_root = staging_root
        self.staging_root.mkdir(parents=True, exist_ok=True)
        self._staging_dir: Path | None = None
        self._lock_fd = -1
        self._staging_guard = threading.Lock()

    @property
    def staging_dir(self) -> Path:
        """This instance's staging area, made and locked on first use."""
        with self._staging_guard:
            if self._staging_dir is None:
                area = Path(tempfile.mkdtemp(dir=self.staging_root, prefix=f"{os.getpid()}-"))
                # Lock first, then publish under the name recover() looks for.
                fd, unpublished = tempfile.mkstemp(dir=self.staging_root, prefix=".")
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.rename(unpublished, _lock_of(area))
                self._staging_dir, self._lock_fd = area, fd
            return self._staging_dir

    def staging_file(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.staging_dir, suffix=".part")
        os.close(fd)
        return Path(name)

    def recover(self, unindexed_key: Callable[[Path], str | None]) -> int:
        removed = 0
        for lock in self.staging_root.glob(f"*{self.LOCK_SUFFIX}"):
            if self._staging_dir is not None and lock == _lock_of(self._staging_dir):
                continue
            try:
                fd = os.open(lock, os.O_RDWR)
            except FileNotFoundError:
                continue  # another process recovered it
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is alive
                area = lock.with_name(lock.name.removesuffix(self.LOCK_SUFFIX))
                removed += self._recover_area(area, unindexed_key)
                lock.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return removed

    def _recover_area(self, area: Path, unindexed_key: Callable[[Path], str | None]) -> int:
        removed = 0
        for staged in area.iterdir() if area.is_dir() else ():
            if self._undo_placement(staged, unindexed_key):
                removed += 1
            staged.unlink()
            removed += 1
        shutil.rmtree(area, ignore_errors=True)
        return removed

    @abstractmethod
    def _undo_placement(self, staged: Path, unindexed_key: Callable[[Path], str | None]) -> bool:
        """Remove the object placed from ``staged`` if its index commit never happened."""

    def close(self) -> None:
        with self._staging_guard:
            if self._staging_dir is None:
                return
            shutil.rmtree(self._staging_dir, ignore_errors=True)
            _lock_of(self._staging_dir).unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._staging_dir, self._lock_fd = None, -1


class FileStorage(LocalStaging):
    """Files under a root directory: ``<root>/<study>/<series>/<instance>.dcm``.

    Staging happens in ``<root>/.staging``, on the same file system, so that placing an
    object is a hard link of its staged file.
    """

    STAGING = ".staging"

    def __init__(self, root: Path) -> None:
        super().__init__(root / self.STAGING)
        self.root = root
        self._created_dirs: set[Path] = set()  # made by place(), parents not yet synced

    def _path(self, key: str) -> Path:
        path = self.root / key
        if path.parent.parent.parent != self.root or ".." in key.split("/"):
            raise ValueError(f"storage key {key!r} is not of the form study/series/instance.dcm")
        return path

    def place(self, staged: Path, key: str, *, replace: bool = False) -> bool:
        path = self._path(key)
        self._make_dirs(path.parent)
        if replace:
            sibling = path.with_name(f".{staged.name}")
            os.link(staged, sibling)
            os.replace(sibling, path)
            return True
        try:
            os.link(staged, path)  # atomic and never clobbers an existing object
        except FileExistsError:
            return False
        return True

    def sync(self, keys: list[str]) -> None:
        # Files first, then the directories whose entries changed, so a crash never leaves
        # an entry whose data is not on disk; fsyncs issued together share journal commits.
        # A study or series directory made since the last sync changed its parent too.
        directories: set[Path] = set()
        for key in keys:
            path = self._path(key)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            directories.add(path.parent)
        created = self._created_dirs & (directories | {d.parent for d in directories})
        directories |= {d.parent for d in created}
        for directory in sorted(directories, key=lambda d: -len(d.parts)):
            _fsync_dir(directory)
        self._created_dirs -= created  # only once their parents are durable

    def _make_dirs(self, directory: Path) -> None:
        for candidate in (directory.parent, directory):
            with contextlib.suppress(FileExistsError):
                candidate.mkdir()
                self._created_dirs.add(candidate)

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

    def _undo_placement(self, staged: Path, unindexed_key: Callable[[Path], str | None]) -> bool:
        # A second link means it was placed: the object is this very inode.
        key = unindexed_key(staged) if staged.stat().st_nlink > 1 else None
        if key is None or not self._is_placed_from(key, staged):
            return False
        self.remove([key])
        return True

    def _is_placed_from(self, key: str, staged: Path) -> bool:
        try:
            return os.path.samefile(self._path(key), staged)
        except FileNotFoundError:
            return False
