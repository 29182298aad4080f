"""Parameter sets REST: list, upload, replace, read and delete, and every refusal."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import ADMIN_PASSWORD, basic
from werkzeug.test import TestResponse

from pacsflow.operators.radiomics.parameters import PARAMS_DIR, parameters_digest
from pacsflow.web.api.radiomics_parameters import FOLDER, MAX_PARAMETER_FILE_BYTES
from pacsflow.web.users import create_user

SETS = "/api/v1/radiomics/parameters"
ADMIN = basic("admin", ADMIN_PASSWORD)
VIEWER = basic("vera", "viewer-pw")
MINE = """\
# binned finer than the default
setting:
  binWidth: 10
featureClass:
  firstorder:
"""


@pytest.fixture
def viewer(app: Flask) -> dict[str, str]:
    create_user(app, "vera", "viewer-pw", "Viewer")
    return VIEWER


def put(client: FlaskClient, name: str, text: str | bytes) -> tuple[int, dict[str, Any]]:
    response = client.put(f"{SETS}/{name}", data=text, headers=ADMIN)
    return response.status_code, body(response)


def body(response: TestResponse) -> dict[str, Any]:
    """The JSON object answered (mypy: Flask's ``response.json`` may be None)."""
    answer = response.get_json(silent=True)
    return answer if isinstance(answer, dict) else {}


def error(response: TestResponse) -> str:
    return str(body(response)["error"])


def names(client: FlaskClient, headers: dict[str, str] = ADMIN) -> list[tuple[str, bool]]:
    response = client.get(SETS, headers=headers)
    assert response.status_code == 200
    return [(s["name"], s["shipped"]) for s in body(response)["parameter_sets"]]


def test_shipped_sets_are_listed_and_readable(client: FlaskClient) -> None:
    assert names(client) == [("default", True), ("ibsi", True)]
    response = client.get(f"{SETS}/ibsi", headers=ADMIN)
    assert response.status_code == 200
    assert response.mimetype == "application/yaml"
    assert response.data == (PARAMS_DIR / "ibsi.yaml").read_bytes()


def test_upload_replace_read_and_delete(client: FlaskClient, tmp_path: Path) -> None:
    assert put(client, "mine", MINE) == (201, {"name": "mine", "shipped": False})
    assert put(client, "a-set.v2", MINE) == (201, {"name": "a-set.v2", "shipped": False})
    assert names(client) == [
        ("default", True),
        ("ibsi", True),
        ("a-set.v2", False),
        ("mine", False),
    ]
    stored = tmp_path / FOLDER / "mine.yaml"
    assert stored.read_text() == MINE
    assert [p.name for p in stored.parent.iterdir()] == sorted(["a-set.v2.yaml", "mine.yaml"])

    replaced = MINE.replace("binWidth: 10", "binWidth: 5")
    assert put(client, "mine", replaced)[0] == 200
    response = client.get(f"{SETS}/mine", headers=ADMIN)
    assert response.status_code == 200
    assert response.mimetype == "application/yaml"
    assert response.text == replaced
    assert parameters_digest(stored) != parameters_digest(tmp_path / FOLDER / "a-set.v2.yaml")

    assert client.delete(f"{SETS}/mine", headers=ADMIN).status_code == 204
    assert names(client) == [("default", True), ("ibsi", True), ("a-set.v2", False)]
    assert not stored.exists()


def test_unknown_set_is_404_with_what_to_do(client: FlaskClient) -> None:
    for response in (
        client.get(f"{SETS}/nothing", headers=ADMIN),
        client.delete(f"{SETS}/nothing", headers=ADMIN),
    ):
        assert response.status_code == 404
        assert error(response) == (
            "no parameter set 'nothing': shipped are default, ibsi; "
            "upload others with PUT /api/v1/radiomics/parameters/nothing"
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("setting: [unclosed\n", "expected ',' or ']'"),
        ("setting:\n  binWidthh: 25\n", "Key 'binWidthh' was not defined. Path: '/setting'"),
        ("setting:\n  binWidth: abc\n", "Value 'abc' is not of type 'float'"),
        ("featureClass:\n  nosuch:\n", "Feature Class nosuch is not recognized"),
        ("imageType:\n  Fancy: {}\n", "Image Type Fancy is not recognized"),
        ("just text\n", "is not a dict"),
    ],
)
def test_invalid_files_are_refused_with_pyradiomics_message(
    client: FlaskClient, tmp_path: Path, text: str, message: str
) -> None:
    status, body = put(client, "broken", text)
    assert status == 400
    assert body["error"].startswith("parameter set 'broken': ")
    assert message in body["error"]
    assert str(tmp_path) not in body["error"]  # the server's folders are not shown
    assert names(client) == [("default", True), ("ibsi", True)]
    assert list((tmp_path / FOLDER).iterdir()) == []  # no temporary file left behind


