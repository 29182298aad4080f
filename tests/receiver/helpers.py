"""What the receiver tests look at: the index rows and the stored bytes."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from pacsflow.archive.archive import Archive
from pacsflow.archive.models import Instance
from tests.live_server import free_port


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


@contextmanager
def running_storescp(
    folder: Path, ae_title: str, *options: str, port: int | None = None
) -> Iterator[int]:
    """dcmtk's storescp writing into ``folder`` (made here) on ``port`` or a free one, until
    the block ends; yields the port. ``options`` are storescp's, e.g. ``+B`` (bit-preserving)."""
    port = port or free_port()
    folder.mkdir(parents=True)
    command = ["storescp", "-aet", ae_title, "-od", str(folder), *options, str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
