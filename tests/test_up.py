"""`pacsflow up` (what `make up` runs): the platform comes up, and Ctrl-C stops every process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import requests

from tests.live_server import free_port

STARTUP_SECONDS = 90


def test_up_serves_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port, dicom_port, airflow_port = free_port(), free_port(), free_port()
    home = tmp_path / "home"
    env = {
        **os.environ,
        "PACSFLOW_HOME": str(home),
        "PACSFLOW_HTTP_PORT": str(port),
        "PACSFLOW_DICOM_PORT": str(dicom_port),
        "PACSFLOW_AIRFLOW_PORT": str(airflow_port),
    }
    for inherited in ("PACSFLOW_ADMIN_PASSWORD", "PACSFLOW_DICOM_ACCEPT_ALL_CALLING_AES"):
        env.pop(inherited, None)
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "pacsflow", "up"], env=env, stdout=out, stderr=out
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert up.poll() is None, log.read_text()[-3000:]
            if _answers(f"{url}/health"):
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"not healthy in time:\n{log.read_text()[-3000:]}")
        password = (home / "admin_password").read_text().strip()
        assert oct((home / "admin_password").stat().st_mode & 0o777) == "0o600"
        assert f"created user admin with password {password}" in log.read_text()
        assert requests.get(f"{url}/dicomweb/studies", timeout=5).status_code == 401
        studies = requests.get(f"{url}/dicomweb/studies", auth=("admin", password), timeout=5)
        assert studies.status_code == 200 and studies.json() == []
        echo = ["echoscu", "-aet", "ANY_SCU", "-aec", "PACSFLOW", "127.0.0.1", str(dicom_port)]
        assert _retry(lambda: subprocess.run(echo, capture_output=True).returncode == 0)
        assert "the DICOM receiver accepts any calling AE" in log.read_text()
        airflow = f"http://127.0.0.1:{airflow_port}/api/v2/monitor/health"
        assert _retry(lambda: _answers(airflow), seconds=120), log.read_text()[-3000:]
        children = psutil.Process(up.pid).children(recursive=True)
        assert children, "up should run the web server as child processes"
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"left running: {alive}"
    finally:
        if up.poll() is None:  # a failed check: take down everything it started, too
            for child in psutil.Process(up.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            up.kill()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:  # not listening yet, or still starting up
        return False


def _retry(check: Callable[[], bool], seconds: float = 30) -> bool:
    """The receiver may still be starting when the web app already answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False
