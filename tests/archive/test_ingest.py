"""Ingest: validation, byte-exact durable storage, dedupe, the index and the outbox."""

from __future__ import annotations

import errno
import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from pacsflow.archive import ingest as ingest_module
from pacsflow.archive.archive import Archive
from pacsflow.archive.fsck import fsck
from pacsflow.archive.ingest import IngestError, Outcome, Source, SourceKind
from pacsflow.archive.models import Arrival, Instance, Series, Study
from pacsflow.archive.storage import object_key
from pacsflow.dicom.status import StoreStatus

SOURCE = Source(SourceKind.DIMSE, calling_ae="MODALITY", called_ae="PACSFLOW", peer="127.0.0.1")
CT = get_testdata_file("CT_small.dcm")


def store(archive: Archive, data: bytes, **kwargs: str) -> Outcome:
    staged = archive.storage.staging_file()
    staged.write_bytes(data)
    return archive.ingest(staged, SOURCE, **kwargs).outcome


def encoded(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def nothing_left(archive: Archive) -> bool:
    root = archive.storage.root
    return not list(root.glob("*/*/*.dcm")) and not list(archive.storage.staging_dir.iterdir())


def test_stores_byte_exact_and_indexes(archive: Archive, shared_data: Path) -> None:
    paths = sorted((shared_data / "dcmqi-seg" / "ct-3slice").glob("*")) + [
        shared_data / "dcmqi-seg" / "liver.dcm"
    ]
    for path in paths:
        assert store(archive, path.read_bytes()) == Outcome.STORED
    with archive.sessions() as session:
        study = session.execute(select(Study)).scalar_one()
        assert (study.number_of_series, study.number_of_instances) == (2, 4)
        assert study.modalities_in_study == "/CT/SEG/"
        instances = session.execute(select(Instance)).scalars().all()
        arrivals = session.execute(select(Arrival)).scalars().all()
    for instance in instances:
        original = next(
            p for p in paths if pydicom.dcmread(p).SOPInstanceUID == instance.sop_instance_uid
        )
        assert archive.storage.open(instance.storage_key).read() == original.read_bytes()
        metadata = json.loads(instance.metadata_json)
        assert metadata["7FE00010"]["BulkDataURI"].endswith("/bulkdata/7FE00010")
    assert {a.calling_ae for a in arrivals} == {"MODALITY"} and len(arrivals) == 4


def test_bare_data_set_gets_file_meta(archive: Archive) -> None:
    ds = pydicom.dcmread(CT)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, True
    write_dataset(body, ds)
    bare = body.getvalue()
    assert store(archive, bare) == Outcome.STORED
    key = next(iter(archive.storage.iter_keys()))
    stored = archive.storage.open(key).read()
    assert stored[128:132] == b"DICM" and stored.endswith(bare)
    meta = pydicom.dcmread(io.BytesIO(stored)).file_meta
    assert meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian
    assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_duplicates(archive: Archive) -> None:
    data = Path(CT).read_bytes()
    assert store(archive, data) == Outcome.STORED
    assert store(archive, data) == Outcome.DUPLICATE
    ds = pydicom.dcmread(CT)
    ds.file_meta.ImplementationVersionName = "OTHER_SENDER"
    assert store(archive, encoded(ds)) == Outcome.DUPLICATE  # same data set, other meta
    ds.PatientName = "Changed^Name"
    with pytest.raises(IngestError) as refused:
        store(archive, encoded(ds))
    assert refused.value.status == StoreStatus.DUPLICATE_SOP_INSTANCE
    assert "already stored with different content" in str(refused.value)
    with archive.sessions() as session:
        assert session.execute(select(func.count()).select_from(Arrival)).scalar_one() == 1


def test_overwrite_policy_replaces(archive: Archive) -> None:
    archive.settings.duplicate_policy = "overwrite"
    assert store(archive, Path(CT).read_bytes()) == Outcome.STORED
    ds = pydicom.dcmread(CT)
    ds.PatientName = "Changed^Name"
    assert store(archive, encoded(ds)) == Outcome.REPLACED
    with archive.sessions() as session:
        study = session.execute(select(Study)).scalar_one()
        assert study.number_of_instances == 1
    key = next(iter(archive.storage.iter_keys()))
    assert pydicom.dcmread(archive.storage.open(key)).PatientName == "Changed^Name"


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        (
            "del SOPInstanceUID",
            StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS,
            "SOPInstanceUID is missing",
        ),
        (
            "del StudyInstanceUID",
            StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS,
            "StudyInstanceUID is missing",
        ),
        ("series ../", StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS, "not a valid UID"),
    ],
)
def test_invalid_uids_are_refused(archive: Archive, change: str, status: int, message: str) -> None:
    ds = pydicom.dcmread(CT)
    if change.startswith("del "):
        delattr(ds, change.removeprefix("del "))
    else:
        ds.SeriesInstanceUID = "1.2.3/../../etc"
    with pytest.raises(IngestError) as refused:
        store(archive, encoded(ds))
    assert refused.value.status == status and message in str(refused.value)
    assert nothing_left(archive)