def test_invalid_replacement_keeps_the_stored_set(client: FlaskClient) -> None:
    put(client, "mine", MINE)
    assert put(client, "mine", "setting:\n  binWidth: abc\n")[0] == 400
    assert client.get(f"{SETS}/mine", headers=ADMIN).text == MINE


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "send the parameter file's YAML as the request body"),
        (b"  \n", "send the parameter file's YAML as the request body"),
        (b"setting:\n  binWidth: 25 # \xff\n", "a parameter file must be UTF-8 text"),
    ],
)
def test_empty_or_binary_bodies_are_refused(client: FlaskClient, body: bytes, message: str) -> None:
    assert put(client, "mine", body) == (400, {"error": message})


@pytest.mark.parametrize("name", ["default", "ibsi", "IBSI", "Default"])
def test_shipped_names_cannot_be_replaced_or_deleted(client: FlaskClient, name: str) -> None:
    for response in (
        client.put(f"{SETS}/{name}", data=MINE, headers=ADMIN),
        client.delete(f"{SETS}/{name}", headers=ADMIN),
    ):
        assert response.status_code == 409
        assert f"parameter set {name!r} is shipped with pacsflow" in error(response)
    assert client.get(f"{SETS}/default", headers=ADMIN).status_code == 200


@pytest.mark.parametrize("name", [".hidden", "-dash", "_under", "with space", "ü", "x" * 65])
def test_bad_names_are_refused(client: FlaskClient, name: str) -> None:
    for response in (
        client.put(f"{SETS}/{name}", data=MINE, headers=ADMIN),
        client.get(f"{SETS}/{name}", headers=ADMIN),
        client.delete(f"{SETS}/{name}", headers=ADMIN),
    ):
        assert response.status_code == 400
        assert f"parameter set name {name!r} is not allowed" in error(response)


def test_longest_name_is_accepted(client: FlaskClient) -> None:
    assert put(client, "x" * 64, MINE)[0] == 201


def test_names_with_a_slash_do_not_reach_the_folder(client: FlaskClient) -> None:
    response = client.put(f"{SETS}/../secret", data=MINE, headers=ADMIN)
    assert response.status_code in (404, 405)


def test_too_big_files_are_refused(client: FlaskClient, tmp_path: Path) -> None:
    padding = "#" * (MAX_PARAMETER_FILE_BYTES - len(MINE) - 1) + "\n"
    assert put(client, "biggest", padding + MINE)[0] == 201
    for text in (padding + "#" + MINE, padding * 2):  # one byte over, and far over the limit
        status, body = put(client, "big", text)
        assert status == 413
        limit = MAX_PARAMETER_FILE_BYTES
        assert body["error"] == f"a parameter file may have at most {limit} bytes"
    assert not (tmp_path / FOLDER / "big.yaml").exists()


def test_too_big_upload_without_length_is_refused(client: FlaskClient) -> None:
    """A chunked body (no Content-Length, as gunicorn passes it on) is limited all the same."""
    padding = b"#" * (MAX_PARAMETER_FILE_BYTES - len(MINE) - 1) + b"\n"

    def put_chunked(name: str, data: bytes) -> int:
        response = client.put(
            f"{SETS}/{name}",
            input_stream=io.BytesIO(data),
            headers={**ADMIN, "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        return response.status_code

    assert put_chunked("big", padding + b"#" + MINE.encode()) == 413
    assert put_chunked("biggest", padding + MINE.encode()) == 201


def test_a_viewer_may_read_but_not_change(client: FlaskClient, viewer: dict[str, str]) -> None:
    put(client, "mine", MINE)
    assert names(client, viewer) == [("default", True), ("ibsi", True), ("mine", False)]
    assert client.get(f"{SETS}/mine", headers=viewer).text == MINE
    for response in (
        client.put(f"{SETS}/other", data=MINE, headers=viewer),
        client.delete(f"{SETS}/mine", headers=viewer),
    ):
        assert response.status_code == 403
        assert "can_write" in error(response)
    assert names(client) == [("default", True), ("ibsi", True), ("mine", False)]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", SETS), ("GET", f"{SETS}/default"), ("PUT", f"{SETS}/mine"), ("DELETE", f"{SETS}/x")],
)
def test_every_route_needs_a_user(client: FlaskClient, method: str, path: str) -> None:
    response = client.open(path, method=method, data=MINE)
    assert response.status_code == 401
