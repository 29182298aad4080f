"""A real pacsflow web server in a subprocess, for tests through real HTTP clients.

A pytest plugin (see the root conftest), so every test folder can use ``live_server``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from pacsflow.settings import Settings

STARTUP_SECONDS = 90
ADMIN_PASSWORD = "test-admin-password"


@dataclass(frozen=True)
class LiveServer:
    url: str
    auth: tuple[str, str]

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicomweb"

    def session(self) -> requests.Session:
        session = requests.Session()
        session.auth = self.auth
        return session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    with running_server(settings, tmp_path / "server.log") as server:
        yield server


@contextmanager
def running_server(
    settings: Settings, log_path: Path, port: int | None = None
) -> Iterator[LiveServer]:
    """``pacsflow web`` over ``settings``' home and database, until exit; a free port unless
    ``port`` is given."""
    port = port or free_port()
    env = {
        **os.environ,
        "PACSFLOW_HOME": str(settings.home),
        "PACSFLOW_DATABASE_URL": settings.sqlalchemy_url,
        "PACSFLOW_HTTP_PORT": str(port),
        "PACSFLOW_AIRFLOW_PORT": str(settings.airflow_port),
        "PACSFLOW_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PACSFLOW_WEB_WORKERS": "2",
        "PACSFLOW_WEB_THREADS": "4",
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pacsflow", "web"], env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log_path)
        yield LiveServer(url, ("admin", ADMIN_PASSWORD))
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"pacsflow web exited early:\n{log_path.read_text()[-4000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    pytest.fail(f"pacsflow web did not become healthy:\n{log_path.read_text()[-4000:]}")
