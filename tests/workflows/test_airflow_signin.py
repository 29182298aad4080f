"""People sign in to Airflow's UI with their pacsflow account; the plugin links to pacsflow.

Against the real platform: pacsflow's web server holds the users, Airflow's API server runs
pacsflow's auth manager and loads the plugin from ``plugins/``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from io import BytesIO
from typing import Any

import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from pacsflow.web.app import create_app
from pacsflow.web.security import security_manager
from pacsflow.web.users import create_user
from tests.conftest import SHARED_DATA
from tests.multipart import multipart_body
from tests.workflows.conftest import Platform

CT_SLICE = sorted((SHARED_DATA / "dcmqi-seg" / "ct-3slice").glob("*"))[0]
OPERATOR = ("olga", "operator-pw")
VIEWER = ("vic", "viewer-pw")
ROLELESS = ("nora", "no-role-pw")
RUN_SECONDS = 120
BOUNDARY = "signin-test"


@pytest.fixture(scope="module")
def people(platform: Platform) -> None:
    """An Operator, a Viewer and a user whose roles were all taken away, in pacsflow."""
    app = create_app(platform.settings)
    create_user(app, *OPERATOR, "Operator")
    create_user(app, *VIEWER, "Viewer")
    create_user(app, *ROLELESS, "Viewer")
    with app.app_context():
        sm = security_manager(app)
        user = sm.find_user(username=ROLELESS[0])
        user.roles = []
        sm.update_user(user)


def sign_in(
    platform: Platform, username: str, password: str
) -> tuple[requests.Session, requests.Response]:
    """The browser's way: Airflow sends it to the login page, it posts the form."""
    session = requests.Session()
    home = f"{platform.settings.airflow_url}/dags"
    page = session.get(
        f"{platform.settings.airflow_url}/api/v2/auth/login", params={"next": home}, timeout=30
    )
    assert page.status_code == 200 and "<form" in page.text, page.text[:500]
    assert "/auth/login" in page.url and f'value="{home}"' in page.text
    answer = session.post(
        f"{platform.settings.airflow_url}/auth/login",
        data={"username": username, "password": password, "next": home},
        allow_redirects=False,
        timeout=30,
    )
    return session, answer


def claims(token: str) -> dict[str, Any]:
    """What Airflow put in its JWT (the signature is Airflow's business)."""
    payload = token.split(".")[1]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    result: dict[str, Any] = json.loads(decoded)
    return result


def stow_one_slice(platform: Platform) -> tuple[str, str]:
    """A CT slice of a new study and series; their UIDs."""
    ds = pydicom.dcmread(CT_SLICE)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    response = platform.web.session().post(
        f"{platform.web.dicomweb}/studies",
        data=multipart_body(buffer.getvalue(), boundary=BOUNDARY),
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text[:500]
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)


