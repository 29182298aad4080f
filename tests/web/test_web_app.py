"""create_app: first start, restarts, concurrent workers, health, index, OpenAPI, DICOMweb hook."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import ADMIN_PASSWORD, basic, people, start_workers

from pacsflow.settings import load_settings
from pacsflow.web.app import ADMIN_PASSWORD_FILE, create_app
from pacsflow.web.users import create_user, list_users
from pacsflow.workflows.airflow_env import SERVICE_USER

CREATED = re.compile(r"pacsflow: created user admin with password (\S+) \(also stored in (.+)\)")


def test_first_start_creates_admin_with_configured_password(tmp_path: Path) -> None:
    app = create_app(load_settings(home=tmp_path, admin_password=ADMIN_PASSWORD))

    assert [(u["username"], u["roles"]) for u in people(app)] == [("admin", ["Admin"])]
    service = [u for u in list_users(app) if u["username"] == SERVICE_USER]
    assert [u["roles"] for u in service] == [["Operator"]], "Airflow's tasks need an account"
    assert app.test_client().get("/", headers=basic("admin", ADMIN_PASSWORD)).status_code == 200
    assert not (tmp_path / ADMIN_PASSWORD_FILE).exists()


@pytest.mark.parametrize("configured", [None, "", "  "])
def test_generated_admin_password_is_printed_once_and_stored_0600(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], configured: str | None
) -> None:
    app = create_app(load_settings(home=tmp_path, admin_password=configured))

    match = CREATED.search(capsys.readouterr().out)
    assert match is not None
    password, stored_in = match.groups()
    path = tmp_path / ADMIN_PASSWORD_FILE
    assert Path(stored_in) == path.resolve()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == password
    assert app.test_client().get("/", headers=basic("admin", password)).status_code == 200


def test_second_start_keeps_admin_and_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_app(load_settings(home=tmp_path))
    password = (tmp_path / ADMIN_PASSWORD_FILE).read_text().strip()
    capsys.readouterr()

    app = create_app(load_settings(home=tmp_path, admin_password="a-different-one"))

    assert "created user" not in capsys.readouterr().out
    assert (tmp_path / ADMIN_PASSWORD_FILE).read_text().strip() == password
    assert len(people(app)) == 1
    client = app.test_client()
    assert client.get("/", headers=basic("admin", password)).status_code == 200
    assert client.get("/", headers=basic("admin", "a-different-one")).status_code == 401


def test_concurrent_workers_start_cleanly_on_sqlite(tmp_path: Path) -> None:
    home = tmp_path / "home"
    results = start_workers({"PACSFLOW_HOME": str(home)}, tmp_path / "barrier")

    assert [r.returncode for r in results] == [0] * len(results), [r.stderr for r in results]
    assert not [r.stderr for r in results if "Error" in r.stderr]  # FAB logs and goes on
    announcements = [m for r in results for m in CREATED.finditer(r.stdout)]
    assert len(announcements) == 1
    password = announcements[0].group(1)
    assert (home / ADMIN_PASSWORD_FILE).read_text().strip() == password
    app = create_app(load_settings(home=home))
    assert len(people(app)) == 1
    assert app.test_client().get("/", headers=basic("admin", password)).status_code == 200


def test_health_needs_no_login(client: FlaskClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_index_redirects_browsers_to_login_and_shows_the_dashboard(client: FlaskClient) -> None:
    anonymous = client.get("/")
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/login/?next=")

    page = client.get("/", headers=basic("admin", ADMIN_PASSWORD))
    assert page.status_code == 200
    assert b"pacsflow" in page.data and b'id="search-form"' in page.data


def test_browser_login_form_gives_a_session(app: Flask, client: FlaskClient) -> None:
    app.config["WTF_CSRF_ENABLED"] = False  # the form's CSRF token is FAB's business

    login = client.post("/login/", data={"username": "admin", "password": ADMIN_PASSWORD})

    assert login.status_code == 302
    assert client.get("/").status_code == 200
    assert client.get("/users/list/").status_code == 200


def test_openapi_spec_is_served_to_any_signed_in_user(app: Flask, client: FlaskClient) -> None:
    create_user(app, "vera", "viewer-pw", "Viewer")

    for headers in (basic("admin", ADMIN_PASSWORD), basic("vera", "viewer-pw")):
        response = client.get("/api/v1/_openapi", headers=headers)
        assert response.status_code == 200
        spec = response.get_json()
        assert spec["openapi"].startswith("3.")
        assert "/api/v1/security/login" in spec["paths"]
    assert client.get("/api/v1/_openapi").status_code == 401
