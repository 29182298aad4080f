"""The storage suite: every behaviour of the Storage protocol, on files and on S3."""

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pacsflow.archive.s3storage import S3Storage
from pacsflow.archive.storage import FileStorage, object_key
from pacsflow.dicom.uid import InvalidUIDError
from tests.archive.conftest import REGION, S3Bucket

Backend = FileStorage | S3Storage
NewStorage = Callable[[], Backend]


@pytest.fixture(params=["file", "s3"])
def new_storage(request: pytest.FixtureRequest, tmp_path: Path) -> NewStorage:
    """Makes storages on one root or bucket: processes sharing an archive."""
    if request.param == "file":
        return lambda: FileStorage(tmp_path)
    bucket: S3Bucket = request.getfixturevalue("s3_bucket")
    return lambda: S3Storage(
        bucket.name,
        "archive",
        tmp_path / "staging",
        endpoint_url=bucket.endpoint_url,
        region=REGION,
    )


def test_object_key_accepts_only_uids() -> None:
    assert object_key("1.2", "1.2.3", "1.2.3.4") == "1.2/1.2.3/1.2.3.4.dcm"
    for bad in ("../1.2", "1.2/3", "1..2", "", "1.2.", "a.b", "1" * 65):
        with pytest.raises(InvalidUIDError):
            object_key("1.2", "1.2.3", bad)


def stage(storage: Backend, data: bytes) -> Path:
    staged = storage.staging_file()
    staged.write_bytes(data)
    return staged


def test_place_is_atomic_and_never_clobbers(new_storage: NewStorage) -> None:
    storage = new_storage()
    key = object_key("1.2", "1.2.3", "1.2.3.4")
    first = stage(storage, b"first")
    assert storage.place(first, key)
    storage.sync([key])
    assert storage.open(key).read() == b"first"
    second = stage(storage, b"second")
    assert not storage.place(second, key)
    assert storage.open(key).read() == b"first"
    assert storage.place(second, key, replace=True)
    assert storage.open(key).read() == b"second"
    # Staged files stay until ingest has committed, so recovery can undo a placement.
    assert sorted(storage.staging_dir.iterdir()) == sorted([first, second])
    assert list(storage.iter_keys()) == [key]


def test_a_placement_is_seen_by_every_process(new_storage: NewStorage) -> None:
    writer, reader = new_storage(), new_storage()
    key = object_key("1.2", "1.2.3", "1.2.3.4")
    assert writer.place(stage(writer, b"once"), key)
    writer.sync([key])
    assert not reader.place(stage(reader, b"twice"), key)
    assert reader.open(key).read() == b"once"


def test_reads_are_byte_exact_and_seekable(new_storage: NewStorage) -> None:
    storage = new_storage()
    data = os.urandom(3 * 1024 * 1024 + 17)  # beyond one read buffer
    key = object_key("1.2", "1.2.3", "1.2.3.4")
    storage.place(stage(storage, data), key)
    storage.sync([key])
    assert storage.size(key) == len(data) and storage.exists(key)
    with storage.open(key) as fp:
        assert fp.read(100) == data[:100] and fp.tell() == 100
        fp.seek(2 * 1024 * 1024)
        assert fp.read(10) == data[2 * 1024 * 1024 : 2 * 1024 * 1024 + 10]
        fp.seek(-7, io.SEEK_END)
        assert fp.read() == data[-7:] and fp.read() == b""
        fp.seek(5)
        fp.seek(3, io.SEEK_CUR)
        assert fp.read() == data[8:]
    local = storage.local_path(key)
    assert (local is None) == isinstance(storage, S3Storage)
    assert local is None or local.read_bytes() == data


def test_a_missing_object_is_file_not_found(new_storage: NewStorage) -> None:
    storage = new_storage()
    key = object_key("1.2", "1.2.3", "1.2.3.4")
    assert not storage.exists(key)
    with pytest.raises(FileNotFoundError):
        storage.open(key)
    with pytest.raises(FileNotFoundError):
        storage.size(key)
    storage.remove([key])  # nothing to remove is not an error


