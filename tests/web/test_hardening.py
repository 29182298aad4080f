"""Sign-in limits, security headers and session expiry (pacsflow.web.hardening)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import itsdangerous.timed
import limits.storage.memory
import pytest
from flask import Flask
from web_helpers import ADMIN_PASSWORD, basic
from werkzeug.test import TestResponse

from pacsflow.settings import SettingsError, load_settings
from pacsflow.web import hardening
from pacsflow.web.app import create_app
from pacsflow.web.hardening import (
    FAILURE_WINDOW_SECONDS,
    FAILURES_PER_ADDRESS,
    FAILURES_PER_USER,
    hardening_config,
)
from pacsflow.web.security import credential_cache, security_manager
from pacsflow.web.users import create_user
from pacsflow.workflows.airflow_env import SERVICE_USER, service_password
from tests.conftest import opened_app

HOME = "192.0.2.10"  # TEST-NET addresses as clients
ELSEWHERE = "192.0.2.20"
REDIS_URL = "redis://127.0.0.1:6379/0"

SIGNED_IN, FAILED, REFUSED = "signed in", "failed", "refused"
SignIn = Callable[[Flask, str, str, str], TestResponse]


def form_sign_in(app: Flask, username: str, password: str, address: str = HOME) -> TestResponse:
    """FAB's login page, from a fresh browser (a signed-in one would not be asked)."""
    return app.test_client().post(
        "/login/",
        data={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def api_sign_in(app: Flask, username: str, password: str, address: str = HOME) -> TestResponse:
    """FAB's JWT login."""
    return app.test_client().post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db"},
        environ_base={"REMOTE_ADDR": address},
    )


def basic_sign_in(app: Flask, username: str, password: str, address: str = HOME) -> TestResponse:
    """HTTP Basic on a DICOMweb query."""
    return app.test_client().get(
        "/dicomweb/studies",
        headers=basic(username, password),
        environ_base={"REMOTE_ADDR": address},
    )


WAYS: dict[str, SignIn] = {"form": form_sign_in, "api": api_sign_in, "basic": basic_sign_in}


def outcome(response: TestResponse) -> str:
    """What became of a sign-in: the form answers a wrong password by showing itself again."""
    if response.status_code == 429:
        return REFUSED
    if response.status_code == 401:
        return FAILED
    if response.status_code == 302:
        return FAILED if response.headers["Location"].startswith("/login/") else SIGNED_IN
    assert response.status_code in (200, 204), response.get_data(as_text=True)
    return SIGNED_IN


class Clock:
    """Stands in for the ``time`` module where limits' memory storage, hardening and
    itsdangerous (session cookies) read the time, so tests can let minutes pass at once."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    for module in (limits.storage.memory, hardening, itsdangerous.timed):
        monkeypatch.setattr(module, "time", clock)
    return clock


@pytest.fixture
def app(app: Flask) -> Flask:
    app.config["WTF_CSRF_ENABLED"] = False  # the form's CSRF token is FAB's business
    create_user(app, "rita", "rita-pw", "Researcher")
    return app


@pytest.fixture
def password_checks(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The usernames whose password was checked against the database, in order."""
    sm = security_manager(app)
    check = sm.auth_user_db
    checked: list[str] = []

    def counting_check(username: str, password: str) -> object:
        checked.append(username)
        return check(username, password)

    monkeypatch.setattr(sm, "auth_user_db", counting_check)
    return checked


# ----------------------------------------------------------------------------- sign-in limits


@pytest.mark.parametrize("way", WAYS)
def test_failed_sign_ins_refuse_the_user_until_the_window_passes(
    app: Flask, clock: Clock, password_checks: list[str], way: str
) -> None:
    sign_in = WAYS[way]
    for _ in range(FAILURES_PER_USER):
        assert outcome(sign_in(app, "rita", "wrong")) == FAILED

    checks_before = len(password_checks)
    refused = sign_in(app, "rita", "rita-pw")

    assert outcome(refused) == REFUSED
    assert len(password_checks) == checks_before, "a refused sign-in must not check a password"
    wait = int(refused.headers["Retry-After"])
    assert 0 < wait <= FAILURE_WINDOW_SECONDS
    assert f"too many failed sign-ins; try again in {wait} s" in refused.get_data(as_text=True)
    assert "WWW-Authenticate" not in refused.headers
    assert outcome(sign_in(app, "RITA", "rita-pw")) == REFUSED  # FAB ignores the case
    assert outcome(sign_in(app, "admin", ADMIN_PASSWORD)) == SIGNED_IN  # same address

    clock.advance(wait - 1)
    assert outcome(sign_in(app, "rita", "rita-pw")) == REFUSED
    clock.advance(1)
    assert outcome(sign_in(app, "rita", "rita-pw")) == SIGNED_IN


def test_refused_answers_suit_the_client(app: Flask) -> None:
    """The login page gets a page, API clients JSON."""
    for _ in range(FAILURES_PER_USER):
        form_sign_in(app, "rita", "wrong")

    page = form_sign_in(app, "rita", "rita-pw")
    api = api_sign_in(app, "rita", "rita-pw")
    dicomweb = basic_sign_in(app, "rita", "rita-pw")

    assert page.status_code == 429 and page.mimetype == "text/html"
    for response in (api, dicomweb):
        assert response.status_code == 429
        assert response.get_json()["error"].startswith("too many failed sign-ins; try again in")


def test_failures_through_all_ways_count_together(app: Flask) -> None:
    for attempt in range(FAILURES_PER_USER):
        sign_in = list(WAYS.values())[attempt % len(WAYS)]
        assert outcome(sign_in(app, "rita", "wrong")) == FAILED

    for sign_in in WAYS.values():
        assert outcome(sign_in(app, "rita", "rita-pw")) == REFUSED


def test_successful_sign_ins_are_never_limited(app: Flask, password_checks: list[str]) -> None:
    for _ in range(FAILURES_PER_USER - 1):
        assert outcome(api_sign_in(app, "rita", "wrong")) == FAILED

    for _ in range(FAILURES_PER_ADDRESS + 2):
        for sign_in in WAYS.values():
            credential_cache(app).clear()  # so that Basic checks the password every time
            assert outcome(sign_in(app, "rita", "rita-pw")) == SIGNED_IN

    assert password_checks.count("rita") == FAILURES_PER_USER - 1 + 3 * (FAILURES_PER_ADDRESS + 2)
    assert outcome(api_sign_in(app, "rita", "wrong")) == FAILED
    assert outcome(api_sign_in(app, "rita", "rita-pw")) == REFUSED


def test_invalid_submissions_do_not_count(app: Flask) -> None:
    """Nothing was checked against a password: no JSON, no password, a CSRF failure."""
    client = app.test_client()
    for _ in range(FAILURES_PER_ADDRESS + 1):
        assert client.post("/api/v1/security/login", data="rita").status_code == 400
        assert client.get("/dicomweb/studies", headers=basic("rita", "")).status_code == 401
    app.config["WTF_CSRF_ENABLED"] = True
    for _ in range(FAILURES_PER_USER + 1):
        assert form_sign_in(app, "rita", "wrong").status_code == 200  # the form again

    assert outcome(api_sign_in(app, "rita", "rita-pw")) == SIGNED_IN


def test_an_address_is_refused_after_many_failures_over_many_usernames(app: Flask) -> None:
    ways = list(WAYS.values())
    for attempt in range(FAILURES_PER_ADDRESS):
        sign_in = ways[attempt % len(ways)]
        assert outcome(sign_in(app, f"guess{attempt}", "wrong")) == FAILED

    for sign_in in ways:
        assert outcome(sign_in(app, "admin", ADMIN_PASSWORD)) == REFUSED
        assert outcome(sign_in(app, "admin", ADMIN_PASSWORD, ELSEWHERE)) == SIGNED_IN


def test_a_shared_store_counts_for_all_workers(tmp_path: Path) -> None:
    """With PACSFLOW_LOGIN_LIMIT_STORAGE on Redis, two workers (apps) share the counts."""
    settings = load_settings(
        home=tmp_path, admin_password=ADMIN_PASSWORD, login_limit_storage=REDIS_URL
    )
    username = f"nobody-{uuid.uuid4().hex[:8]}"  # Redis outlives the test: keys of its own
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    with opened_app(settings) as first, opened_app(settings) as second:
        for _ in range(FAILURES_PER_USER):
            assert outcome(api_sign_in(first, username, "wrong", address)) == FAILED
        assert outcome(api_sign_in(second, username, "wrong", address)) == REFUSED


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("nosuch://user:secret@host", "no store for the scheme 'nosuch'"),
        ("async+memory://", "not a synchronous store"),
    ],
)
def test_a_wrong_limit_storage_stops_the_start(tmp_path: Path, uri: str, problem: str) -> None:
    settings = load_settings(home=tmp_path, admin_password=ADMIN_PASSWORD, login_limit_storage=uri)

    with pytest.raises(SettingsError, match=f"^PACSFLOW_LOGIN_LIMIT_STORAGE: .*{problem}") as error:
        create_app(settings)
    assert "secret" not in str(error.value)


