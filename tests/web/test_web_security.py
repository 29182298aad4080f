"""Authentication (Basic, Bearer, session), the login guard on every route, require()."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import flask_appbuilder.security.manager as fab_manager
import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from flask.typing import ResponseReturnValue
from web_helpers import ADMIN_PASSWORD, basic, bearer
from werkzeug.routing import Rule

from pacsflow.web.security import (
    API_PATH_PREFIXES,
    DICOM_RESOURCE,
    ROLE_GRANTS,
    CredentialCache,
    Permission,
    RoleName,
    credential_cache,
    ensure_roles,
    has_permission,
    require,
    security_manager,
)
from pacsflow.web.users import create_user, delete_user

# Routes that must answer without credentials; everything else needs a user.
PUBLIC_PATHS = {"/health", "/login/", "/api/v1/security/login", "/api/v1/security/refresh"}
_VARIABLE = re.compile(r"<(?:(?P<converter>[a-zA-Z_]\w*)(?:\((?P<args>.*?)\))?:)?(?P<name>\w+)>")
_DUMMIES = {
    "int": "1",
    "float": "1.0",
    "uuid": str(uuid.UUID(int=0)),
    "path": "1.2.3/4.5.6",
}


def _login_token(client: FlaskClient, username: str, password: str, refresh: bool = False) -> Any:
    return client.post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db", "refresh": refresh},
    )


def _dummy_value(match: re.Match[str]) -> str:
    """A value the URL variable's converter accepts; a UID-like string for plain strings."""
    converter = match.group("converter") or "default"
    if converter == "any":
        return str(match.group("args")).split(",")[0].strip().strip("'\"")
    return _DUMMIES.get(converter, "1.2.3")


def _dummy_url(rule: Rule) -> str:
    return _VARIABLE.sub(_dummy_value, rule.rule)


def _is_public(rule: Rule) -> bool:
    return (
        rule.rule in PUBLIC_PATHS or rule.endpoint == "static" or rule.endpoint.endswith(".static")
    )


# ---------------------------------------------------------------------------- authentication


