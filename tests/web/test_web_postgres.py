"""The web app on a real PostgreSQL (127.0.0.1:5432, trust auth, user postgres)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_helpers import basic, bearer, people, start_workers

from pacsflow.settings import load_settings
from pacsflow.web.app import create_app
from pacsflow.web.users import create_user
from tests.conftest import create_postgres_database, drop_postgres_database

CREATED = re.compile(r"pacsflow: created user admin with password (\S+) ")


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh, uniquely named database, dropped afterwards even if connections linger."""
    name, url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(name)


def test_app_on_postgresql(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(load_settings(home=tmp_path, database_url=database_url))
    match = CREATED.search(capsys.readouterr().out)
    assert match is not None
    password = match.group(1)
    client = app.test_client()

    assert client.get("/", headers=basic("admin", password)).status_code == 200
    assert client.get("/", headers=basic("admin", "wrong")).status_code == 401
    login = client.post(
        "/api/v1/security/login",
        json={"username": "admin", "password": password, "provider": "db"},
    )
    token = login.get_json()["access_token"]
    assert client.get("/api/v1/_openapi", headers=bearer(token)).status_code == 200
    create_user(app, "vera", "viewer-pw", "Viewer")

    again = create_app(load_settings(home=tmp_path, database_url=database_url))

    assert "created user" not in capsys.readouterr().out
    assert [u["username"] for u in people(again)] == ["admin", "vera"]
    assert again.test_client().get("/", headers=basic("admin", password)).status_code == 200


def test_concurrent_workers_start_cleanly_on_postgresql(tmp_path: Path, database_url: str) -> None:
    env = {"PACSFLOW_HOME": str(tmp_path / "home"), "PACSFLOW_DATABASE_URL": database_url}
    results = start_workers(env, tmp_path / "barrier")

    assert [r.returncode for r in results] == [0] * len(results), [r.stderr for r in results]
    assert not [r.stderr for r in results if "Error" in r.stderr]  # FAB logs and goes on
    assert sum(len(CREATED.findall(r.stdout)) for r in results) == 1
    app = create_app(load_settings(home=tmp_path / "home", database_url=database_url))
    assert [u["username"] for u in people(app)] == ["admin"]