# --------------------------------------------------------------------------- security headers


def assert_base_headers(response: TestResponse) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_and_api_responses_carry_the_security_headers(app: Flask) -> None:
    client = app.test_client()
    responses = {
        "dashboard": client.get("/", headers=basic("admin", ADMIN_PASSWORD)),
        "health": client.get("/health"),
        "dicomweb": client.get("/dicomweb/studies", headers=basic("admin", ADMIN_PASSWORD)),
        "refused": client.get("/dicomweb/studies"),
    }
    for name, response in responses.items():
        assert_base_headers(response)
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy, name
        assert "frame-ancestors 'self'" in policy, name
        assert "'unsafe-eval'" not in policy, name
        assert "Strict-Transport-Security" not in response.headers  # public URL is http
    assert responses["dashboard"].status_code == 200


def test_inline_scripts_run_only_with_the_responses_nonce(app: Flask) -> None:
    """FAB's pages have inline scripts; each carries the nonce the policy names."""
    first, second = (app.test_client().get("/login/") for _ in range(2))

    nonces = []
    for page in (first, second):
        script_src = re.search(r"script-src ([^;]*)", page.headers["Content-Security-Policy"])
        assert script_src is not None
        (nonce,) = re.findall(r"'nonce-([^']+)'", script_src.group(1))
        assert "'unsafe-inline'" not in script_src.group(1)
        scripts = re.findall(r"<script[^>]*>", page.get_data(as_text=True))
        assert scripts and all(f'nonce="{nonce}"' in tag for tag in scripts)
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


