"""How /viewer serves the fetched OHIF build: study links, the single-page app's routes,
cache headers, missing files, and a viewer that was never fetched."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest
import requests

from pacsflow.settings import load_settings
from pacsflow.web.viewer import DIST_ENV, viewer_dist
from tests.conftest import opened_app
from tests.live_server import ADMIN_PASSWORD, LiveServer


@pytest.fixture
def session(browser_server: LiveServer) -> requests.Session:
    return browser_server.session()


def get(
    session: requests.Session, server: LiveServer, path: str, **headers: str
) -> requests.Response:
    return session.get(server.url + path, headers=headers, allow_redirects=False, timeout=30)


def test_a_study_link_opens_ohifs_viewer_mode(
    session: requests.Session, browser_server: LiveServer
) -> None:
    response = get(session, browser_server, "/viewer?StudyInstanceUIDs=1.2.3&StudyInstanceUIDs=4.5")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(
        "/viewer/viewer?StudyInstanceUIDs=1.2.3&StudyInstanceUIDs=4.5"
    )


@pytest.mark.parametrize("path", ["/viewer", "/viewer/", "/viewer/viewer", "/viewer/segmentation"])
def test_ohif_routes_get_index_html_revalidated(
    session: requests.Session, browser_server: LiveServer, path: str
) -> None:
    response = get(session, browser_server, path)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Cache-Control"] == "no-cache"
    assert '<div id="root">' in response.text


def test_the_build_is_served_from_viewer(
    session: requests.Session, browser_server: LiveServer
) -> None:
    """fetch.sh rebased OHIF from the site root to /viewer/: every link of the page and
    webpack's path for chunks and workers."""
    page = get(session, browser_server, "/viewer/").text
    links = re.findall(r'(?:src|href|content)="(/[^"]*)"', page)
    assert links and all(link.startswith("/viewer/") for link in links), links
    assert 'window.PUBLIC_URL="/viewer/"' in page
    bundle = re.search(r'src="/viewer/(app\.bundle\.[0-9a-f]{16}\.js)"', page)
    assert bundle is not None
    script = get(session, browser_server, f"/viewer/{bundle[1]}").text
    assert '__webpack_require__.p = "/viewer/"' in script


def test_hashed_files_are_cached_and_others_revalidated(
    session: requests.Session, browser_server: LiveServer
) -> None:
    bundle = next(viewer_dist().glob("app.bundle.*.js")).name
    cached = get(session, browser_server, f"/viewer/{bundle}")
    assert cached.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert cached.headers["Content-Type"].startswith("text/javascript")
    wasm = next(viewer_dist().glob("*.wasm")).name
    assert get(session, browser_server, f"/viewer/{wasm}").headers["Content-Type"] == (
        "application/wasm"
    )
    config = get(session, browser_server, "/viewer/app-config.js")
    assert config.headers["Cache-Control"] == "no-cache"
    again = get(
        session,
        browser_server,
        "/viewer/app-config.js",
        **{"If-None-Match": config.headers["ETag"]},
    )
    assert again.status_code == 304


@pytest.mark.parametrize(
    "path",
    [
        "/viewer/0000.bundle.0123456789abcdef.js",
        "/viewer/viewer/missing.png",
        "/viewer/%2e%2e/fetch.sh",
    ],
)
def test_a_missing_file_is_404_not_the_app(
    session: requests.Session, browser_server: LiveServer, path: str
) -> None:
    assert get(session, browser_server, path).status_code == 404


def test_a_viewer_never_fetched_says_how_to_fetch_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("PACSFLOW_")]:
        monkeypatch.delenv(name)  # the developer's settings must not reach this app
    monkeypatch.setenv(DIST_ENV, str(tmp_path / "nowhere"))
    token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    with opened_app(load_settings(home=tmp_path / "home", admin_password=ADMIN_PASSWORD)) as app:
        response = app.test_client().get(
            "/viewer/viewer?StudyInstanceUIDs=1.2.3", headers={"Authorization": f"Basic {token}"}
        )
    assert response.status_code == 503
    assert "make viewer" in response.text
    assert str(tmp_path / "nowhere") in response.text
