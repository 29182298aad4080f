"""What the forwarding tests store and look at: test series, peers' received bytes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

from pacsflow.operators.forward import Destination
from pacsflow.operators.multipart import MultipartBody
from tests.conftest import SHARED_DATA
from tests.live_server import LiveServer
from tests.multipart import split_multipart
from tests.receiver.helpers import dataset_bytes

STORESCP_AE = "STORESCP"
CALLING_AE = "PACSFLOW"
FAST_BACKOFF = 0.05
AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
CT_SERIES = sorted((SHARED_DATA / "dcmqi-seg" / "ct-3slice").glob("*.dcm"))
# Files as their makers wrote them: implicit VR with group lengths (which pydicom would
# drop), a SEG, JPEG 2000, JPEG baseline, explicit VR big endian. (pydicom's image_dfl.dcm is
# left out: its deflated data set has an odd length, which storescp refuses from any sender.)
ORIGINALS = [
    *CT_SERIES,
    SHARED_DATA / "dcmqi-seg" / "liver.dcm",
    *(Path(get_testdata_file(name)) for name in (
        "JPEG2000.dcm", "SC_rgb_jpeg_dcmtk.dcm", "ExplVR_BigEnd.dcm"
    )),
]  # fmt: skip
# Kinds for one series: (file, transfer syntax to write it in, or None to keep its own).
MIXED = [
    (Path(get_testdata_file("CT_small.dcm")), None),
    (Path(get_testdata_file("CT_small.dcm")), DeflatedExplicitVRLittleEndian),
    (Path(get_testdata_file("MR_small_implicit.dcm")), None),
    (Path(get_testdata_file("JPEG2000.dcm")), None),
    (Path(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")), None),
    (Path(get_testdata_file("rtdose_rle.dcm")), None),
    (SHARED_DATA / "dcmqi-seg" / "liver.dcm", None),
]


def mixed_series(folder: Path) -> list[Path]:
    """:data:`MIXED` rewritten into one new series, each with a new SOP Instance UID."""
    study, series = generate_uid(), generate_uid()
    paths = []
    for index, (source, syntax) in enumerate(MIXED):
        ds = pydicom.dcmread(source)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        if syntax is not None:
            ds.file_meta.TransferSyntaxUID = syntax
        path = folder / f"mixed-{index}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def uids_of(path: Path) -> tuple[str, str, str]:
    """(study, series, SOP instance) UIDs of a file."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def by_series(paths: Sequence[Path]) -> dict[tuple[str, str], list[Path]]:
    series: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path in paths:
        study, series_uid, _ = uids_of(path)
        series[study, series_uid].append(path)
    return series


def expected_bytes(paths: Sequence[Path]) -> dict[str, bytes]:
    """The data set bytes of each file, by SOP Instance UID."""
    return {uids_of(path)[2]: dataset_bytes(path.read_bytes()) for path in paths}


def stow(server: LiveServer, paths: Sequence[Path]) -> None:
    """Store files byte for byte (dicomweb-client would re-encode them)."""
    body = MultipartBody(paths)
    response = server.session().post(
        f"{server.dicomweb}/studies",
        data=b"".join(body),
        headers={"Content-Type": body.content_type, "Accept": "application/dicom+json"},
        timeout=60,
    )
    assert response.status_code == 200, response.text


def qido_instances(server: LiveServer, study: str, series: str) -> set[str]:
    response = server.session().get(
        f"{server.dicomweb}/studies/{study}/series/{series}/instances", timeout=30
    )
    response.raise_for_status()
    return {match["00080018"]["Value"][0] for match in response.json()}


def retrieved(server: LiveServer, study: str, series: str, sop: str) -> bytes:
    """An instance as the server stored it."""
    response = server.session().get(
        f"{server.dicomweb}/studies/{study}/series/{series}/instances/{sop}",
        headers={"Accept": AS_STORED},
        timeout=30,
    )
    response.raise_for_status()
    [(_, payload)] = split_multipart(response.headers["Content-Type"], response.content)
    return payload


@dataclass(frozen=True)
class StoreSCP:
    """A running dcmtk storescp and the folder it writes to."""

    port: int
    folder: Path

    @property
    def destination(self) -> Destination:
        return Destination(STORESCP_AE, "127.0.0.1", self.port)

    def received(self) -> dict[str, bytes]:
        """The data set bytes of every file storescp wrote, by SOP Instance UID."""
        return expected_bytes(list(self.folder.iterdir()))