def test_keys_outside_the_layout_are_refused(new_storage: NewStorage) -> None:
    storage = new_storage()
    staged = stage(storage, b"x")
    for bad in ("1.2/1.2.3.4.dcm", "1.2/../1.2.3/x.dcm", "1.2/1.2.3/4/x.dcm", "1.2//x.dcm"):
        with pytest.raises(ValueError, match="study/series/instance"):
            storage.place(staged, bad)
    assert list(storage.iter_keys()) == []


def test_remove_deletes_only_the_keys_named(new_storage: NewStorage) -> None:
    storage = new_storage()
    keys = [object_key("1.2", f"1.2.{s}", f"1.2.{s}.{i}") for s in (3, 4) for i in range(3)]
    for key in keys:
        storage.place(stage(storage, key.encode()), key)
    storage.sync(keys)
    storage.remove(keys[1:4])
    assert sorted(storage.iter_keys()) == sorted(keys[:1] + keys[4:])
    assert storage.open(keys[4]).read() == keys[4].encode()


def die(storage: Backend) -> None:
    """What the kernel does to a killed process's staging lock."""
    os.close(storage._lock_fd)


def test_recover_undoes_placements_of_dead_processes_only(new_storage: NewStorage) -> None:
    dead, alive, recovering = new_storage(), new_storage(), new_storage()
    placed, kept = (object_key("1.2", "1.2.3", f"1.2.3.{i}") for i in (1, 2))
    dead.place(stage(dead, b"placed, commit never happened"), placed)
    dead.place(stage(dead, b"placed and indexed"), kept)
    stage(dead, b"still arriving")
    alive_staged = stage(alive, b"in flight elsewhere")
    die(dead)

    def unindexed_key(staged: Path) -> str | None:
        return placed if staged.read_bytes().startswith(b"placed,") else None

    assert recovering.recover(unindexed_key) == 4  # three staged files, one placed object
    assert list(recovering.iter_keys()) == [kept]
    assert not dead.staging_dir.exists()
    assert alive_staged.read_bytes() == b"in flight elsewhere"
    area = alive.staging_dir.name
    assert {p.name for p in recovering.staging_root.iterdir()} == {area, area + ".lock"}


def test_recover_leaves_an_object_another_ingest_replaced(new_storage: NewStorage) -> None:
    dead, recovering = new_storage(), new_storage()
    key = object_key("1.2", "1.2.3", "1.2.3.4")
    dead.place(stage(dead, b"old"), key)
    recovering.place(stage(recovering, b"new"), key, replace=True)
    die(dead)
    assert recovering.recover(lambda _staged: key) == 1  # only the dead staged file
    assert recovering.open(key).read() == b"new"


def test_recover_leaves_an_object_never_placed_from_the_staged_file(
    new_storage: NewStorage,
) -> None:
    dead, other, recovering = new_storage(), new_storage(), new_storage()
    key = object_key("1.2", "1.2.3", "1.2.3.4")
    other.place(stage(other, b"stored by another process"), key)
    stage(dead, b"same instance, died before placing it")
    die(dead)
    assert recovering.recover(lambda _staged: key) == 1
    assert recovering.open(key).read() == b"stored by another process"


def test_close_removes_the_staging_area(new_storage: NewStorage) -> None:
    storage = new_storage()
    area = storage.staging_dir
    storage.close()
    assert not area.exists() and list(storage.staging_root.iterdir()) == []


# FileStorage only: how files on one file system do it.


def test_recover_reads_only_staged_files_that_were_placed(tmp_path: Path) -> None:
    """A hard link count above one marks a placed file; the others need no parsing."""
    dead, recovering = FileStorage(tmp_path), FileStorage(tmp_path)
    dead.place(stage(dead, b"placed"), object_key("1.2", "1.2.3", "1.2.3.4"))
    stage(dead, b"still arriving")
    die(dead)
    asked: list[bytes] = []

    def unindexed_key(staged: Path) -> None:
        asked.append(staged.read_bytes())

    recovering.recover(unindexed_key)
    assert asked == [b"placed"]


def test_remove_prunes_empty_directories(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    keys = [object_key("1.2", "1.2.3", f"1.2.3.{i}") for i in range(2)]
    for key in keys:
        storage.place(stage(storage, b"x"), key)
    storage.remove(keys[:1])
    assert storage.exists(keys[1]) and not storage.exists(keys[0])
    storage.remove(keys[1:])
    assert not (tmp_path / "1.2").exists()
