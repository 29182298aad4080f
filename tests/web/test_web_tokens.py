"""Personal access tokens: issued once, stored hashed, accepted as Bearer credentials in
every interface, refused from the very next request once revoked or expired."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from web_helpers import ADMIN_PASSWORD, basic, bearer

from pacsflow.archive.archive import Archive
from pacsflow.archive.models import ApiToken
from pacsflow.web.dicomweb.common import ARCHIVE_EXTENSION
from pacsflow.web.users import create_user

ADMIN = basic("admin", ADMIN_PASSWORD)
RITA = basic("rita", "researcher-pw")


@pytest.fixture
def app(app: Flask) -> Flask:
    """The shared app with the Researcher ``rita`` (password researcher-pw)."""
    create_user(app, "rita", "researcher-pw", "Researcher")
    return app


QIDO = "/dicomweb/studies"


def issue(client: FlaskClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/tokens", json={"name": "nightly export", **body}, headers=headers
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    issued: dict[str, Any] = response.json
    return issued


def test_a_token_works_until_it_is_revoked(client: FlaskClient) -> None:
    issued = issue(client, RITA, expires_in_days=30)
    assert issued["token"].startswith("pft_") and len(issued["token"]) == 47
    token = bearer(issued["token"])
    assert client.get(QIDO, headers=token).status_code in (200, 204)
    assert client.get("/api/v1/me", headers=token).json["username"] == "rita"
    listed = client.get("/api/v1/tokens", headers=RITA).json["tokens"]
    assert listed == [
        {
            "id": issued["id"],
            "name": "nightly export",
            "created_at": issued["created_at"],
            "expires_at": issued["expires_at"],
            "revoked": False,
        }
    ]
    assert client.delete(f"/api/v1/tokens/{issued['id']}", headers=RITA).status_code == 204
    refused = client.get(QIDO, headers=token)
    assert refused.status_code == 401
    assert client.get("/api/v1/tokens", headers=RITA).json["tokens"][0]["revoked"] is True


def test_an_expired_token_is_refused(app: Flask, client: FlaskClient) -> None:
    issued = issue(client, RITA)
    token = bearer(issued["token"])
    assert client.get(QIDO, headers=token).status_code in (200, 204)
    archive: Archive = app.extensions[ARCHIVE_EXTENSION]
    with archive.engine.begin() as conn:
        conn.execute(update(ApiToken).values(expires_at=ApiToken.created_at))
    assert client.get(QIDO, headers=token).status_code == 401


def test_only_a_hash_is_stored(app: Flask, client: FlaskClient) -> None:
    issued = issue(client, RITA)
    archive: Archive = app.extensions[ARCHIVE_EXTENSION]
    with archive.engine.connect() as conn:
        (row,) = conn.execute(select(ApiToken)).all()
    assert issued["token"] not in {str(value) for value in row}
    assert len(row.secret_hash) == 64


def test_unknown_and_malformed_tokens_are_refused(client: FlaskClient) -> None:
    for value in ("pft_" + "x" * 43, "pft_", "not-a-jwt"):
        assert client.get(QIDO, headers=bearer(value)).status_code == 401, value


def test_tokens_cannot_manage_tokens(client: FlaskClient) -> None:
    token = bearer(issue(client, RITA)["token"])
    assert client.post("/api/v1/tokens", json={"name": "x"}, headers=token).status_code == 403
    assert client.get("/api/v1/tokens", headers=token).status_code == 403
    assert client.delete("/api/v1/tokens/1", headers=token).status_code == 403


def test_users_revoke_only_their_own_tokens_and_admins_any(client: FlaskClient) -> None:
    ritas = issue(client, RITA)
    admins = issue(client, ADMIN)
    assert client.delete(f"/api/v1/tokens/{admins['id']}", headers=RITA).status_code == 404
    assert client.get(QIDO, headers=bearer(admins["token"])).status_code in (200, 204)
    assert client.delete(f"/api/v1/tokens/{ritas['id']}", headers=ADMIN).status_code == 204
    assert client.get(QIDO, headers=bearer(ritas["token"])).status_code == 401
    assert client.delete(f"/api/v1/tokens/{ritas['id']}", headers=ADMIN).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "send a JSON object"),
        ({"name": ""}, '"name" must be a text of 1 to 100'),
        ({"name": "x" * 101}, '"name" must be a text of 1 to 100'),
        ({"name": "x", "expires_in_days": 0}, '"expires_in_days" must be a whole number'),
        ({"name": "x", "expires_in_days": 366}, '"expires_in_days" must be a whole number'),
        ({"name": "x", "expires_in_days": "30"}, '"expires_in_days" must be a whole number'),
    ],
)
def test_bad_requests_say_what_to_send(client: FlaskClient, body: Any, message: str) -> None:
    response = client.post("/api/v1/tokens", json=body, headers=RITA)
    assert response.status_code == 400
    assert message in response.json["error"]


def test_token_routes_need_a_login(client: FlaskClient) -> None:
    assert client.get("/api/v1/tokens").status_code == 401
    assert client.post("/api/v1/tokens", json={"name": "x"}).status_code == 401
