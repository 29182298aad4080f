"""Crash safety: the receiver killed with SIGKILL while storescu sends loses nothing it acked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from pacsflow.archive.archive import Archive
from pacsflow.settings import Settings
from tests.live_server import free_port
from tests.receiver.helpers import dataset_bytes, stored, stored_bytes

SLICES = 120
KILL_AFTER = 30  # success responses seen before the kill
STARTUP_SECONDS = 60
DATASET_TRAILING_PADDING = 0xFFFCFFFC


def write_series(folder: Path) -> list[Path]:
    """CT slices of 512x512 (half a megabyte each), so that one is always in flight."""
    rng = np.random.default_rng(7)
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del template[DATASET_TRAILING_PADDING]  # storescu drops it, as PS3.10 allows
    template.Rows = template.Columns = 512
    template.SeriesInstanceUID = generate_uid()
    folder.mkdir()
    paths = []
    for index in range(SLICES):
        template.SOPInstanceUID = generate_uid()
        template.InstanceNumber = index + 1
        template.PixelData = rng.integers(0, 4000, (512, 512), dtype=np.uint16).tobytes()
        path = folder / f"{index:03d}.dcm"
        template.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def receiver_environment(settings: Settings, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "PACSFLOW_HOME": str(settings.resolved_home),
        "PACSFLOW_DATABASE_URL": settings.sqlalchemy_url,
        "PACSFLOW_DICOM_PORT": str(port),
        "PACSFLOW_DICOM_ACCEPT_ALL_CALLING_AES": "true",
    }


def start_receiver_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pacsflow", "receiver"], env=env, stdout=out, stderr=out
        )
    echo = ["echoscu", "-aec", "PACSFLOW", "127.0.0.1", env["PACSFLOW_DICOM_PORT"]]
    deadline = time.monotonic() + STARTUP_SECONDS
    while subprocess.run(echo, capture_output=True).returncode != 0:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"receiver not up:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    return process


def acknowledged_while_killing(
    paths: list[Path], port: int, receiver: subprocess.Popen[bytes], staging_root: Path
) -> list[Path]:
    """Send with storescu; SIGKILL the receiver after KILL_AFTER successes, while a data set
    is being spooled into its staging area; return the files acknowledged with success.

    storescu -v logs "Sending file: <path>" before each C-STORE and "Received Store Response
    (Success)" after its response, one file at a time on one association.
    """
    command = [
        "storescu",
        "-v",
        "-xe",
        "-aec",
        "PACSFLOW",
        "127.0.0.1",
        str(port),
        *map(str, paths),
    ]
    sender = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert sender.stdout is not None
    acked: list[Path] = []
    sending: Path | None = None
    for line in sender.stdout:
        if "Sending file: " in line:
            sending = Path(line.split("Sending file: ", 1)[1].strip())
        elif "Received Store Response (Success)" in line:
            assert sending is not None
            acked.append(sending)
            if len(acked) == KILL_AFTER:
                wait_for(lambda: any(staging_root.glob("*/*.dcm")), "a data set being spooled")
                receiver.send_signal(signal.SIGKILL)
    sender.wait(timeout=60)
    receiver.wait(timeout=10)
    return acked


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def test_sigkill_while_receiving_loses_nothing_acknowledged(
    tmp_path: Path, settings: Settings, archive: Archive
) -> None:
    paths = write_series(tmp_path / "series")
    receiver_port, log = free_port(), tmp_path / "receiver.log"
    env = receiver_environment(settings, receiver_port)
    staging_root = archive.storage.staging_root
    receiver = start_receiver_process(env, log)
    try:
        acked = acknowledged_while_killing(paths, receiver_port, receiver, staging_root)
    finally:
        receiver.kill()
    assert receiver.returncode == -signal.SIGKILL
    assert KILL_AFTER <= len(acked) < SLICES, "the kill must land mid-series"

    receiver = start_receiver_process(env, log)  # recovery runs as it starts
    try:
        index = stored(archive)
        for path in acked:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            key = index.get(ds.SOPInstanceUID)
            assert key is not None, f"{path.name} was acknowledged but is not indexed"
            assert dataset_bytes(stored_bytes(archive, key)) == dataset_bytes(path.read_bytes())
        areas = {p.name for p in staging_root.iterdir()}
        assert all(name.startswith(f"{receiver.pid}-") for name in areas), "recovery left some"
        fsck = subprocess.run(
            [sys.executable, "-m", "pacsflow", "fsck", "--verify"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        assert f"checked {len(index)} instances: OK" in fsck.stdout

        resend = subprocess.run(
            ["storescu", "-aec", "PACSFLOW", "127.0.0.1", str(receiver_port), *map(str, paths)],
            capture_output=True,
            text=True,
        )
        assert resend.returncode == 0, resend.stdout + resend.stderr
        assert len(stored(archive)) == SLICES
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=30)
