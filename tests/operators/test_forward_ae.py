"""forward_to_ae against dcmtk's storescp: what arrives is what was stored, byte for byte."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from pacsflow.operators.client import PacsflowClient
from pacsflow.operators.cstore import MAX_PRESENTATION_CONTEXTS
from pacsflow.operators.forward import Destination, ForwardError, forward_to_ae
from tests.live_server import LiveServer, free_port
from tests.operators.helpers import (
    CALLING_AE,
    CT_SERIES,
    FAST_BACKOFF,
    ORIGINALS,
    StoreSCP,
    by_series,
    expected_bytes,
    mixed_series,
    stow,
    uids_of,
)

# What storescp accepts without options.
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian)


def test_series_arrive_byte_for_byte(
    archive_client: PacsflowClient, live_server: LiveServer, storescp: StoreSCP
) -> None:
    stow(live_server, ORIGINALS)
    for (study, series), paths in by_series(ORIGINALS).items():
        report = forward_to_ae(archive_client, study, series, storescp.destination, CALLING_AE)
        summary = report.as_dict()
        assert (summary["succeeded"], summary["failed"], summary["attempts"]) == (len(paths), 0, 1)
        assert set(summary["results"]) == {uids_of(p)[2] for p in paths}
        json.dumps(summary)  # an XCom must serialise
    received, expected = storescp.received(), expected_bytes(ORIGINALS)
    assert received.keys() == expected.keys()
    for uid, data in expected.items():
        assert received[uid] == data, f"{uid}: the data set storescp received differs"


def test_mixed_series_over_one_association(
    archive_client: PacsflowClient, live_server: LiveServer, storescp: StoreSCP, tmp_path: Path
) -> None:
    paths = mixed_series(tmp_path)
    stow(live_server, paths)
    study, series, _ = uids_of(paths[0])
    report = forward_to_ae(archive_client, study, series, storescp.destination, CALLING_AE)
    assert len(report.succeeded) == len(paths)
    assert storescp.received() == expected_bytes(paths)


def tiny_instance(study: str, series: str, sop_class: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.Modality = "OT"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def test_more_classes_than_contexts_take_two_associations(
    archive_client: PacsflowClient, live_server: LiveServer, storescp: StoreSCP, tmp_path: Path
) -> None:
    study, series = generate_uid(), generate_uid()
    paths = []
    for index in range(MAX_PRESENTATION_CONTEXTS + 1):
        path = tmp_path / f"{index}.dcm"
        tiny_instance(study, series, generate_uid()).save_as(path, enforce_file_format=True)
        paths.append(path)
    stow(live_server, paths)
    report = forward_to_ae(archive_client, study, series, storescp.destination, CALLING_AE)
    assert len(report.succeeded) == len(paths)
    assert storescp.received() == expected_bytes(paths)


def test_syntax_the_destination_refuses_fails_alone_without_retries(
    archive_client: PacsflowClient,
    live_server: LiveServer,
    start_storescp: Callable[..., StoreSCP],
    tmp_path: Path,
) -> None:
    storescp = start_storescp()  # by default: the uncompressed, not deflated, syntaxes only
    paths = mixed_series(tmp_path)
    stow(live_server, paths)
    study, series, _ = uids_of(paths[0])
    with pytest.raises(ForwardError, match="does not accept SOP Class") as raised:
        forward_to_ae(archive_client, study, series, storescp.destination, CALLING_AE)
    report = raised.value.report
    assert report.attempts == 1
    plain = [p for p in paths if pydicom.dcmread(p).file_meta.TransferSyntaxUID in UNCOMPRESSED]
    refused = {uids_of(path)[2] for path in paths if path not in plain}
    assert set(report.failed) == refused and refused
    assert storescp.received() == expected_bytes(plain)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and then never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def unreachable(
    case: str, start_storescp: Callable[..., StoreSCP], silent_port: int
) -> tuple[Destination, tuple[str, ...]]:
    """The case's destination and the reasons its instances may fail with. storescp closes
    the connection right after its rejection, so pynetdicom now and then sees an abort."""
    if case == "refused":
        destination = start_storescp("--refuse").destination
        return destination, ("association rejected", "no association")
    port = silent_port if case == "silent" else free_port()
    return Destination("NOBODY", "127.0.0.1", port), ("no association",)


@pytest.mark.parametrize("case", ["refused", "nothing listening", "silent"])
def test_unreachable_destination_is_retried_then_reported(
    case: str,
    archive_client: PacsflowClient,
    live_server: LiveServer,
    start_storescp: Callable[..., StoreSCP],
    silent_port: int,
) -> None:
    destination, reasons = unreachable(case, start_storescp, silent_port)
    stow(live_server, CT_SERIES)
    study, series, _ = uids_of(CT_SERIES[0])
    started = time.monotonic()
    with pytest.raises(ForwardError, match="3 of 3 instances .* after 3 attempt") as raised:
        forward_to_ae(
            archive_client, study, series, destination, CALLING_AE,
            retries=2, backoff=FAST_BACKOFF, timeout=1.0,
        )  # fmt: skip
    assert time.monotonic() - started < 15, "timeouts must bound every attempt"
    summary = raised.value.report.as_dict()
    assert (summary["succeeded"], summary["failed"], summary["attempts"]) == (0, 3, 3)
    for result in summary["results"].values():
        assert str(destination) in result and result.startswith(reasons), result


def test_destination_that_comes_up_during_the_backoff_gets_everything(
    archive_client: PacsflowClient,
    live_server: LiveServer,
    start_storescp: Callable[..., StoreSCP],
) -> None:
    stow(live_server, CT_SERIES)
    study, series, _ = uids_of(CT_SERIES[0])
    port = free_port()
    late = threading.Timer(0.2, start_storescp, args=("+xa",), kwargs={"port": port})
    late.start()
    try:
        destination = Destination("STORESCP", "127.0.0.1", port)
        report = forward_to_ae(
            archive_client, study, series, destination, CALLING_AE, retries=3, backoff=1.0
        )
    finally:
        late.join()
    assert report.attempts == 2
    assert len(report.succeeded) == len(CT_SERIES)
