"""GET /api/v1/me: who the caller is, for systems that check pacsflow accounts (Airflow)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from web_helpers import ADMIN_PASSWORD, basic

from pacsflow.web.users import create_user


def test_a_user_learns_their_name_and_roles(app: Flask, client: FlaskClient) -> None:
    create_user(app, "olga", "operator-pw", "Operator")
    me = client.get("/api/v1/me", headers=basic("olga", "operator-pw"))
    assert me.status_code == 200
    assert me.get_json() == {"username": "olga", "roles": ["Operator"]}
    admin = client.get("/api/v1/me", headers=basic("admin", ADMIN_PASSWORD))
    assert admin.get_json() == {"username": "admin", "roles": ["Admin"]}


def test_without_a_valid_login_there_is_nobody(client: FlaskClient) -> None:
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me", headers=basic("admin", "wrong")).status_code == 401
