import os
from pathlib import Path

import pytest

from pacsflow.archive.storage import FileStorage, object_key
from pacsflow.dicom.uid import InvalidUIDError


def test_object_key_accepts_only_uids() -> None:
    assert object_key("1.2", "1.2.3", "1.2.3.4") == "1.2/1.2.3/1.2.3.4.dcm"
    for bad in ("../1.2", "1.2/3", "1..2", "", "1.2.", "a.b", "1" * 65):
        with pytest.raises(InvalidUIDError):
            object_key("1.2", "1.2.3", bad)


def stage(storage: FileStorage, data: bytes) -> Path:
    staged = storage.staging_file()
    staged.write_bytes(data)
    return staged


def test_place_is_atomic_and_never_clobbers(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
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


def die(storage: FileStorage) -> None:
    """What the kernel does to a killed process's staging lock."""
    os.close(storage._lock_fd)


def test_recover_undoes_placements_of_dead_processes_only(tmp_path: Path) -> None:
    dead, alive, recovering = FileStorage(tmp_path), FileStorage(tmp_path), FileStorage(tmp_path)
    placed, kept = (object_key("1.2", "1.2.3", f"1.2.3.{i}") for i in (1, 2))
    dead.place(stage(dead, b"placed, commit never happened"), placed)
    dead.place(stage(dead, b"placed and indexed"), kept)
    stage(dead, b"still arriving")
    alive_staged = stage(alive, b"in flight elsewhere")
    die(dead)
    asked: list[bytes] = []

    def unindexed_key(staged: Path) -> str | None:
        asked.append(staged.read_bytes())
        return placed if staged.read_bytes().startswith(b"placed,") else None

    assert recovering.recover(unindexed_key) == 4  # three staged files, one placed object
    assert sorted(asked) == [b"placed and indexed", b"placed, commit never happened"]
    assert list(storage_keys(recovering)) == [kept]
    assert not dead.staging_dir.exists()
    assert alive_staged.read_bytes() == b"in flight elsewhere"
    area = alive.staging_dir.name
    assert {p.name for p in recovering.staging_root.iterdir()} == {area, area + ".lock"}


def test_recover_leaves_an_object_another_ingest_replaced(tmp_path: Path) -> None:
    dead, recovering = FileStorage(tmp_path), FileStorage(tmp_path)
    key = object_key("1.2", "1.2.3", "1.2.3.4")
    dead.place(stage(dead, b"old"), key)
    recovering.place(stage(recovering, b"new"), key, replace=True)
    die(dead)
    assert recovering.recover(lambda _staged: key) == 1  # only the dead staged file
    assert recovering.open(key).read() == b"new"


def test_close_removes_the_staging_area(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    area = storage.staging_dir
    storage.close()
    assert not area.exists() and list(storage.staging_root.iterdir()) == []


def test_remove_prunes_empty_directories(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    keys = [object_key("1.2", "1.2.3", f"1.2.3.{i}") for i in range(2)]
    for key in keys:
        storage.place(stage(storage, b"x"), key)
    storage.remove(keys[:1])
    assert storage.exists(keys[1]) and not storage.exists(keys[0])
    storage.remove(keys[1:])
    assert not (tmp_path / "1.2").exists()


def storage_keys(storage: FileStorage) -> list[str]:
    return sorted(storage.iter_keys())
