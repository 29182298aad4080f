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
    assert storage.place(stage(storage, b"first"), key)
    storage.sync([key])
    assert storage.open(key).read() == b"first"
    second = stage(storage, b"second")
    assert not storage.place(second, key)
    assert storage.open(key).read() == b"first"
    assert storage.place(second, key, replace=True)
    assert storage.open(key).read() == b"second"
    assert list(storage.staging_dir.iterdir()) == []
    assert list(storage.iter_keys()) == [key]


def test_remove_prunes_empty_directories(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    keys = [object_key("1.2", "1.2.3", f"1.2.3.{i}") for i in range(2)]
    for key in keys:
        storage.place(stage(storage, b"x"), key)
    storage.remove(keys[:1])
    assert storage.exists(keys[1]) and not storage.exists(keys[0])
    storage.remove(keys[1:])
    assert not (tmp_path / "1.2").exists()