@pytest.mark.parametrize("path", ["/viewer", "/viewer/", "/viewer/viewer", "/viewer/app.js"])
def test_the_viewer_gets_no_content_security_policy(app: Flask, path: str) -> None:
    """OHIF needs eval, wasm and blob: workers; it is installed or not (503), same headers."""
    response = app.test_client().get(path, headers=basic("admin", ADMIN_PASSWORD))

    assert response.status_code in (200, 404, 503)
    assert_base_headers(response)
    assert "Content-Security-Policy" not in response.headers


def test_https_public_url_adds_hsts_and_secure_cookies(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path, admin_password=ADMIN_PASSWORD, public_url="https://pacs.example.org"
    )
    with opened_app(settings) as app:
        app.config["WTF_CSRF_ENABLED"] = False
        health = app.test_client().get("/health")
        login = form_sign_in(app, "admin", ADMIN_PASSWORD)

    assert health.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert outcome(login) == SIGNED_IN
    assert "; Secure" in login.headers["Set-Cookie"]


# ----------------------------------------------------------------------------- session expiry


def test_the_session_cookie_expires_after_the_configured_hours(app: Flask) -> None:
    client = app.test_client()
    before = datetime.now(UTC)
    client.post("/login/", data={"username": "rita", "password": "rita-pw"})

    cookie = client.get_cookie("pacsflow_session")
    assert cookie is not None and cookie.expires is not None
    assert app.config["PACSFLOW_SETTINGS"].session_hours == 8  # the default
    expected = before + timedelta(hours=8)
    assert abs(cookie.expires - expected) < timedelta(minutes=1)
    assert cookie.http_only
    assert not cookie.secure  # the public URL is http
    assert client.get_cookie("remember_token") is None  # FAB signs in with remember=False


def test_an_expired_session_is_signed_out(app: Flask, clock: Clock) -> None:
    client = app.test_client()
    client.post("/login/", data={"username": "rita", "password": "rita-pw"})
    lifetime = app.permanent_session_lifetime.total_seconds()

    clock.advance(lifetime - 60)
    assert client.get("/").status_code == 200  # still signed in; the cookie is renewed
    clock.advance(lifetime + 1)
    page = client.get("/")

    assert page.status_code == 302
    assert page.headers["Location"].startswith("/login/")


def test_session_hours_and_https_come_from_the_settings() -> None:
    config = hardening_config(
        load_settings(session_hours=1.5, public_url="https://pacs.example.org")
    )

    assert config["PERMANENT_SESSION_LIFETIME"] == timedelta(hours=1.5)
    assert config["REMEMBER_COOKIE_DURATION"] == timedelta(hours=1.5)
    assert config["SESSION_COOKIE_SECURE"] and config["REMEMBER_COOKIE_SECURE"]
    assert config["SESSION_COOKIE_HTTPONLY"] and config["REMEMBER_COOKIE_HTTPONLY"]
    with pytest.raises(SettingsError, match="PACSFLOW_SESSION_HOURS"):
        load_settings(session_hours=0)


def test_the_workflows_account_cannot_be_locked_by_name(app: Flask) -> None:
    """Wrong passwords from many addresses never stop Airflow's tasks signing in."""
    client = app.test_client()
    for n in range(FAILURES_PER_USER + 2):
        wrong = client.get(
            "/dicomweb/studies",
            headers=basic(SERVICE_USER, "guess"),
            environ_base={"REMOTE_ADDR": f"10.0.0.{n + 1}"},
        )
        assert wrong.status_code == 401
    password = service_password(app.config["PACSFLOW_SETTINGS"])
    assert client.get("/dicomweb/studies", headers=basic(SERVICE_USER, password)).status_code == 200