@pytest.mark.parametrize("cut", [200, 1000, -100, -1])
def test_truncated_file_is_refused(archive: Archive, cut: int) -> None:
    data = Path(CT).read_bytes()
    with pytest.raises(IngestError) as refused:
        store(archive, data[:cut])
    assert refused.value.status == StoreStatus.CANNOT_UNDERSTAND
    assert nothing_left(archive)


def test_non_dicom_and_oversize_are_refused(archive: Archive) -> None:
    with pytest.raises(IngestError) as refused:
        store(archive, b"this is not DICOM" * 100)
    assert refused.value.status == StoreStatus.CANNOT_UNDERSTAND
    archive.settings.max_object_size = 1000  # type: ignore[assignment]
    with pytest.raises(IngestError) as refused:
        store(archive, Path(CT).read_bytes())
    assert refused.value.status == StoreStatus.OUT_OF_RESOURCES
    assert "PACSFLOW_MAX_OBJECT_SIZE" in str(refused.value)
    assert nothing_left(archive)


def test_study_mismatch_is_refused(archive: Archive) -> None:
    with pytest.raises(IngestError) as refused:
        store(archive, Path(CT).read_bytes(), study_instance_uid="1.2.3")
    assert "differs from the study 1.2.3" in str(refused.value)
    assert nothing_left(archive)


