"""Peers for the forwarding tests: pacsflow itself, a second pacsflow, and dcmtk's storescp."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from pacsflow.operators.client import PacsflowClient
from pacsflow.settings import load_settings
from tests.conftest import database
from tests.live_server import ADMIN_PASSWORD, LiveServer, running_server
from tests.operators.helpers import STORESCP_AE, StoreSCP
from tests.receiver.helpers import running_storescp


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
    numbers = itertools.count()
    with ExitStack() as running:

        def start(*options: str, port: int | None = None) -> StoreSCP:
            folder = tmp_path / f"storescp-{next(numbers)}"
            scp = running_storescp(folder, STORESCP_AE, "+B", "-pm", *options, port=port)
            return StoreSCP(running.enter_context(scp), folder)

        yield start


@pytest.fixture
def storescp(start_storescp: Callable[..., StoreSCP]) -> StoreSCP:
    """storescp accepting every transfer syntax it knows."""
    return start_storescp("+xa")
