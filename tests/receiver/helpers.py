"""What the receiver tests look at: the index rows and the stored bytes."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

from sqlalchemy import select

from pacsflow.archive.archive import Archive
from pacsflow.archive.models import Instance


def stored(archive: Archive) -> dict[str, str]:
    """SOP Instance UID → storage key of every indexed instance."""
    with archive.sessions() as session:
        rows = session.execute(select(Instance.sop_instance_uid, Instance.storage_key))
        return {uid: key for uid, key in rows}


def dataset_bytes(part10: bytes) -> bytes:
    """The bytes after a Part-10 file's File Meta (whose group length says where it ends)."""
    assert part10[128:132] == b"DICM"
    assert part10[132:136] == b"\x02\x00\x00\x00", "File Meta must start with its group length"
    (length,) = struct.unpack("<I", part10[140:144])
    return part10[144 + length :]


def stored_bytes(archive: Archive, key: str) -> bytes:
    with archive.storage.open(key) as f:
        return f.read()


def staging_leftovers(archive: Archive) -> list[Path]:
    staging = getattr(archive.storage, "staging_dir", None)
    return sorted(Path(staging).iterdir()) if staging is not None else []


def storage_files(archive: Archive) -> list[str]:
    return sorted(archive.storage.iter_keys())


def wait_listening(port: int, seconds: float = 10) -> None:
    """Wait until something accepts TCP connections on the loopback ``port``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing is listening on port {port}")