def test_index_failure_keeps_nothing(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("INSERT", {}, Exception("database is gone"))

    monkeypatch.setattr(ingest_module, "_index", broken)
    with pytest.raises(IngestError) as refused:
        store(archive, Path(CT).read_bytes())
    assert refused.value.status == StoreStatus.PROCESSING_FAILURE
    assert nothing_left(archive)


def test_full_disk_is_out_of_resources(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive.storage, "sync", full)
    with pytest.raises(IngestError) as refused:
        store(archive, Path(CT).read_bytes())
    assert refused.value.status == StoreStatus.OUT_OF_RESOURCES
    assert nothing_left(archive)


def test_delete_fixes_counts_and_removes_files(archive: Archive, shared_data: Path) -> None:
    paths = sorted((shared_data / "dcmqi-seg" / "ct-3slice").glob("*"))
    paths.append(shared_data / "dcmqi-seg" / "liver.dcm")
    for path in paths:
        store(archive, path.read_bytes())
    seg = pydicom.dcmread(paths[-1])
    assert archive.delete(seg.StudyInstanceUID, seg.SeriesInstanceUID) == 1
    with archive.sessions() as session:
        study = session.execute(select(Study)).scalar_one()
        assert (study.number_of_series, study.number_of_instances) == (1, 3)
        assert study.modalities_in_study == "/CT/"
    assert archive.delete(seg.StudyInstanceUID) == 3
    assert archive.delete(seg.StudyInstanceUID) == 0
    with archive.sessions() as session:
        assert session.execute(select(func.count()).select_from(Series)).scalar_one() == 0
    assert nothing_left(archive)


def test_person_names_are_indexed_whole(archive: Archive) -> None:
    assert store(archive, Path(CT).read_bytes()) == Outcome.STORED
    with archive.sessions() as session:
        study = session.execute(select(Study)).scalar_one()
    assert study.patient_name == str(pydicom.dcmread(CT).PatientName)
    assert study.patient_name_search == study.patient_name.upper()


def test_batch_results_are_per_object(archive: Archive) -> None:
    ct = Path(CT).read_bytes()
    changed = pydicom.dcmread(CT)
    changed.PatientName = "Other^Name"
    bodies = [
        ct,
        b"garbage",
        ct,
        encoded(changed),
        Path(get_testdata_file("MR_small.dcm")).read_bytes(),
    ]
    staged = []
    for body in bodies:
        path = archive.storage.staging_file()
        path.write_bytes(body)
        staged.append(path)
    results = archive.ingest_many(staged, SOURCE)
    kinds = [r.outcome if not isinstance(r, IngestError) else r.status for r in results]
    assert kinds == [
        Outcome.STORED,
        StoreStatus.CANNOT_UNDERSTAND,
        Outcome.DUPLICATE,
        StoreStatus.DUPLICATE_SOP_INSTANCE,
        Outcome.STORED,
    ]
    assert len(list(archive.storage.iter_keys())) == 2
    assert list(archive.storage.staging_dir.iterdir()) == []


def test_value_without_json_form_is_stored_and_left_out_of_metadata(archive: Archive) -> None:
    bad = Path(get_testdata_file("badVR.dcm"))  # NumberOfFrames (IS) is "1A"
    assert store(archive, bad.read_bytes()) == Outcome.STORED
    with archive.sessions() as session:
        instance = session.execute(select(Instance)).scalar_one()
    assert json.loads(instance.metadata_json)["00280008"] == {"vr": "IS"}
    assert instance.number_of_frames is None
    assert archive.storage.open(instance.storage_key).read() == bad.read_bytes()


def test_bare_deflated_data_set_gets_file_meta(archive: Archive) -> None:
    """A DIMSE peer may send a deflated data set; ingest must inflate it to find its UIDs."""
    deflated = Path(get_testdata_file("image_dfl.dcm"))
    ds = pydicom.dcmread(deflated)
    raw = deflated.read_bytes()
    group_length = int(ds.file_meta.FileMetaInformationGroupLength)
    bare = raw[132 + 12 + group_length :]
    staged = archive.storage.staging_file()
    staged.write_bytes(bare)
    result = archive.ingest(
        staged, SOURCE, transfer_syntax_uid=pydicom.uid.DeflatedExplicitVRLittleEndian
    )
    assert result.outcome == Outcome.STORED
    stored = archive.storage.open(next(iter(archive.storage.iter_keys()))).read()
    assert stored.endswith(bare)
    assert pydicom.dcmread(io.BytesIO(stored)).SOPInstanceUID == ds.SOPInstanceUID


def test_stage_dataset_takes_the_data_set_after_an_offset(archive: Archive) -> None:
    """The receiver's spool holds a File Meta of pynetdicom's making before the data set."""
    raw = Path(CT).read_bytes()
    group_length = int(pydicom.dcmread(CT).file_meta.FileMetaInformationGroupLength)
    offset = 132 + 12 + group_length
    spool = archive.storage.staging_file()
    spool.write_bytes(b"x" * 200 + raw[offset:])
    staged = ingest_module.stage_dataset(archive, spool, 200, pydicom.uid.ExplicitVRLittleEndian)
    assert archive.ingest(staged, SOURCE).outcome == Outcome.STORED
    stored = archive.storage.open(next(iter(archive.storage.iter_keys()))).read()
    assert stored.endswith(raw[offset:])
    meta = pydicom.dcmread(io.BytesIO(stored), stop_before_pixels=True).file_meta
    assert meta.ImplementationClassUID == ingest_module.IMPLEMENTATION_CLASS_UID
    assert meta.MediaStorageSOPInstanceUID == pydicom.dcmread(CT).SOPInstanceUID


def test_concurrent_ingests_of_a_new_series(archive: Archive) -> None:
    """Threads storing one new series at once: each instance once, the counts right."""
    template = pydicom.dcmread(CT)
    template.SeriesInstanceUID = pydicom.uid.generate_uid()
    bodies = []
    for _ in range(12):
        template.SOPInstanceUID = pydicom.uid.generate_uid()
        bodies.append(encoded(template))
    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(lambda body: store(archive, body), bodies))
    assert outcomes == [Outcome.STORED] * len(bodies)
    with archive.sessions() as session:
        series = session.execute(select(Series)).scalar_one()
        study = session.execute(select(Study)).scalar_one()
    assert series.number_of_instances == len(bodies)
    assert (study.number_of_series, study.number_of_instances) == (1, len(bodies))
    assert len(list(archive.storage.iter_keys())) == len(bodies)


