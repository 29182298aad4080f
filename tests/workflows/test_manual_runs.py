"""Manual runs on a running Airflow: a user starts process_series on stored series through
pacsflow's REST API, with no Airflow account, and follows the runs to their end."""

from __future__ import annotations

import time
from io import BytesIO
from typing import Any

import pydicom
import pytest
import requests
from sqlalchemy import func, select

from pacsflow.archive.models import Series
from pacsflow.web.users import create_user
from tests.conftest import join_project, opened_app
from tests.workflows.conftest import Platform
from tests.workflows.test_dispatch import RUN_SECONDS, new_series, stow, wait_dispatched

WORKFLOWS = "/api/v1/workflows"
RUNS = f"{WORKFLOWS}/process_series/runs"
LAB = "lab"


@pytest.fixture(scope="module")
def users(platform: Platform) -> dict[str, requests.Session]:
    """A Researcher (may run workflows) and a Viewer (may only read) of project lab, signed
    in by Basic."""
    sessions = {}
    with opened_app(platform.settings) as app:
        for username, role in (("rita", "Researcher"), ("vera", "Viewer")):
            create_user(app, username, f"{username}-password", role)
            join_project(app, username, role, LAB)
            session = requests.Session()
            session.auth = (username, f"{username}-password")
            sessions[role] = session
    return sessions


def stored_series(platform: Platform, count: int) -> str:
    """A new series of ``count`` slices, stored by the admin and put in project lab."""
    series_uid, parts = new_series(count)
    stow(platform, parts)
    study = pydicom.dcmread(BytesIO(parts[0]), stop_before_pixels=True).StudyInstanceUID
    added = platform.web.session().put(
        f"{platform.web.url}/api/v1/projects/{LAB}/studies/{study}", timeout=30
    )
    assert added.status_code == 204, added.text
    wait_dispatched(platform, series_uid)  # its automatic run is not what these tests follow
    return series_uid


def wait_run_finished(
    session: requests.Session, url: str, run_id: str, platform: Platform
) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        response = session.get(f"{url}{RUNS}/{run_id}", timeout=30)
        assert response.status_code == 200, response.text
        if response.json()["state"] in ("success", "failed"):
            return dict(response.json())
        time.sleep(1)
    raise AssertionError(f"run {run_id} not finished in {RUN_SECONDS} s:\n{platform.stack.tail()}")


def run_ids(platform: Platform) -> list[str]:
    return [run["dag_run_id"] for run in platform.airflow.runs("process_series")]


def test_user_runnable_workflows_are_listed(
    platform: Platform, users: dict[str, requests.Session]
) -> None:
    response = users["Viewer"].get(f"{platform.web.url}{WORKFLOWS}", timeout=30)
    assert response.status_code == 200, response.text
    workflows = {w["dag_id"]: w for w in response.json()["workflows"]}
    assert "process_series" in workflows
    assert workflows["process_series"]["description"].startswith("Apply the routing rules")


def test_a_researcher_runs_a_workflow_on_series_and_follows_it(
    platform: Platform, users: dict[str, requests.Session]
) -> None:
    series = [stored_series(platform, 1), stored_series(platform, 2)]
    response = users["Researcher"].post(
        f"{platform.web.url}{RUNS}",
        json={"series": series, "params": {"note": "again"}},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    runs = response.json()["runs"]
    assert [run["series_instance_uid"] for run in runs] == series
    for run, instances in zip(runs, (1, 2), strict=True):
        # A Viewer may follow runs, not start them.
        finished = wait_run_finished(users["Viewer"], platform.web.url, run["run_id"], platform)
        assert finished["state"] == "success", platform.stack.tail()
        assert finished["series_instance_uid"] == run["series_instance_uid"]
        conf = platform.airflow.run("process_series", run["run_id"])
        assert conf is not None
        assert conf["conf"]["source"] == {"kind": "manual", "username": "rita"}
        assert conf["conf"]["instances"] == instances == conf["conf"]["series_instances"]
        assert conf["conf"]["params"] == {"note": "again"}


def test_nothing_starts_when_a_series_is_unknown(
    platform: Platform, users: dict[str, requests.Session]
) -> None:
    known = stored_series(platform, 1)
    response = users["Researcher"].post(
        f"{platform.web.url}{RUNS}", json={"series": [known, "1.2.3.404"]}, timeout=30
    )
    assert response.status_code == 404
    assert "series not in the archive: 1.2.3.404" in response.json()["error"]
    assert not [run_id for run_id in run_ids(platform) if run_id.startswith(f"manual__{known}")]


def test_unknown_workflows_and_runs_are_404(
    platform: Platform, users: dict[str, requests.Session]
) -> None:
    researcher = users["Researcher"]
    response = researcher.post(
        f"{platform.web.url}{WORKFLOWS}/no_such_dag/runs",
        json={"series": [stored_series(platform, 1)]},
        timeout=30,
    )
    assert response.status_code == 404
    assert "no workflow 'no_such_dag' that users may run" in response.json()["error"]
    response = researcher.get(f"{platform.web.url}{RUNS}/manual__nothing", timeout=30)
    assert response.status_code == 404
    assert "no run 'manual__nothing'" in response.json()["error"]


def test_a_viewer_cannot_start_runs(platform: Platform, users: dict[str, requests.Session]) -> None:
    known = stored_series(platform, 1)
    response = users["Viewer"].post(
        f"{platform.web.url}{RUNS}", json={"series": [known]}, timeout=30
    )
    assert response.status_code == 403
    assert not [run_id for run_id in run_ids(platform) if run_id.startswith(f"manual__{known}")]


def test_the_reindex_dag_rebuilds_the_search_index(platform: Platform) -> None:
    """Run by an operator in Airflow (not user-runnable): every stored series is found after."""
    stored_series(platform, 1)
    run_id = f"test-reindex-{time.time_ns()}"
    assert platform.airflow.trigger("reindex", run_id, {}) is True
    deadline = time.monotonic() + RUN_SECONDS
    while (run := platform.airflow.run("reindex", run_id)) is None or run["state"] not in (
        "success",
        "failed",
    ):
        assert time.monotonic() < deadline, platform.stack.tail()
        time.sleep(1)
    assert run["state"] == "success", platform.stack.tail()
    with platform.archive.engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(Series))
    answer = platform.web.session().get(
        f"{platform.web.url}/api/v1/search", params={"limit": 0}, timeout=30
    )
    assert answer.json()["total"] == stored
