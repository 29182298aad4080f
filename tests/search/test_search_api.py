"""Search through the web app on a real archive (SQLite and PostgreSQL): indexing what was
stored, QIDO-style GET and full POST, facets against the index tables, deletion, reindex."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from pacsflow.archive.archive import Archive
from pacsflow.archive.ingest import Source, SourceKind
from pacsflow.archive.models import Series
from pacsflow.cli import main
from pacsflow.settings import Settings
from pacsflow.web.users import create_user
from tests.conftest import SHARED_DATA, opened_app
from tests.live_server import ADMIN_PASSWORD
from tests.web.web_helpers import basic

ADMIN = basic("admin", ADMIN_PASSWORD)
CT = sorted((SHARED_DATA / "dcmqi-seg" / "ct-3slice").glob("*.dcm"))
LIVER = SHARED_DATA / "dcmqi-seg" / "liver.dcm"
TID1500 = SHARED_DATA / "tid1500-example"
FILES = [*CT, LIVER, TID1500 / "seg.dcm", TID1500 / "sr.dcm"]


def series_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)


@pytest.fixture
def app(settings: Settings, archive: Archive) -> Iterator[Flask]:
    source = Source(SourceKind.DIMSE, calling_ae="CT_SCANNER")
    for path in FILES:
        with open(path, "rb") as f:
            archive.ingest_stream(f, source)
    with opened_app(settings) as app:
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    client = app.test_client()
    for uid in dict.fromkeys(series_uid(path) for path in FILES):
        answer = client.post(f"/api/v1/search/series/{uid}", headers=ADMIN)
        assert answer.status_code == 200, answer.json
    return client


def search(client: FlaskClient, **parameters: Any) -> dict[str, Any]:
    answer = client.get("/api/v1/search", query_string=parameters, headers=ADMIN)
    assert answer.status_code == 200, answer.json
    return dict(answer.json)


def found(result: dict[str, Any]) -> set[str]:
    return {hit["SeriesInstanceUID"] for hit in result["hits"]}


def test_every_stored_series_is_found_with_facets_that_match_the_index(
    client: FlaskClient, archive: Archive
) -> None:
    result = search(client, limit=100)
    with archive.engine.connect() as conn:
        modalities = Counter(conn.scalars(select(Series.modality)))
    assert result["total"] == sum(modalities.values()) == 4
    assert {b["key"]: b["count"] for b in result["facets"]["Modality"]} == modalities
    assert {b["key"] for b in result["facets"]["SourceAE"]} == {"CT_SCANNER"}


def test_qido_style_filters(client: FlaskClient) -> None:
    ct = series_uid(CT[0])
    assert found(search(client, Modality="CT")) == {ct}
    assert found(search(client, AnnotationLabels="Liver")) == {series_uid(LIVER)}
    study_date = pydicom.dcmread(CT[0], stop_before_pixels=True).StudyDate
    year = study_date[:4]
    assert ct in found(search(client, StudyDate=f"{year}0101-{year}1231"))
    assert ct not in found(search(client, StudyDate=f"{int(year) + 1}0101-"))
    family = str(pydicom.dcmread(CT[0], stop_before_pixels=True).PatientName).split("^")[0]
    assert ct in found(search(client, PatientName=f"{family[:2].lower()}*"))


def test_radiomics_values_are_numbers_on_the_sr_and_the_series_it_measured(
    client: FlaskClient,
) -> None:
    measured = {series_uid(TID1500 / "seg.dcm"), series_uid(TID1500 / "sr.dcm")}
    assert found(search(client, **{"radiomics.Volume_ml": "30-40"})) == measured
    assert found(search(client, **{"radiomics.Volume_ml": "40-"})) == set()


def test_the_full_query_model_by_post(client: FlaskClient) -> None:
    body = {
        "query": {
            "kind": "bool",
            "must": [{"kind": "terms", "field": "Modality", "values": ["SEG", "SR"]}],
            "must_not": [{"kind": "term", "field": "AnnotationLabels", "value": "Liver"}],
        },
        "facets": {"labels": {"kind": "terms", "field": "AnnotationLabels"}},
    }
    answer = client.post("/api/v1/search", json=body, headers=ADMIN)
    assert answer.status_code == 200, answer.json
    assert found(answer.json) == {series_uid(TID1500 / "seg.dcm"), series_uid(TID1500 / "sr.dcm")}


@pytest.mark.parametrize(
    ("method", "kwargs", "message"),
    [
        ("get", {"query_string": {"NoSuchThing": "x"}}, "'NoSuchThing' is neither"),
        ("get", {"query_string": {"limit": "many"}}, "'limit' must be a whole number"),
        ("get", {"query_string": {"SeriesNumber": "one-two"}}, "is not a number"),
        ("get", {"query_string": {"facet": "StudyDate:week"}}, "year, month or day"),
        ("post", {"json": {"query": {"kind": "near"}}}, "not a search request"),
    ],
)
def test_bad_requests_name_the_problem(
    client: FlaskClient, method: str, kwargs: dict[str, Any], message: str
) -> None:
    answer = getattr(client, method)("/api/v1/search", headers=ADMIN, **kwargs)
    assert answer.status_code == 400
    assert message in answer.json["error"]


def test_who_may_do_what(app: Flask, client: FlaskClient) -> None:
    create_user(app, "vera", "viewer-pw", "Viewer")
    viewer = basic("vera", "viewer-pw")
    assert client.get("/api/v1/search").status_code == 401
    assert client.get("/api/v1/search", headers=viewer).status_code == 200
    uid = series_uid(CT[0])
    assert client.post(f"/api/v1/search/series/{uid}", headers=viewer).status_code == 403
    assert client.post("/api/v1/search/reindex", headers=viewer).status_code == 403


def test_deleting_a_series_removes_its_document(client: FlaskClient) -> None:
    ds = pydicom.dcmread(LIVER, stop_before_pixels=True)
    url = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    assert client.delete(url, headers=ADMIN).status_code == 200
    assert search(client, AnnotationLabels="Liver")["total"] == 0
    assert search(client)["total"] == 3


def test_reindex_rebuilds_from_the_archive(client: FlaskClient, settings: Settings) -> None:
    before = search(client, limit=100)
    env = {
        "PACSFLOW_HOME": str(settings.home),
        "PACSFLOW_DATABASE_URL": settings.sqlalchemy_url,
    }
    result = CliRunner().invoke(main, ["reindex"], env=env)
    assert result.exit_code == 0, result.output
    assert "indexed 4 series" in result.output
    after = search(client, limit=100)
    assert found(after) == found(before) and after["facets"] == before["facets"]
    rebuilt = client.post("/api/v1/search/reindex", headers=ADMIN)
    assert rebuilt.status_code == 200 and rebuilt.json == {"indexed": 4}