def wait_finished(session: requests.Session, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        run: dict[str, Any] = session.get(url, timeout=30).json()
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(1)
    raise AssertionError(f"{url} not finished in {RUN_SECONDS} s")


def test_an_operator_signs_in_with_the_pacsflow_account_and_runs_dags(
    platform: Platform, people: None
) -> None:
    airflow = platform.settings.airflow_url
    session, answer = sign_in(platform, *OPERATOR)
    assert answer.status_code == 303, answer.text[:500]
    assert answer.headers["Location"] == f"{airflow}/dags"
    token = session.cookies["_token"]
    assert claims(token)["sub"] == OPERATOR[0] and claims(token)["role"] == "OP"
    assert session.get(answer.headers["Location"], timeout=30).status_code == 200  # the UI

    dags = session.get(f"{airflow}/api/v2/dags", timeout=30)
    assert dags.status_code == 200
    assert "process_series" in {dag["dag_id"] for dag in dags.json()["dags"]}

    study, series = stow_one_slice(platform)
    run_id = f"signin__{uuid.uuid4().hex}"
    conf = {"study_instance_uid": study, "series_instance_uid": series, "modality": "CT"}
    runs = f"{airflow}/api/v2/dags/process_series/dagRuns"
    body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
    triggered = session.post(runs, json=body, timeout=30)
    assert triggered.status_code == 200, triggered.text[:500]
    assert wait_finished(session, f"{runs}/{run_id}")["state"] == "success", platform.stack.tail()

    # The plugin's links on a task of that run open its study in the dashboard and the viewer.
    links = session.get(f"{runs}/{run_id}/taskInstances/route/links", timeout=30)
    assert links.status_code == 200, links.text[:500]
    public = platform.settings.public_url
    assert links.json()["extra_links"] == {
        "Open study page": f"{public}/studies/{study}",
        "Open in viewer": f"{public}/viewer?StudyInstanceUIDs={study}",
    }


def test_a_viewer_signs_in_and_reads_but_cannot_trigger(platform: Platform, people: None) -> None:
    airflow = platform.settings.airflow_url
    session, answer = sign_in(platform, *VIEWER)
    assert answer.status_code == 303, answer.text[:500]
    assert claims(session.cookies["_token"])["role"] == "VIEWER"
    assert session.get(f"{airflow}/api/v2/dags/process_series", timeout=30).status_code == 200
    body: dict[str, Any] = {"logical_date": None, "conf": {}}
    triggered = session.post(f"{airflow}/api/v2/dags/process_series/dagRuns", json=body, timeout=30)
    assert triggered.status_code == 403, triggered.text[:500]


def test_signing_out_ends_the_session(platform: Platform, people: None) -> None:
    airflow = platform.settings.airflow_url
    session, _ = sign_in(platform, *VIEWER)
    token = session.cookies["_token"]
    back = session.get(f"{airflow}/api/v2/auth/logout", timeout=30)
    assert back.status_code == 200 and "/auth/login" in back.url
    revoked = requests.get(
        f"{airflow}/api/v2/dags", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert revoked.status_code in (401, 403)


@pytest.mark.parametrize(
    ("credentials", "status", "message"),
    [
        ((OPERATOR[0], "not-the-password"), 401, "wrong username or password"),
        (("nobody-here", "whatever-pw"), 401, "wrong username or password"),
        (ROLELESS, 403, f"pacsflow user &#x27;{ROLELESS[0]}&#x27; has no role"),
    ],
)
def test_a_refused_sign_in_says_why_on_the_form(
    platform: Platform, people: None, credentials: tuple[str, str], status: int, message: str
) -> None:
    session, answer = sign_in(platform, *credentials)
    assert answer.status_code == status
    assert message in answer.text and "<form" in answer.text
    assert "_token" not in session.cookies


def test_api_clients_get_a_token_for_a_pacsflow_account(platform: Platform, people: None) -> None:
    token_url = f"{platform.settings.airflow_url}/auth/token"
    granted = requests.post(
        token_url, json={"username": VIEWER[0], "password": VIEWER[1]}, timeout=30
    )
    assert granted.status_code == 201
    assert claims(granted.json()["access_token"])["role"] == "VIEWER"
    refused = requests.post(token_url, json={"username": VIEWER[0], "password": "no"}, timeout=30)
    assert refused.status_code == 401
    assert "use your pacsflow account" in refused.json()["detail"]
    roleless = requests.post(
        token_url, json={"username": ROLELESS[0], "password": ROLELESS[1]}, timeout=30
    )
    assert roleless.status_code == 403 and "ask a pacsflow admin" in roleless.json()["detail"]


def test_a_sign_in_never_sends_the_browser_elsewhere(platform: Platform, people: None) -> None:
    answer = requests.post(
        f"{platform.settings.airflow_url}/auth/login",
        data={"username": VIEWER[0], "password": VIEWER[1], "next": "https://example.org/"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith(f"http://{platform.settings.bind}:")


def test_the_plugin_links_airflow_to_pacsflow(platform: Platform, people: None) -> None:
    session, _ = sign_in(platform, *VIEWER)
    plugins = session.get(f"{platform.settings.airflow_url}/api/v2/plugins", timeout=30)
    assert plugins.status_code == 200, plugins.text[:500]
    (plugin,) = [p for p in plugins.json()["plugins"] if p["name"] == "pacsflow"]
    web = platform.settings.public_url
    assert {view["href"] for view in plugin["external_views"]} == {f"{web}/", f"{web}/viewer"}
    links = plugin["global_operator_extra_links"]
    assert len(links) == 2
    assert any("StudyLink" in link for link in links) and any(
        "ViewerLink" in link for link in links
    )
