"""The audit trail over HTTP: a record for each access kind (query, retrieve, store,
delete, search, export), refused ones too; admins read it filtered or as JSON lines."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pydicom
import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import ADMIN_PASSWORD, basic

from pacsflow.audit import AuditOutcome
from pacsflow.web.users import create_user
from tests.conftest import join_project
from tests.multipart import multipart_body

ADMIN = basic("admin", ADMIN_PASSWORD)
RITA = basic("rita", "researcher-pw")


@pytest.fixture
def app(app: Flask) -> Flask:
    """The shared app with ``rita`` (password researcher-pw), a Researcher of project lab."""
    create_user(app, "rita", "researcher-pw", "Researcher")
    join_project(app, "rita")
    return app


def stow(client: FlaskClient, data: bytes) -> None:
    body = multipart_body(data, boundary="b0undary")
    headers = {
        **RITA,
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=b0undary',
    }
    assert client.post("/dicomweb/studies", data=body, headers=headers).status_code == 200


def trail(client: FlaskClient, query: str = "") -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/audit{query}", headers=ADMIN)
    assert response.status_code == 200, response.get_data(as_text=True)
    events: list[dict[str, Any]] = response.json["events"]
    return events


def test_every_kind_of_access_is_recorded(client: FlaskClient, shared_data: Path) -> None:
    data = (shared_data / "dcmqi-seg/liver.dcm").read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    study, series = ds.StudyInstanceUID, ds.SeriesInstanceUID
    stow(client, data)
    assert (
        client.get(f"/dicomweb/studies?StudyInstanceUID={study}", headers=RITA).status_code == 200
    )
    assert client.get(f"/dicomweb/studies/{study}/metadata", headers=RITA).status_code == 200
    assert client.get("/api/v1/search?q=liver", headers=RITA).status_code == 200
    assert client.get(f"/api/v1/studies/{study}/archive", headers=RITA).status_code == 200
    assert client.get(f"/dicomweb/studies/{study}/metadata").status_code == 401
    assert (
        client.delete(f"/dicomweb/studies/{study}/series/{series}", headers=ADMIN).status_code
        == 200
    )

    events = list(reversed(trail(client)))  # oldest first
    kinds = [(e["event"], e["user"], e["outcome"]) for e in events]
    assert kinds == [
        ("store", "rita", AuditOutcome.SUCCESS),
        ("query", "rita", AuditOutcome.SUCCESS),
        ("retrieve", "rita", AuditOutcome.SUCCESS),
        ("search", "rita", AuditOutcome.SUCCESS),
        ("export", "rita", AuditOutcome.SUCCESS),
        ("retrieve", "", AuditOutcome.MINOR_FAILURE),  # refused: no login
        ("delete", "admin", AuditOutcome.SUCCESS),
    ]
    store, query, retrieve, search, export, refused, delete = events
    assert store["studies"] == [study] and store["event_code"] == "110104"
    assert query["event_code"] == "110112" and f"StudyInstanceUID={study}" in query["detail"]
    assert retrieve["studies"] == [study] and retrieve["action"] == "R"
    assert search["detail"] == "GET /api/v1/search?q=liver"
    assert export["event_code"] == "110106" and export["studies"] == [study]
    assert refused["status"] == 401 and refused["studies"] == [study]
    assert (delete["event_code"], delete["action"], delete["studies"]) == ("110105", "D", [study])
    assert {e["source"] for e in events} == {"127.0.0.1"}
    assert {e["interface"] for e in events} == {"dicomweb", "rest"}


def test_admins_filter_and_export_the_trail(client: FlaskClient, shared_data: Path) -> None:
    data = (shared_data / "dcmqi-seg/liver.dcm").read_bytes()
    study = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).StudyInstanceUID
    stow(client, data)
    client.get("/dicomweb/studies", headers=ADMIN)
    assert [e["event"] for e in trail(client, "?user=rita")] == ["store"]
    assert [e["user"] for e in trail(client, "?event=query")] == ["admin"]
    assert [e["event"] for e in trail(client, f"?study={study}")] == ["store"]
    assert trail(client, "?since=2999-01-01") == []
    assert len(trail(client, "?until=2999-01-01T00:00:00%2B00:00&limit=1")) == 1
    exported = client.get("/api/v1/audit?format=jsonl", headers=ADMIN)
    assert exported.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in exported.get_data(as_text=True).splitlines()]
    assert [line["event"] for line in lines] == ["query", "store"]
    assert set(lines[0]) >= {"at", "user", "source", "event", "event_code", "outcome", "studies"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?event=peek", "'event' must be one of"),
        ("?study=not-a-uid", "study"),
        ("?since=yesterday", "'since' must be an ISO date"),
        ("?limit=0", "'limit' must be from 1"),
        ("?limit=many", "'limit' must be a whole number"),
    ],
)
def test_bad_filters_are_named(client: FlaskClient, query: str, message: str) -> None:
    response = client.get(f"/api/v1/audit{query}", headers=ADMIN)
    assert response.status_code == 400
    assert message in response.json["error"]


def test_only_admins_read_the_trail(client: FlaskClient) -> None:
    assert client.get("/api/v1/audit", headers=RITA).status_code == 403
    assert client.get("/api/v1/audit").status_code == 401
    assert client.get("/auditeventview/list/", headers=ADMIN).status_code == 200
    assert client.get("/auditeventview/list/", headers=RITA).status_code in (302, 403)
