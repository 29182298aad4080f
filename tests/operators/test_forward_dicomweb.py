"""forward_to_dicomweb from one pacsflow to another: the objects arrive as stored."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from pacsflow.dicom.status import StoreStatus
from pacsflow.operators import forward
from pacsflow.operators.client import PacsflowClient
from pacsflow.operators.forward import ForwardError, forward_to_dicomweb
from pacsflow.operators.stow import parse_response
from tests.live_server import LiveServer, free_port
from tests.operators.helpers import (
    CT_SERIES,
    FAST_BACKOFF,
    ORIGINALS,
    by_series,
    mixed_series,
    qido_instances,
    retrieved,
    stow,
    uids_of,
)


def test_series_arrive_byte_for_byte(
    archive_client: PacsflowClient,
    live_server: LiveServer,
    destination_server: LiveServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(forward, "STOW_BATCH", 2)  # a series takes several requests
    paths = [*ORIGINALS, *mixed_series(tmp_path)]
    stow(live_server, paths)
    for (study, series), files in by_series(paths).items():
        report = forward_to_dicomweb(
            archive_client, study, series, destination_server.dicomweb, destination_server.auth
        )
        assert (len(report.succeeded), report.attempts) == (len(files), 1)
        assert qido_instances(destination_server, study, series) == {uids_of(p)[2] for p in files}
        for path in files:
            arrived = retrieved(destination_server, *uids_of(path))
            assert arrived == path.read_bytes(), f"{path.name} changed on the way"


def test_conflicting_instance_fails_alone_without_retries(
    archive_client: PacsflowClient,
    live_server: LiveServer,
    destination_server: LiveServer,
    tmp_path: Path,
) -> None:
    stow(live_server, CT_SERIES)
    changed = pydicom.dcmread(CT_SERIES[1])
    changed.SeriesDescription = "changed at the destination"
    changed.save_as(tmp_path / "changed.dcm")
    stow(destination_server, [tmp_path / "changed.dcm"])
    study, series, conflicting = uids_of(CT_SERIES[1])
    with pytest.raises(ForwardError, match=f"1 of 3 instances .* {conflicting}: 0x0111") as raised:
        forward_to_dicomweb(
            archive_client, study, series, destination_server.dicomweb, destination_server.auth
        )
    report = raised.value.report
    assert report.attempts == 1
    assert report.outcomes[conflicting] == StoreStatus.DUPLICATE_SOP_INSTANCE
    assert len(report.succeeded) == 2


def test_wrong_credentials_are_not_retried(
    archive_client: PacsflowClient, live_server: LiveServer, destination_server: LiveServer
) -> None:
    stow(live_server, CT_SERIES)
    study, series, _ = uids_of(CT_SERIES[0])
    with pytest.raises(ForwardError, match="HTTP 401: authentication required") as raised:
        forward_to_dicomweb(
            archive_client, study, series, destination_server.dicomweb, ("admin", "wrong")
        )
    assert raised.value.report.attempts == 1
    assert qido_instances(destination_server, study, series) == set()


def test_unreachable_server_is_retried(
    archive_client: PacsflowClient, live_server: LiveServer
) -> None:
    stow(live_server, CT_SERIES)
    study, series, _ = uids_of(CT_SERIES[0])
    url = f"http://127.0.0.1:{free_port()}/dicomweb"
    with pytest.raises(ForwardError, match=f"3 of 3 .* after 3 attempt.*POST {url}/studies") as e:
        forward_to_dicomweb(archive_client, study, series, url, retries=2, backoff=FAST_BACKOFF)
    assert e.value.report.as_dict()["failed"] == 3


def test_empty_series_is_an_error(archive_client: PacsflowClient, live_server: LiveServer) -> None:
    with pytest.raises(ForwardError, match="has no instances in pacsflow; check the UIDs"):
        forward_to_dicomweb(archive_client, "1.2.3", "4.5.6", "http://127.0.0.1:9/dicomweb")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://h/dicomweb", "url 'ftp://h/dicomweb' must be an http"),
        ("http://admin:secret@h/dicomweb", "url must not hold credentials"),
    ],
)
def test_url_is_checked_before_any_request(url: str, problem: str) -> None:
    with (
        PacsflowClient("http://127.0.0.1:9", token="t", retries=0) as client,
        pytest.raises(ValueError, match=problem),
    ):
        forward_to_dicomweb(client, "1.2", "1.2.3", url)


def test_store_instances_response() -> None:
    def item(uid: str, **reason: int) -> dict[str, object]:
        tags = {"warning": "00081196", "failure": "00081197"}
        element = {"00081155": {"vr": "UI", "Value": [uid]}}
        for name, value in reason.items():
            element[tags[name]] = {"vr": "US", "Value": [value]}
        return element

    body = {
        "00081199": {"vr": "SQ", "Value": [item("1.1"), item("1.2", warning=0xB000)]},
        "00081198": {"vr": "SQ", "Value": [item("1.3", failure=0xA700), item("1.4")]},
    }
    assert parse_response(body) == {"1.1": 0, "1.2": 0xB000, "1.3": 0xA700, "1.4": 0x0110}
