"""The conf a series run gets, from the outbox (dispatched runs) or the index (manual runs)."""

from __future__ import annotations

import io

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from pacsflow.archive.archive import Archive
from pacsflow.archive.dispatcher import quiet_series, run_conf, stored_series_conf
from pacsflow.archive.ingest import Source, SourceKind, utc_now

SOURCE = Source(SourceKind.DIMSE, calling_ae="MODALITY", called_ae="PACSFLOW", peer="127.0.0.1")


def store_series(archive: Archive, count: int) -> pydicom.Dataset:
    """``count`` instances of one new CT series; returns the first."""
    first = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    first.SeriesInstanceUID = generate_uid()
    for _ in range(count):
        first.SOPInstanceUID = first.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        buffer = io.BytesIO()
        first.save_as(buffer)
        buffer.seek(0)
        archive.ingest_stream(buffer, SOURCE)
    return first


def test_a_dispatched_run_and_a_manual_run_get_the_same_conf(archive: Archive) -> None:
    ds = store_series(archive, 3)
    (pending,) = quiet_series(archive, 0, utc_now())
    dispatched = run_conf(archive, pending)
    manual = stored_series_conf(
        archive, ds.SeriesInstanceUID, {"kind": "manual", "username": "rita"}
    )
    assert dispatched == {
        "study_instance_uid": ds.StudyInstanceUID,
        "series_instance_uid": ds.SeriesInstanceUID,
        "modality": "CT",
        "sop_class_uids": [ds.SOPClassUID],
        "instances": 3,
        "series_instances": 3,
        "source": {
            "kind": "dimse",
            "username": "",
            "calling_ae": "MODALITY",
            "called_ae": "PACSFLOW",
            "peer": "127.0.0.1",
        },
        "project": "",
    }
    assert manual == {**dispatched, "source": {"kind": "manual", "username": "rita"}}


def test_a_series_not_stored_has_no_conf(archive: Archive) -> None:
    assert stored_series_conf(archive, "1.2.3.404", {"kind": "manual", "username": "x"}) is None