@pytest.mark.parametrize("same_content", [True, False])
def test_concurrent_ingests_of_one_instance_keep_one_whole(
    archive: Archive, monkeypatch: pytest.MonkeyPatch, same_content: bool
) -> None:
    """Two senders storing one SOP instance at once (a retry crossing the original): one
    stores it, the other finds it stored; the file stays the indexed one, whole. A slow
    fsync holds the first commit back while the second arrives."""
    ds = pydicom.dcmread(CT)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    first = encoded(ds)
    if not same_content:
        ds.PatientName = "Other^Content"
    bodies = [first, encoded(ds)]
    sync = archive.storage.sync

    def slow_sync(keys: list[str]) -> None:
        time.sleep(0.3)
        sync(keys)

    monkeypatch.setattr(archive.storage, "sync", slow_sync)

    def attempt(body: bytes) -> Outcome | StoreStatus:
        try:
            return store(archive, body)
        except IngestError as refused:
            return StoreStatus(refused.status)

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(attempt, bodies), key=str)
    later = Outcome.DUPLICATE if same_content else StoreStatus.DUPLICATE_SOP_INSTANCE
    assert sorted([Outcome.STORED, later], key=str) == outcomes
    report = fsck(archive, verify=True)
    assert report.ok and report.checked == 1, report


@pytest.mark.parametrize("instance_uid", ["1.2.3.4", "1.2.3.45"])  # odd and even lengths
def test_part10_header_is_what_pydicom_writes(instance_uid: str) -> None:
    """The File Meta is encoded by hand for speed; it must be pydicom's, byte for byte."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
    meta.MediaStorageSOPInstanceUID = instance_uid
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    meta.ImplementationClassUID = ingest_module.IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = ingest_module.IMPLEMENTATION_VERSION_NAME
    expected = DicomBytesIO()
    expected.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(expected, meta, enforce_standard=True)
    header = ingest_module.part10_header(
        pydicom.uid.CTImageStorage, instance_uid, pydicom.uid.ExplicitVRLittleEndian
    )
    assert header == expected.getvalue()


def test_recovery_removes_what_a_crash_placed_but_never_indexed(archive: Archive) -> None:
    """A process killed between placing a file and committing its row leaves an orphan."""
    indexed = pydicom.dcmread(CT)
    assert store(archive, encoded(indexed)) == Outcome.STORED
    (indexed_key,) = archive.storage.iter_keys()
    crashed = Archive(archive.settings)
    orphan = pydicom.dcmread(CT)
    orphan.SOPInstanceUID = pydicom.uid.generate_uid()
    staged = crashed.storage.staging_file()
    staged.write_bytes(encoded(orphan))
    orphan_key = object_key(
        orphan.StudyInstanceUID, orphan.SeriesInstanceUID, orphan.SOPInstanceUID
    )
    crashed.storage.place(staged, orphan_key)
    # It also died after another commit, before deleting that staged link.
    indexed_path = archive.storage.local_path(indexed_key)
    assert indexed_path is not None
    os.link(indexed_path, crashed.storage.staging_dir / "committed.part")
    os.close(crashed.storage._lock_fd)  # type: ignore[attr-defined]

    assert archive.recover() == 3
    assert list(archive.storage.iter_keys()) == [indexed_key]
    assert fsck(archive, verify=True).ok
    assert not crashed.storage.staging_dir.exists()
