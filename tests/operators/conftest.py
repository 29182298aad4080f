"""Peers for the forwarding tests: pacsflow itself, a second pacsflow, and dcmtk's storescp."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pacsflow.operators.client import PacsflowClient
from pacsflow.settings import load_settings
from tests.conftest import database
from tests.live_server import ADMIN_PASSWORD, LiveServer, free_port, running_server
from tests.operators.helpers import STORESCP_AE, StoreSCP
from tests.receiver.helpers import wait_listening


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """SQLite only: operators reach pacsflow through HTTP alone, so the index's backend does
    not change what they do; tests/dicomweb runs the server on both."""
    with database("sqlite", tmp_path) as url:
        yield url


@pytest.fixture
def archive_client(live_server: LiveServer) -> Iterator[PacsflowClient]:
    """The archive as a task sees it: its DICOMweb, as the admin account."""
    with PacsflowClient(live_server.url, "admin", ADMIN_PASSWORD) as client:
        yield client


@pytest.fixture
def destination_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A second pacsflow to forward to, on its own home and SQLite index."""
    folder = tmp_path / "destination"
    folder.mkdir()
    with database("sqlite", folder) as url:
        settings = load_settings(
            home=folder / "home", database_url=url, admin_password=ADMIN_PASSWORD
        )
        with running_server(settings, folder / "server.log") as server:
            yield server


@pytest.fixture
def start_storescp(tmp_path: Path) -> Iterator[Callable[..., StoreSCP]]:
    """Starts dcmtk's storescp, bit-preserving and accepting unknown SOP classes, with extra
    options and on a given or free port; stops every one started after the test."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(*options: str, port: int | None = None) -> StoreSCP:
        port = port or free_port()
        folder = tmp_path / f"storescp-{port}"
        folder.mkdir()
        command = ["storescp", "+B", "-pm", "-aet", STORESCP_AE, "-od", str(folder), *options]
        process = subprocess.Popen(
            [*command, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        processes.append(process)
        wait_listening(port)
        return StoreSCP(port, folder)

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def storescp(start_storescp: Callable[..., StoreSCP]) -> StoreSCP:
    """storescp accepting every transfer syntax it knows."""
    return start_storescp("+xa")
