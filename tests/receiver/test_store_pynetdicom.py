"""C-STORE from a pynetdicom SCU: exact bytes, refusals, aborts and concurrent associations."""

from __future__ import annotations

import glob
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode

from pacsflow.archive.archive import Archive
from pacsflow.dicom.status import StoreStatus
from pacsflow.receiver import ReceiverHandle
from tests.receiver.conftest import CALLING_AE
from tests.receiver.helpers import (
    dataset_bytes,
    staging_leftovers,
    storage_files,
    stored,
    stored_bytes,
)


def ct_instance(study: str, series: str, rows: int = 8) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.PatientID = "RECEIVER-TEST"
    ds.Modality = "CT"
    ds.Rows = rows
    ds.Columns = rows
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.arange(rows * rows, dtype=np.uint16).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def scu() -> AE:
    ae = AE(ae_title=CALLING_AE)
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    return ae


def test_stored_bytes_are_the_sent_data_set(receiver: ReceiverHandle, archive: Archive) -> None:
    ds = ct_instance(generate_uid(), generate_uid())
    assoc = scu().associate("127.0.0.1", receiver.port, ae_title="PACSFLOW")
    assert assoc.is_established
    status = assoc.send_c_store(ds)
    assoc.release()
    assert status.Status == StoreStatus.SUCCESS
    kept = stored_bytes(archive, stored(archive)[ds.SOPInstanceUID])
    assert dataset_bytes(kept) == encode(ds, False, True)
    meta = pydicom.dcmread(BytesIO(kept)).file_meta
    assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert meta.ImplementationVersionName == "PACSFLOW_010"  # File Meta written by ingest


def test_refused_data_set_leaves_the_association_going(
    receiver: ReceiverHandle, archive: Archive
) -> None:
    bad = ct_instance("1.2.3/../../etc", generate_uid())
    good = ct_instance(generate_uid(), generate_uid())
    assoc = scu().associate("127.0.0.1", receiver.port, ae_title="PACSFLOW")
    refused = assoc.send_c_store(bad)
    accepted = assoc.send_c_store(good)
    assoc.release()
    assert refused.Status == StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS
    assert "StudyInstanceUID" in refused.ErrorComment
    assert len(refused.ErrorComment) <= 64
    assert accepted.Status == StoreStatus.SUCCESS
    assert set(stored(archive)) == {good.SOPInstanceUID}
    assert staging_leftovers(archive) == []


def test_duplicate_with_other_content_is_refused(
    receiver: ReceiverHandle, archive: Archive
) -> None:
    first = ct_instance(generate_uid(), generate_uid())
    second = ct_instance(first.StudyInstanceUID, first.SeriesInstanceUID, rows=4)
    second.SOPInstanceUID = first.SOPInstanceUID
    assoc = scu().associate("127.0.0.1", receiver.port, ae_title="PACSFLOW")
    statuses = [assoc.send_c_store(first).Status, assoc.send_c_store(first).Status]
    conflict = assoc.send_c_store(second)
    assoc.release()
    assert statuses == [StoreStatus.SUCCESS, StoreStatus.SUCCESS]  # same bytes: idempotent
    assert conflict.Status == StoreStatus.DUPLICATE_SOP_INSTANCE
    assert conflict.ErrorComment


def _spooled() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "tmp*.dcm")))


def test_abort_mid_transfer_leaves_nothing(receiver: ReceiverHandle, archive: Archive) -> None:
    """Send the command and part of a data set by hand, then abort the association."""
    spooled_before = _spooled()
    ds = ct_instance(generate_uid(), generate_uid(), rows=256)
    ae = scu()
    ae.maximum_pdu_size = 16384
    assoc = ae.associate("127.0.0.1", receiver.port, ae_title="PACSFLOW", max_pdu=16384)
    assert assoc.is_established
    context = assoc.accepted_contexts[0]
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = ds.SOPClassUID
    request.AffectedSOPInstanceUID = ds.SOPInstanceUID
    request.Priority = 2
    request.DataSet = BytesIO(encode(ds, False, True))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    fragments = list(message.encode_msg(context.context_id, 16384))
    assert len(fragments) > 4
    for fragment in fragments[:4]:
        assoc.dul.send_pdu(fragment)
    deadline = time.monotonic() + 10
    while receiver.log.bytes_received_from(CALLING_AE) < 2 * 16000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receiver.log.bytes_received_from(CALLING_AE) >= 2 * 16000, "data set never arrived"
    assoc.abort()
    deadline = time.monotonic() + 10
    while len(receiver.log) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(receiver.log) == 0, "the receiver did not see the abort"
    assert stored(archive) == {}
    assert storage_files(archive) == []
    assert staging_leftovers(archive) == []
    assert _spooled() - spooled_before == set()


ASSOCIATIONS = 8
INSTANCES_EACH = 100


def test_concurrent_associations(receiver: ReceiverHandle, archive: Archive) -> None:
    study = generate_uid()
    barrier = threading.Barrier(ASSOCIATIONS)

    def send(_: int) -> list[int]:
        series = generate_uid()
        instances = [ct_instance(study, series, rows=4) for _ in range(INSTANCES_EACH)]
        barrier.wait()
        assoc = scu().associate("127.0.0.1", receiver.port, ae_title="PACSFLOW")
        assert assoc.is_established
        try:
            return [int(assoc.send_c_store(ds).Status) for ds in instances]
        finally:
            assoc.release()

    with ThreadPoolExecutor(ASSOCIATIONS) as pool:
        statuses = [s for batch in pool.map(send, range(ASSOCIATIONS)) for s in batch]
    assert statuses == [StoreStatus.SUCCESS] * ASSOCIATIONS * INSTANCES_EACH
    assert len(stored(archive)) == ASSOCIATIONS * INSTANCES_EACH