def test_basic_auth_accepts_the_right_password(client: FlaskClient) -> None:
    assert client.get("/api/v1/_openapi", headers=basic("admin", ADMIN_PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    ("username", "password"),
    [("admin", "wrong"), ("nobody", ADMIN_PASSWORD), ("admin", ""), ("", ADMIN_PASSWORD)],
)
def test_basic_auth_rejects_wrong_credentials(
    client: FlaskClient, username: str, password: str
) -> None:
    response = client.get("/api/v1/_openapi", headers=basic(username, password))

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="pacsflow"'
    assert "error" in response.get_json()


def test_bearer_token_from_security_login_authenticates(client: FlaskClient) -> None:
    login = _login_token(client, "admin", ADMIN_PASSWORD)
    assert login.status_code == 200
    token = login.get_json()["access_token"]

    assert client.get("/api/v1/_openapi", headers=bearer(token)).status_code == 200
    assert client.get("/", headers=bearer(token)).status_code == 200


def test_security_login_rejects_wrong_password(client: FlaskClient) -> None:
    assert _login_token(client, "admin", "wrong").status_code == 401


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", ""])
def test_bad_bearer_token_is_401(client: FlaskClient, token: str) -> None:
    assert client.get("/api/v1/_openapi", headers=bearer(token)).status_code == 401


def test_refresh_token_is_not_an_access_token(client: FlaskClient) -> None:
    tokens = _login_token(client, "admin", ADMIN_PASSWORD, refresh=True).get_json()

    assert (
        client.get("/api/v1/_openapi", headers=bearer(tokens["refresh_token"])).status_code == 401
    )
    refreshed = client.post("/api/v1/security/refresh", headers=bearer(tokens["refresh_token"]))
    assert refreshed.status_code == 200
    new_token = refreshed.get_json()["access_token"]
    assert client.get("/api/v1/_openapi", headers=bearer(new_token)).status_code == 200


def test_bearer_token_of_deleted_user_is_rejected(app: Flask, client: FlaskClient) -> None:
    create_user(app, "temp", "temp-pw", "Viewer")
    token = _login_token(client, "temp", "temp-pw").get_json()["access_token"]
    delete_user(app, "temp")

    assert client.get("/", headers=bearer(token)).status_code == 401


def test_basic_auth_hashes_password_once_per_minute(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_check = fab_manager.check_password_hash

    def counting_check(pwhash: str, password: str) -> bool:
        calls.append("check")
        return real_check(pwhash, password)

    monkeypatch.setattr(fab_manager, "check_password_hash", counting_check)
    for _ in range(3):
        assert client.get("/", headers=basic("admin", ADMIN_PASSWORD)).status_code == 200
    assert client.get("/", headers=basic("admin", "wrong")).status_code == 401

    assert len(calls) == 2  # one success (then cached) and the failure


def test_cached_credentials_of_deleted_user_stop_working(app: Flask, client: FlaskClient) -> None:
    create_user(app, "temp", "temp-pw", "Viewer")
    assert client.get("/", headers=basic("temp", "temp-pw")).status_code == 200

    with app.app_context():
        user = security_manager(app).find_user(username="temp")
        security_manager(app).delete_user(user)  # bypasses users.py, so the cache is not cleared

    assert client.get("/", headers=basic("temp", "temp-pw")).status_code == 401


def test_credential_cache_keeps_no_password_and_expires() -> None:
    cache = CredentialCache(ttl=0.05)
    cache.put("alice", "s3cret-password", 7)

    assert cache.get("alice", "s3cret-password") == 7
    assert cache.get("alice", "other") is None
    assert cache.get("alic", "es3cret-password") is None
    assert "s3cret" not in repr(vars(cache))
    assert all(len(key) == 32 for key in cache._entries)
    time.sleep(0.1)
    assert cache.get("alice", "s3cret-password") is None


def test_credential_cache_stays_bounded() -> None:
    cache = CredentialCache(ttl=60, max_entries=10)
    for i in range(25):
        cache.put(f"user{i}", "pw", i)

    assert len(cache._entries) <= 10
    assert cache.get("user24", "pw") == 24


def test_each_app_has_its_own_credential_cache(app: Flask) -> None:
    assert credential_cache(app) is credential_cache(app)
    assert credential_cache(app) is not credential_cache(Flask("other"))


# ---------------------------------------------------------------------------- the login guard


def test_every_route_requires_a_user_except_the_public_ones(app: Flask) -> None:
    """Enumerates app.url_map, so routes added later (DICOMweb, dashboard) are covered."""
    client = app.test_client()
    rules = list(app.url_map.iter_rules())
    assert {r.rule for r in rules if _is_public(r)} >= PUBLIC_PATHS
    checked = 0
    for rule in rules:
        if _is_public(rule):
            continue
        url = _dummy_url(rule)
        for method in sorted(rule.methods or ()):
            response = client.open(url, method=method)
            where = f"{method} {url} ({rule.endpoint})"
            if url.startswith(API_PATH_PREFIXES):
                assert response.status_code == 401, where
                assert response.headers["WWW-Authenticate"] == 'Basic realm="pacsflow"', where
                if method != "HEAD":
                    assert "error" in response.get_json(), where
            else:
                assert response.status_code == 302, where
                assert response.headers["Location"].startswith("/login/?next="), where
            checked += 1
    assert checked > 50


def test_public_routes_answer_without_credentials(client: FlaskClient) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/login/").status_code == 200
    assert client.get("/static/appbuilder/css/bootstrap.min.css").status_code in (200, 404)
    assert _login_token(client, "admin", "wrong").status_code == 401  # reached, not guarded


def test_unknown_urls_do_not_reveal_whether_they_exist(client: FlaskClient) -> None:
    assert client.get("/no-such-page").status_code == 302
    assert client.get("/dicomweb/no/such/resource").status_code == 401
    assert client.get("/no-such-page", headers=basic("admin", ADMIN_PASSWORD)).status_code == 404


def test_failed_credentials_on_browser_route_get_401_not_login_page(client: FlaskClient) -> None:
    response = client.get("/", headers=basic("admin", "wrong"))

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="pacsflow"'


def test_login_redirect_keeps_the_query_string(client: FlaskClient) -> None:
    response = client.get("/users/list/?page=2")

    assert response.headers["Location"] == "/login/?next=/users/list/?page%3D2"


def test_every_dicomweb_route_is_guarded_by_require(app: Flask) -> None:
    """The one permission check: each /dicomweb view must be wrapped in require()."""
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/dicomweb") and not rule.endpoint.endswith(".static"):
            view = app.view_functions[rule.endpoint]
            assert isinstance(getattr(view, "required_permission", None), Permission), rule.rule


# ---------------------------------------------------------------------------- permissions


def _add_permission_routes(app: Flask) -> None:
    blueprint = Blueprint("perm_test", __name__, url_prefix="/dicomweb/test")

    def make(permission: Permission) -> Callable[[], ResponseReturnValue]:
        @require(permission)
        def view() -> dict[str, str]:
            return {"did": permission.value}

        view.__name__ = permission.name.lower()
        return view

    blueprint.add_url_rule("/read", view_func=make(Permission.READ), methods=["GET"])
    blueprint.add_url_rule("/write", view_func=make(Permission.WRITE), methods=["POST"])
    blueprint.add_url_rule("/delete", view_func=make(Permission.DELETE), methods=["DELETE"])
    app.register_blueprint(blueprint)


@pytest.mark.parametrize("role", list(RoleName))
def test_require_enforces_role_grants(app: Flask, role: RoleName) -> None:
    _add_permission_routes(app)
    create_user(app, "someone", "someone-pw", role.value)
    client = app.test_client()
    headers = basic("someone", "someone-pw")

    for permission, method in (
        (Permission.READ, "GET"),
        (Permission.WRITE, "POST"),
        (Permission.DELETE, "DELETE"),
    ):
        path = f"/dicomweb/test/{permission.name.lower()}"
        response = client.open(path, method=method, headers=headers)
        if permission in ROLE_GRANTS[role]:
            assert response.status_code == 200, (role, permission)
            assert response.get_json() == {"did": permission.value}
        else:
            assert response.status_code == 403, (role, permission)
            body = response.get_json()
            assert body["permission"] == permission.value
            assert permission.value in body["error"] and DICOM_RESOURCE in body["error"]


def test_viewer_gets_403_for_write_and_delete(app: Flask) -> None:
    _add_permission_routes(app)
    create_user(app, "vera", "viewer-pw", "Viewer")
    client = app.test_client()
    headers = basic("vera", "viewer-pw")

    assert client.get("/dicomweb/test/read", headers=headers).status_code == 200
    write = client.post("/dicomweb/test/write", headers=headers)
    assert write.status_code == 403 and write.get_json()["permission"] == "can_write"
    delete = client.delete("/dicomweb/test/delete", headers=headers)
    assert delete.status_code == 403 and delete.get_json()["permission"] == "can_delete"


def test_require_answers_401_itself_without_a_user(app: Flask) -> None:
    @require(Permission.READ)
    def view() -> str:
        return "never"

    with app.test_request_context("/anything"):
        response = view()

    assert response.status_code == 401  # type: ignore[union-attr]
    assert view.required_permission is Permission.READ  # type: ignore[attr-defined]


def test_has_permission_matches_role_grants(app: Flask) -> None:
    for role in RoleName:
        create_user(app, f"user-{role.value}", "pw-123456", role.value)
    with app.app_context():
        sm = security_manager(app)
        for role in RoleName:
            user = sm.find_user(username=f"user-{role.value}")
            granted = {p for p in Permission if has_permission(user, p)}
            assert granted == ROLE_GRANTS[role], role
        assert not has_permission(None, Permission.READ)


def test_has_permission_is_false_for_inactive_users(app: Flask) -> None:
    create_user(app, "gone", "gone-pw", "Operator")
    with app.app_context():
        sm = security_manager(app)
        user = sm.find_user(username="gone")
        user.active = False
        sm.update_user(user)
        assert not has_permission(user, Permission.READ)


def test_ensure_roles_is_idempotent(app: Flask) -> None:
    with app.app_context():
        sm = security_manager(app)
        before = {r.name: sorted(str(pv) for pv in r.permissions) for r in sm.get_all_roles()}
        ensure_roles(sm)
        ensure_roles(sm)
        after = {r.name: sorted(str(pv) for pv in r.permissions) for r in sm.get_all_roles()}
    assert before == after
    assert set(after) >= {r.value for r in RoleName}
