"""STOW-RS: statuses, the response module, and bad input refused with nothing kept."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydicom.data import get_testdata_file

from pacsflow.settings import Settings
from tests.conftest import ADMIN_PASSWORD, opened_app
from tests.multipart import multipart_body

BOUNDARY = "pacsflow-test-boundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
CT = Path(get_testdata_file("CT_small.dcm"))
MR = Path(get_testdata_file("MR_small.dcm"))
AUTH = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    from pacsflow.archive.archive import Archive

    Archive(settings).migrate()
    with opened_app(settings) as app:
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def multipart(*parts: bytes, part_type: str = "application/dicom") -> bytes:
    return multipart_body(*parts, boundary=BOUNDARY, part_type=part_type)


def stow(client: FlaskClient, body: bytes, path: str = "/dicomweb/studies", **headers: str):  # type: ignore[no-untyped-def]
    return client.post(path, data=body, headers={**AUTH, "Content-Type": CONTENT_TYPE, **headers})


def encoded(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def stored_files(settings: Settings) -> list[Path]:
    return sorted(settings.storage_root.glob("*/*/*.dcm"))


def failure_reasons(response) -> list[int]:  # type: ignore[no-untyped-def]
    items = response.get_json().get("00081198", {}).get("Value", [])
    return [item["00081197"]["Value"][0] for item in items]


def test_all_stored_is_200_with_referenced_sop_sequence(client: FlaskClient) -> None:
    response = stow(client, multipart(CT.read_bytes(), MR.read_bytes()))
    assert response.status_code == 200
    assert response.mimetype == "application/dicom+json"
    body = response.get_json()
    referenced = body["00081199"]["Value"]
    assert {item["00081155"]["Value"][0] for item in referenced} == {
        pydicom.dcmread(CT).SOPInstanceUID,
        pydicom.dcmread(MR).SOPInstanceUID,
    }
    assert all(item["00081190"]["Value"][0].startswith("http://") for item in referenced)
    assert "00081198" not in body


def test_partial_failure_is_202(client: FlaskClient, settings: Settings) -> None:
    response = stow(client, multipart(CT.read_bytes(), b"not dicom at all"))
    assert response.status_code == 202
    assert failure_reasons(response) == [0xC000]
    assert "not a" in response.headers["Warning"]
    assert len(stored_files(settings)) == 1


def test_study_mismatch_is_409(client: FlaskClient, settings: Settings) -> None:
    response = stow(client, multipart(CT.read_bytes()), path="/dicomweb/studies/1.2.3.4")
    assert response.status_code == 409
    assert failure_reasons(response) == [0xA900]
    assert "differs from the study" in response.headers["Warning"]
    assert stored_files(settings) == []


def bad_bodies() -> dict[str, tuple[bytes, int]]:
    missing = pydicom.dcmread(CT)
    del missing.SeriesInstanceUID
    traversal = pydicom.dcmread(CT)
    traversal.SOPInstanceUID = "1.2.3/../../../etc/passwd"
    return {
        "non-DICOM body": (b"hello, this is plain text", 0xC000),
        "truncated file": (CT.read_bytes()[:-500], 0xC000),
        "missing UID": (encoded(missing), 0xA900),
        "invalid UID with ../": (encoded(traversal), 0xA900),
        "empty part": (b"", 0xC000),
        "only a preamble": (b"\0" * 128 + b"DICM", 0xC000),
    }


@pytest.mark.parametrize("case", list(bad_bodies()))
def test_bad_input_is_refused_and_nothing_kept(
    client: FlaskClient, settings: Settings, case: str
) -> None:
    body, reason = bad_bodies()[case]
    response = stow(client, multipart(body))
    assert response.status_code in (400, 409), response.get_data(as_text=True)
    assert failure_reasons(response) == [reason]
    assert response.headers["Warning"].startswith("299 pacsflow")
    assert stored_files(settings) == []
    assert list(settings.storage_root.joinpath(".staging").glob("*/*")) == []  # no staged file
    assert stow(client, multipart(CT.read_bytes())).status_code == 200  # still serving


def test_duplicate_with_different_bytes_is_refused(client: FlaskClient, settings: Settings) -> None:
    assert stow(client, multipart(CT.read_bytes())).status_code == 200
    assert stow(client, multipart(CT.read_bytes())).status_code == 200  # same bytes: success
    changed = pydicom.dcmread(CT)
    changed.PatientName = "Other^Patient"
    response = stow(client, multipart(encoded(changed)))
    assert response.status_code == 409
    assert failure_reasons(response) == [0x0111]
    assert "already stored with different content" in response.headers["Warning"]
    assert stored_files(settings)[0].read_bytes() == CT.read_bytes()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/dicom",
        "application/json",
        f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}',
        f"multipart/form-data; boundary={BOUNDARY}",
    ],
)
def test_wrong_content_type_is_415(client: FlaskClient, content_type: str) -> None:
    response = stow(client, multipart(CT.read_bytes()), **{"Content-Type": content_type})
    assert response.status_code == 415
    assert "not supported" in response.get_json()["error"]


def test_part_with_wrong_type_fails_alone(client: FlaskClient) -> None:
    body = multipart(CT.read_bytes())[: -len(f"--{BOUNDARY}--\r\n")] + multipart(
        b"{}", part_type="application/json"
    )
    response = stow(client, body)
    assert response.status_code == 202
    assert failure_reasons(response) == [0xC000]
    assert "application/json" in response.headers["Warning"]


def test_cut_body_keeps_only_complete_parts(client: FlaskClient, settings: Settings) -> None:
    whole = multipart(CT.read_bytes(), MR.read_bytes())
    response = stow(client, whole[: len(whole) - 3000])
    assert response.status_code == 202
    assert len(stored_files(settings)) == 1
    assert list(settings.storage_root.joinpath(".staging").glob("*/*")) == []  # no staged file


def test_empty_or_boundaryless_body_is_400(client: FlaskClient) -> None:
    assert stow(client, b"").status_code == 400
    response = stow(client, b"x", **{"Content-Type": 'multipart/related; type="application/dicom"'})
    assert response.status_code == 400 and "boundary" in response.get_json()["error"]


def test_too_large_part_is_out_of_resources(client: FlaskClient, settings: Settings) -> None:
    settings.max_object_size = 10_000  # type: ignore[assignment]
    response = stow(client, multipart(CT.read_bytes()))
    assert response.status_code == 409
    assert failure_reasons(response) == [0xA700]
    assert stored_files(settings) == []
