"""Manual runs REST: who may call it, what it refuses, and what it says when Airflow is away.

Runs on a real Airflow are tested in tests/workflows/test_manual_runs.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import ADMIN_PASSWORD, basic

from pacsflow.settings import load_settings
from pacsflow.web.dicomweb.common import ARCHIVE_EXTENSION
from pacsflow.web.users import create_user
from pacsflow.workflows.manual_runs import is_user_runnable
from tests.conftest import opened_app
from tests.live_server import free_port

RUNS = "/api/v1/workflows/process_series/runs"
ADMIN = basic("admin", ADMIN_PASSWORD)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """An app whose Airflow port has nothing listening: Airflow is down."""
    settings = load_settings(home=tmp_path, admin_password=ADMIN_PASSWORD, airflow_port=free_port())
    with opened_app(settings) as app:
        app.extensions[ARCHIVE_EXTENSION].migrate()
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_every_route_needs_a_user(client: FlaskClient) -> None:
    assert client.get("/api/v1/workflows").status_code == 401
    assert client.post(RUNS, json={"series": ["1.2.3"]}).status_code == 401
    assert client.get(f"{RUNS}/manual__1.2.3__x").status_code == 401


def test_a_viewer_cannot_start_runs(app: Flask, client: FlaskClient) -> None:
    create_user(app, "vera", "viewer-pw", "Viewer")
    response = client.post(RUNS, json={"series": ["1.2.3"]}, headers=basic("vera", "viewer-pw"))
    assert response.status_code == 403
    assert "can_write" in response.json["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "send a JSON object"),
        ([], "send a JSON object"),
        ({}, '"series" must be a non-empty list'),
        ({"series": []}, '"series" must be a non-empty list'),
        ({"series": "1.2.3"}, '"series" must be a non-empty list'),
        ({"series": ["1.2.3", 4]}, '"series" must be a non-empty list'),
        ({"series": ["1.2"] * 1001}, "at most 1000 series"),
        ({"series": ["1.2.3"], "params": [1]}, '"params" must be a JSON object'),
    ],
)
def test_malformed_requests_are_refused_with_what_to_send(
    client: FlaskClient, body: Any, message: str
) -> None:
    response = client.post(RUNS, json=body, headers=ADMIN)
    assert response.status_code == 400
    assert message in response.json["error"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/v1/workflows"), ("POST", RUNS), ("GET", f"{RUNS}/manual__1.2.3__x")],
)
def test_airflow_away_is_a_503_that_says_so(client: FlaskClient, method: str, path: str) -> None:
    response = client.open(path, method=method, json={"series": ["1.2.3"]}, headers=ADMIN)
    assert response.status_code == 503
    assert "unreachable" in response.json["error"]
    assert "until it is back" in response.json["error"]


@pytest.mark.parametrize(
    ("dag", "runnable"),
    [
        (None, False),
        ({"dag_id": "a", "tags": []}, False),
        ({"dag_id": "a", "tags": [{"name": "pacsflow", "dag_id": "a"}]}, False),
        ({"dag_id": "a", "tags": [{"name": "user-runnable", "dag_id": "a"}]}, True),
    ],
)
def test_only_dags_tagged_user_runnable_are_offered(
    dag: dict[str, Any] | None, runnable: bool
) -> None:
    assert is_user_runnable(dag) is runnable
