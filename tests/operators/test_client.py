"""PacsflowClient against a running pacsflow, and against a stub that fails on purpose."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pacsflow.dicom.uid import InvalidUIDError
from pacsflow.operators import client as client_module
from pacsflow.operators.client import PacsflowClient, PacsflowError
from tests.live_server import ADMIN_PASSWORD, LiveServer
from tests.operators.helpers import CT_SERIES, stow, uids_of

UNKNOWN = "1.2.3.4.5.6.7.8.9"


@pytest.fixture
def into(tmp_path: Path) -> Path:
    """A folder of its own for fetched files (tmp_path also holds the server's home)."""
    folder = tmp_path / "fetched"
    folder.mkdir()
    return folder


@pytest.fixture
def ct_series(live_server: LiveServer) -> tuple[str, str]:
    stow(live_server, CT_SERIES)
    study, series, _ = uids_of(CT_SERIES[0])
    return study, series


def test_series_listed_page_by_page_and_read(
    archive_client: PacsflowClient,
    ct_series: tuple[str, str],
    into: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "QIDO_PAGE", 2)
    uids = archive_client.series_instances(*ct_series)
    assert uids == [uids_of(path)[2] for path in CT_SERIES]  # the order stored
    metadata = archive_client.series_metadata(*ct_series)
    assert sorted(m["00080018"]["Value"][0] for m in metadata) == sorted(uids)
    for uid, original in zip(uids, CT_SERIES, strict=True):
        path = archive_client.retrieve_instance_file(*ct_series, uid, into)
        assert path == into / f"{uid}.dcm"
        assert path.read_bytes() == original.read_bytes()
    assert sorted(p.name for p in into.iterdir()) == sorted(f"{uid}.dcm" for uid in uids)


def test_unknown_series_lists_nothing_and_its_metadata_is_an_error(
    archive_client: PacsflowClient, ct_series: tuple[str, str], into: Path
) -> None:
    study, _ = ct_series
    assert archive_client.series_instances(study, UNKNOWN) == []
    with pytest.raises(PacsflowError, match=f"GET .*/series/{UNKNOWN}/metadata .*HTTP 404"):
        archive_client.series_metadata(study, UNKNOWN)
    with pytest.raises(PacsflowError, match="HTTP 404: nothing is stored") as raised:
        archive_client.retrieve_instance_file(study, UNKNOWN, UNKNOWN, into)
    assert raised.value.status == 404
    assert list(into.iterdir()) == [], "no partial file is left behind"


def test_wrong_password_is_a_clear_401(live_server: LiveServer) -> None:
    with (
        PacsflowClient(live_server.url, "admin", "wrong") as client,
        pytest.raises(PacsflowError, match="HTTP 401: authentication required") as raised,
    ):
        client.series_instances(UNKNOWN, UNKNOWN)
    assert raised.value.url.startswith(f"{live_server.dicomweb}/studies/{UNKNOWN}")


def test_bearer_token(live_server: LiveServer, ct_series: tuple[str, str]) -> None:
    login = {"username": "admin", "password": ADMIN_PASSWORD, "provider": "db"}
    response = live_server.session().post(
        f"{live_server.url}/api/v1/security/login", json=login, timeout=30
    )
    token = response.json()["access_token"]
    with PacsflowClient(live_server.url, token=token) as client:
        assert len(client.series_instances(*ct_series)) == len(CT_SERIES)
    with (
        PacsflowClient(live_server.url, token="not-a-token") as client,
        pytest.raises(PacsflowError, match="HTTP 401"),
    ):
        client.series_instances(*ct_series)


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"base_url": "127.0.0.1:8000", "username": "a", "password": "b"}, "base_url"),
        ({"base_url": "http://a:b@h", "token": "t"}, "base_url must not hold credentials"),
        ({"base_url": "http://h", "username": "a", "password": "b", "token": "t"}, "not both"),
        ({"base_url": "http://h", "username": "a"}, "username and password"),
        ({"base_url": "http://h"}, "username and password"),
        ({"base_url": "http://h", "token": "t", "retries": -1}, "retries"),
    ],
)
def test_constructor_refuses(arguments: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        PacsflowClient(**arguments)  # type: ignore[arg-type]


def test_invalid_uid_is_refused_before_any_request(tmp_path: Path) -> None:
    with PacsflowClient("http://127.0.0.1:9", token="t") as client:
        with pytest.raises(InvalidUIDError, match="SeriesInstanceUID '../x'"):
            client.series_instances(UNKNOWN, "../x")
        with pytest.raises(InvalidUIDError, match="SOPInstanceUID"):
            client.retrieve_instance_file(UNKNOWN, UNKNOWN, "1.2.x", tmp_path)


Answer = tuple[int, str, bytes]  # status, Content-Type, body


class Scripted(BaseHTTPRequestHandler):
    """Gives the next of ``answers`` to each request (the last one again when they run out)."""

    answers: list[Answer] = []
    requests = 0

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        cls = type(self)
        status, content_type, body = cls.answers[min(cls.requests, len(cls.answers) - 1)]
        cls.requests += 1
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[Callable[[list[Answer]], str]]:
    """Serves scripted answers; returns the server's base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def script(answers: list[Answer]) -> str:
        Scripted.answers, Scripted.requests = answers, 0
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield script
    server.shutdown()
    server.server_close()


UNAVAILABLE = (503, "application/json", b'{"error": "try later"}')
EMPTY = (200, "application/dicom+json", b"[]")


def test_5xx_is_retried(stub: Callable[[list[Answer]], str]) -> None:
    with PacsflowClient(stub([UNAVAILABLE, UNAVAILABLE, EMPTY]), token="t", retries=2) as client:
        assert client.series_instances(UNKNOWN, UNKNOWN) == []
    assert Scripted.requests == 3


def test_5xx_after_the_last_retry_names_the_server_message(
    stub: Callable[[list[Answer]], str],
) -> None:
    with (
        PacsflowClient(stub([UNAVAILABLE]), token="t", retries=1) as client,
        pytest.raises(PacsflowError, match="HTTP 503: try later"),
    ):
        client.series_instances(UNKNOWN, UNKNOWN)
    assert Scripted.requests == 2


def multipart(part_type: str, payload: bytes, end: bytes = b"\r\n--b--\r\n") -> Answer:
    body = b"--b\r\nContent-Type: " + part_type.encode() + b"\r\n\r\n" + payload + end
    return 200, 'multipart/related; type="application/dicom"; boundary=b', body


PART10 = b"\0" * 128 + b"DICM" + b"rest"


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (multipart("application/dicom", PART10, end=b""), "ends before the closing boundary"),
        (multipart("text/plain", PART10), "part is 'text/plain'"),
        (multipart("application/dicom", b"not DICOM"), "not a DICOM Part-10 file"),
        ((200, "application/dicom", PART10), "not multipart/related"),
    ],
)
def test_malformed_instance_leaves_no_file(
    stub: Callable[[list[Answer]], str], into: Path, answer: Answer, problem: str
) -> None:
    with (
        PacsflowClient(stub([answer]), token="t") as client,
        pytest.raises(PacsflowError, match=problem),
    ):
        client.retrieve_instance_file(UNKNOWN, UNKNOWN, UNKNOWN, into)
    assert list(into.iterdir()) == []


def test_nothing_listening_names_the_url() -> None:
    with (
        PacsflowClient("http://127.0.0.1:9", token="t", retries=0) as client,
        pytest.raises(PacsflowError, match="GET http://127.0.0.1:9/dicomweb/.* no response"),
    ):
        client.series_instances(UNKNOWN, UNKNOWN)
