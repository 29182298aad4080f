"""The dashboard's pages and the API calls made for them: zip downloads, overview numbers,
the runs of a study, and the DICOM AE admin pages (what the browser tests do not cover)."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import ADMIN_PASSWORD, basic

from pacsflow.archive.archive import Archive
from pacsflow.archive.ingest import Source, SourceKind
from pacsflow.archive.models import RemoteAE
from pacsflow.settings import load_settings
from pacsflow.web.app import create_app
from pacsflow.web.dicomweb.common import ARCHIVE_EXTENSION
from pacsflow.web.users import create_user
from tests.live_server import free_port

ADMIN = basic("admin", ADMIN_PASSWORD)


@pytest.fixture
def stored(shared_data: Path) -> dict[str, bytes]:
    """The dcmqi CT (3 slices) and its SEG, by SOPInstanceUID, as the files hold them."""
    folder = shared_data / "dcmqi-seg"
    files = [*sorted((folder / "ct-3slice").glob("*.dcm")), folder / "liver.dcm"]
    return {
        pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: f.read_bytes() for f in files
    }


@pytest.fixture
def app(tmp_path: Path, stored: dict[str, bytes]) -> Iterator[Flask]:
    settings = load_settings(home=tmp_path, admin_password=ADMIN_PASSWORD, airflow_port=free_port())
    app = create_app(settings)
    archive: Archive = app.extensions[ARCHIVE_EXTENSION]
    archive.migrate()
    for data in stored.values():
        archive.ingest_stream(io.BytesIO(data), Source(SourceKind.IMPORT))
    client = app.test_client()
    assert client.post("/api/v1/search/reindex", headers=ADMIN).json == {"indexed": 2}
    yield app
    archive.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def study_of(stored: dict[str, bytes]) -> tuple[str, dict[str, str]]:
    """The study UID, and the series UID of each instance."""
    datasets = [pydicom.dcmread(io.BytesIO(data)) for data in stored.values()]
    return datasets[0].StudyInstanceUID, {d.SOPInstanceUID: d.SeriesInstanceUID for d in datasets}


def test_a_study_downloads_as_a_zip_of_its_files_byte_for_byte(
    client: FlaskClient, stored: dict[str, bytes]
) -> None:
    study, series_of = study_of(stored)
    response = client.get(f"/api/v1/studies/{study}/archive", headers=ADMIN)
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert f'filename="{study}.zip"' in response.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(response.get_data())) as zipped:
        assert zipped.testzip() is None
        contents = {name: zipped.read(name) for name in zipped.namelist()}
    assert contents == {f"{series_of[uid]}/{uid}.dcm": data for uid, data in stored.items()}


def test_a_series_downloads_alone(client: FlaskClient, stored: dict[str, bytes]) -> None:
    study, series_of = study_of(stored)
    seg = next(uid for uid, data in stored.items() if b"Segmentation" in data[:4000])
    series = series_of[seg]
    response = client.get(f"/api/v1/studies/{study}/series/{series}/archive", headers=ADMIN)
    with zipfile.ZipFile(io.BytesIO(response.get_data())) as zipped:
        assert zipped.namelist() == [f"{series}/{seg}.dcm"]
        assert zipped.read(f"{series}/{seg}.dcm") == stored[seg]


def test_downloading_what_is_not_stored_is_a_404_naming_it(client: FlaskClient) -> None:
    response = client.get("/api/v1/studies/1.2.3/archive", headers=ADMIN)
    assert response.status_code == 404
    assert response.json == {"error": "no study 1.2.3 in the archive"}
    response = client.get("/api/v1/studies/1.2.3/series/4.5/archive", headers=ADMIN)
    assert response.json == {"error": "no series 4.5 in the archive"}


def test_overview_counts_studies_arrivals_and_labels(client: FlaskClient) -> None:
    overview = client.get("/api/v1/overview", headers=ADMIN).json
    assert overview["studies_per_modality"] == [
        {"key": "CT", "count": 1},
        {"key": "SEG", "count": 1},
    ]
    assert overview["segmentation_labels"] == [{"key": "Liver", "count": 1}]
    days = overview["series_arrivals_per_day"]
    assert len(days) == 30
    assert days[-1] == {"key": datetime.now(UTC).date().isoformat(), "count": 2}
    assert sum(day["count"] for day in days) == 2


def test_runs_of_a_study_need_it_stored_and_airflow_up(
    client: FlaskClient, stored: dict[str, bytes]
) -> None:
    response = client.get("/api/v1/studies/1.2.3/runs", headers=ADMIN)
    assert response.status_code == 404
    assert response.json == {"error": "no study 1.2.3 in the archive"}
    study, _ = study_of(stored)
    response = client.get(f"/api/v1/studies/{study}/runs", headers=ADMIN)
    assert response.status_code == 503  # nothing listens on the Airflow port
    assert "until it is back" in response.json["error"]


@pytest.mark.parametrize("path", ["/", "/studies/1.2.3", "/overview", "/upload"])
def test_pages_send_browsers_to_the_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert "/login/" in response.headers["Location"]


def test_pages_render_for_a_signed_in_user(client: FlaskClient, stored: dict[str, bytes]) -> None:
    study, _ = study_of(stored)
    pages = {
        "/": 'id="search-form"',
        f"/studies/{study}": f'data-study="{study}"',
        "/overview": 'id="arrivals"',
        "/upload": 'id="files"',
    }
    for path, marker in pages.items():
        response = client.get(path, headers=ADMIN)
        assert response.status_code == 200, path
        assert marker in response.get_data(as_text=True), path
    assert client.get("/studies/not-a-uid", headers=ADMIN).status_code == 404


def test_dashboard_scripts_and_styles_are_served_from_the_installation(
    client: FlaskClient,
) -> None:
    page = client.get("/", headers=ADMIN).get_data(as_text=True)
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    for asset in ("search.js", "study.js", "runs.js", "api.js", "dashboard.css"):
        assert client.get(f"/static/dashboard/{asset}").status_code == 200, asset


def test_dicom_aes_are_administered_by_admins_only(app: Flask, client: FlaskClient) -> None:
    create_user(app, "rita", "researcher-pw", "Researcher")
    denied = client.get("/remoteaeview/list/", headers=basic("rita", "researcher-pw"))
    assert denied.status_code in (302, 403)
    assert client.get("/remoteaeview/list/", headers=ADMIN).status_code == 200
    form = client.get("/remoteaeview/add", headers=ADMIN).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form)
    assert token is not None, "the form carries a CSRF token"
    refused = client.post(
        "/remoteaeview/add",
        data={"ae_title": "FAR\\TOO\\LONG_AE_TITLE", "csrf_token": token[1]},
        headers=ADMIN,
    )
    assert "16 printable ASCII characters" in refused.get_data(as_text=True)
    added = client.post(
        "/remoteaeview/add",
        data={
            "ae_title": "CT_SCANNER",
            "host": "10.0.0.7",
            "port": "104",
            "may_connect": "y",
            "description": "CT in room 2",
            "csrf_token": token[1],
        },
        headers=ADMIN,
    )
    assert added.status_code == 302
    unticked = {"ae_title": "STORESCP", "host": "10.0.0.8", "port": "11112", "description": "-"}
    destination = client.post(
        "/remoteaeview/add", data={**unticked, "csrf_token": token[1]}, headers=ADMIN
    )
    assert destination.status_code == 302  # unticked boxes are a choice, not a missing field
    archive: Archive = app.extensions[ARCHIVE_EXTENSION]
    with archive.engine.connect() as conn:
        rows = conn.execute(RemoteAE.__table__.select()).all()
    assert [(r.ae_title, r.host, r.port, r.may_connect, r.all_projects) for r in rows] == [
        ("CT_SCANNER", "10.0.0.7", 104, True, False),
        ("STORESCP", "10.0.0.8", 11112, False, False),
    ]
