"""OpenID Connect sign-in against a real OpenID provider (the npm package oidc-provider).

The provider (oidc/provider.mjs) and the pacsflow web app both serve HTTP on 127.0.0.1;
a requests session plays the browser through the authorization-code flow: pacsflow's
/login/oidc, the provider's login and consent forms, back to /oauth-authorized/oidc.

Plain http is for the test only: Authlib refuses it unless AUTHLIB_INSECURE_TRANSPORT is
set, which the ``app_url`` fixture does for this module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from pacsflow.settings import load_settings
from pacsflow.web import identity
from pacsflow.web.identity import NO_ROLE, OIDC_PROVIDER
from tests.identity.helpers import (
    create_projects,
    form_with,
    migrated_app,
    project_roles,
    roles_of,
    running,
)
from tests.live_server import free_port

PROVIDER_DIR = Path(__file__).with_name("oidc")
CLIENT_ID = "pacsflow"
CLIENT_SECRET = "pacsflow-test-client-secret"
STARTUP_SECONDS = 30
TIMEOUT = 10
# login -> claims; the provider releases them by scope (openid email profile groups).
ACCOUNTS: dict[str, dict[str, Any]] = {
    "olivia": {
        "preferred_username": "olivia",
        "email": "olivia@example.org",
        "email_verified": True,
        "name": "Olivia Okafor",
        "given_name": "Olivia",
        "family_name": "Okafor",
        "groups": ["pacsflow-researchers"],
    },
    "adam": {
        "preferred_username": "adam",
        "email": "adam@example.org",
        "given_name": "Adam",
        "family_name": "Arnold",
        "groups": ["pacsflow-admins", "staff"],
    },
    "una": {
        "preferred_username": "una",
        "email": "una@example.org",
        "groups": ["staff"],
    },
    "lena": {
        "preferred_username": "lena",
        "email": "lena@example.org",
        "groups": ["pacsflow-researchers", "lung-team"],
    },
}


@pytest.fixture(scope="module")
def app_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def issuer(app_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """oidc-provider on a free port, with pacsflow's /oauth-authorized/oidc as the client's
    redirect URI; stopped afterwards."""
    node = shutil.which("node")
    if node is None or not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(
            f"Node and {PROVIDER_DIR}/node_modules are needed: run scripts/install-test-tools.sh"
        )
    port = free_port()
    env = {
        **os.environ,
        "OIDC_PORT": str(port),
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_REDIRECT_URI": f"http://127.0.0.1:{app_port}/oauth-authorized/{OIDC_PROVIDER}",
        "OIDC_ACCOUNTS": json.dumps(ACCOUNTS),
    }
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    url = f"http://127.0.0.1:{port}"
    discovery = f"{url}/.well-known/openid-configuration"
    with running(
        "the OpenID provider",
        [node, "provider.mjs"],
        log,
        lambda: _answers(discovery),
        STARTUP_SECONDS,
        cwd=PROVIDER_DIR,
        env=env,
    ):
        yield url


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="module")
def app(issuer: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    settings = load_settings(
        home=tmp_path_factory.mktemp("home"),
        auth="oidc",
        oidc_issuer=issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        role_groups={"pacsflow-admins": "Admin", "pacsflow-researchers": "Researcher"},
        project_groups={"lung-team": {"lung": "Researcher"}},
    )
    with migrated_app(settings) as app:
        yield app


@pytest.fixture(scope="module")
def app_url(app: Flask, app_port: int) -> Iterator[str]:
    """The app served over HTTP, which the provider's redirects need."""
    server = make_server("127.0.0.1", app_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="pacsflow-web", daemon=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # http token endpoint, tests only
        thread.start()
        try:
            yield f"http://127.0.0.1:{app_port}"
        finally:
            server.shutdown()
            thread.join(timeout=20)


def sign_in(app_url: str, issuer: str, login: str) -> requests.Session:
    """Go through the authorization-code flow as a browser; return the signed-in session."""
    browser = requests.Session()
    page = browser.get(f"{app_url}/login/{OIDC_PROVIDER}", timeout=TIMEOUT)
    while page.url.startswith(f"{issuer}/interaction/"):
        form = form_with(page.text, page.url, "prompt")  # login, then consent
        if form.fields["prompt"] == "login":
            form.fields.update(login=login, password="any password")
        page = browser.post(form.action, data=form.fields, timeout=TIMEOUT)
    assert page.status_code == 200, page.text[:2000]
    assert page.url.startswith(app_url), page.url
    return browser


def me(browser: requests.Session, app_url: str) -> Any:
    response = browser.get(f"{app_url}/api/v1/me", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_login_page_offers_the_provider(app_url: str) -> None:
    """FAB's OAuth login page: a button whose inline script the page's CSP allows."""
    page = requests.get(f"{app_url}/login/", timeout=TIMEOUT)
    assert page.status_code == 200
    assert f'id="btn-signin-{OIDC_PROVIDER}"' in page.text
    nonces = set(re.findall(r'<script nonce="([^"]+)"', page.text))
    assert nonces, "no inline script with a nonce"
    csp = page.headers["Content-Security-Policy"]
    assert all(f"'nonce-{nonce}'" in csp for nonce in nonces), csp


def test_a_provider_user_signs_in_with_the_role_of_their_group(
    app: Flask, app_url: str, issuer: str
) -> None:
    browser = sign_in(app_url, issuer, "olivia")
    assert me(browser, app_url) == {"username": "olivia", "roles": [NO_ROLE, "Researcher"]}
    with app.app_context():
        user = app.extensions["appbuilder"].sm.find_user(username="olivia")
        assert (user.first_name, user.last_name, user.email) == (
            "Olivia",
            "Okafor",
            "olivia@example.org",
        )
    assert browser.get(f"{app_url}/dicomweb/studies", timeout=TIMEOUT).status_code in (200, 204)


def test_the_admins_group_gives_admin(app: Flask, app_url: str, issuer: str) -> None:
    browser = sign_in(app_url, issuer, "adam")
    assert me(browser, app_url) == {"username": "adam", "roles": ["Admin", NO_ROLE]}


def test_an_unknown_group_gives_no_access(app: Flask, app_url: str, issuer: str) -> None:
    """Without PACSFLOW_AUTH_DEFAULT_ROLE, a user no group maps is signed in to nothing."""
    browser = sign_in(app_url, issuer, "una")
    assert me(browser, app_url) == {"username": "una", "roles": [NO_ROLE]}
    assert browser.get(f"{app_url}/dicomweb/studies", timeout=TIMEOUT).status_code == 403
    assert roles_of(app, "una") == [NO_ROLE]


def test_the_hook_receives_the_groups_claim(
    app_url: str, issuer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(
        identity,
        "after_external_sign_in",
        lambda user, groups: calls.append((user.username, sorted(groups))),
    )
    sign_in(app_url, issuer, "adam")
    assert calls == [("adam", ["pacsflow-admins", "staff"])]


def test_a_group_mapped_to_a_project_gives_the_membership(
    app: Flask, app_url: str, issuer: str
) -> None:
    create_projects(app, "lung")
    browser = sign_in(app_url, issuer, "lena")
    listing = browser.get(f"{app_url}/api/v1/projects", timeout=TIMEOUT)
    assert listing.status_code == 200, listing.text
    assert project_roles(listing.json()) == {"lung": "Researcher"}


def test_scripts_of_a_provider_user_use_a_personal_access_token(app_url: str, issuer: str) -> None:
    """Provider users have no password pacsflow could check for HTTP Basic."""
    browser = sign_in(app_url, issuer, "olivia")
    issued = browser.post(f"{app_url}/api/v1/tokens", json={"name": "export"}, timeout=TIMEOUT)
    assert issued.status_code == 201, issued.text
    headers = {"Authorization": f"Bearer {issued.json()['token']}"}
    script = requests.get(f"{app_url}/api/v1/me", headers=headers, timeout=TIMEOUT)
    assert script.json() == {"username": "olivia", "roles": [NO_ROLE, "Researcher"]}


def test_without_a_session_the_callback_refuses(app_url: str) -> None:
    """/oauth-authorized/oidc is public, but only completes a flow this browser started."""
    response = requests.get(
        f"{app_url}/oauth-authorized/{OIDC_PROVIDER}?code=forged&state=forged",
        timeout=TIMEOUT,
        allow_redirects=False,
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login/")  # not the guard's ?next=
