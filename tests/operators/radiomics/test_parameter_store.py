"""Parameter sets as a task gets them: shipped ones locally, uploaded ones over pacsflow's API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacsflow.operators.client import PacsflowClient, PacsflowError
from pacsflow.operators.radiomics.model import RadiomicsError
from pacsflow.operators.radiomics.parameter_store import resolve_parameters
from pacsflow.operators.radiomics.parameters import PARAMS_DIR, parameters_digest
from tests.live_server import LiveServer, free_port

SETS = "/api/v1/radiomics/parameters"
MINE = """\
# finer bins than the default, first order only
setting:
  binWidth: 10
featureClass:
  firstorder:
"""


@pytest.fixture
def offline_client() -> Iterator[PacsflowClient]:
    """A client whose every request fails at once: nothing listens on its port."""
    with PacsflowClient(f"http://127.0.0.1:{free_port()}", "admin", "unused", retries=0) as c:
        yield c


def test_uploaded_set_is_fetched_into_the_task_folder(
    live_server: LiveServer, archive_client: PacsflowClient, tmp_path: Path
) -> None:
    uploaded = tmp_path / "uploaded.yaml"
    uploaded.write_text(MINE)
    with live_server.session() as session:
        response = session.put(f"{live_server.url}{SETS}/fine-bins", data=MINE, timeout=30)
    assert response.status_code == 201, response.text

    folder = tmp_path / "task"
    folder.mkdir()
    path = resolve_parameters(archive_client, "fine-bins", folder)
    assert path == (folder / "fine-bins.yaml").resolve()
    assert path.read_text() == MINE
    assert parameters_digest(path) == parameters_digest(uploaded)
    assert parameters_digest(path) != parameters_digest(PARAMS_DIR / "default.yaml")


def test_unknown_set_names_the_shipped_ones_and_how_to_upload(
    archive_client: PacsflowClient, tmp_path: Path
) -> None:
    folder = tmp_path / "task"
    folder.mkdir()
    with pytest.raises(RadiomicsError) as raised:
        resolve_parameters(archive_client, "nothing", folder)
    assert str(raised.value) == (
        "no parameter set 'nothing': shipped are default, ibsi; "
        "upload others with PUT /api/v1/radiomics/parameters/nothing"
    )
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("name", ["default", "ibsi"])
def test_shipped_sets_need_no_request(
    offline_client: PacsflowClient, tmp_path: Path, name: str
) -> None:
    path = resolve_parameters(offline_client, name, tmp_path)
    assert path == (PARAMS_DIR / f"{name}.yaml").resolve()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", ".hidden", ""])
def test_names_that_are_not_file_names_are_refused_before_any_request(
    offline_client: PacsflowClient, tmp_path: Path, name: str
) -> None:
    with pytest.raises(
        RadiomicsError, match=re.escape(f"parameter set name {name!r} is not allowed")
    ):
        resolve_parameters(offline_client, name, tmp_path)


def test_pacsflow_unreachable_is_a_pacsflow_error(
    offline_client: PacsflowClient, tmp_path: Path
) -> None:
    """Not a RadiomicsError: the set may well exist, and a retry of the task may succeed."""
    with pytest.raises(PacsflowError, match="no response"):
        resolve_parameters(offline_client, "fine-bins", tmp_path)
