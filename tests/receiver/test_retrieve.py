"""C-MOVE and C-GET: to dcmtk's storescp, from movescu and getscu, and from pynetdicom; and
the audit records of DIMSE access (C-STORE per association, C-FIND, C-MOVE, C-GET)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
    generate_uid,
)
from pynetdicom import AE, build_role, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # made at import time
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from pacsflow.archive.archive import Archive
from pacsflow.archive.remote_aes import add_peer
from pacsflow.audit import AuditKind, AuditOutcome, read_events
from pacsflow.dicom.status import StoreStatus
from pacsflow.receiver import ReceiverHandle
from pacsflow.receiver.retrieve import Match, RetrieveStatus, destination_contexts
from tests.receiver.conftest import CALLING_AE
from tests.receiver.helpers import running_storescp, stored
from tests.receiver.test_store_pynetdicom import ct_instance, scu

DESTINATION = "STORESCP"
CALLED_AE = "PACSFLOW"
DCMTK_TIMEOUT = 30


@dataclass
class StoreSCP:
    port: int
    folder: Path

    def received(self, expected: int) -> dict[str, Dataset]:
        """The files storescp wrote, by SOP Instance UID, once ``expected`` are complete."""
        deadline = time.monotonic() + 10
        while len(list(self.folder.iterdir())) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)  # the last file may still be being written
        datasets = [pydicom.dcmread(path) for path in sorted(self.folder.iterdir())]
        return {str(ds.SOPInstanceUID): ds for ds in datasets}


@pytest.fixture
def storescp(tmp_path: Path, archive: Archive) -> Iterator[StoreSCP]:
    """dcmtk's storescp on a free port, registered as the move destination ``STORESCP``."""
    folder = tmp_path / "storescp"
    with running_storescp(folder, DESTINATION) as port:
        add_peer(archive, DESTINATION, "127.0.0.1", port, may_connect=False)
        yield StoreSCP(port, folder)


@dataclass
class Stored:
    study: str
    series: list[str]
    instances: dict[str, Dataset]  # by SOP Instance UID

    def in_series(self, series: str) -> dict[str, Dataset]:
        return {uid: ds for uid, ds in self.instances.items() if ds.SeriesInstanceUID == series}


@pytest.fixture
def study(receiver: ReceiverHandle, archive: Archive) -> Stored:
    """A study of two series of two instances, stored through the receiver."""
    study_uid = generate_uid()
    series = [generate_uid(), generate_uid()]
    instances = [ct_instance(study_uid, s, rows=4) for s in series for _ in range(2)]
    assoc = scu().associate("127.0.0.1", receiver.port, ae_title=CALLED_AE)
    assert assoc.is_established
    statuses = [assoc.send_c_store(ds).Status for ds in instances]
    assoc.release()
    assert statuses == [StoreStatus.SUCCESS] * len(instances)
    return Stored(study_uid, series, {ds.SOPInstanceUID: ds for ds in instances})


def _same(received: dict[str, Dataset], sent: dict[str, Dataset]) -> None:
    assert set(received) == set(sent)
    for uid, ds in received.items():
        assert ds.PixelData == sent[uid].PixelData
        assert ds.SOPClassUID == sent[uid].SOPClassUID


def _identifier(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def _move(port: int, identifier: Dataset, destination: str, model: str) -> list[Dataset]:
    ae = AE(ae_title=CALLING_AE)
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", port, ae_title=CALLED_AE)
    assert assoc.is_established
    responses = [status for status, _ in assoc.send_c_move(identifier, destination, model)]
    assoc.release()
    return responses


def test_move_study_to_storescp(
    receiver: ReceiverHandle, study: Stored, storescp: StoreSCP
) -> None:
    identifier = _identifier("STUDY", StudyInstanceUID=study.study)
    responses = _move(
        receiver.port, identifier, DESTINATION, StudyRootQueryRetrieveInformationModelMove
    )
    assert [r.Status for r in responses] == [RetrieveStatus.PENDING] * 4 + [0]
    assert responses[-1].NumberOfCompletedSuboperations == 4
    _same(storescp.received(4), study.instances)


def test_move_series_to_storescp(
    receiver: ReceiverHandle, study: Stored, storescp: StoreSCP
) -> None:
    identifier = _identifier(
        "SERIES", StudyInstanceUID=study.study, SeriesInstanceUID=study.series[1]
    )
    responses = _move(
        receiver.port, identifier, DESTINATION, StudyRootQueryRetrieveInformationModelMove
    )
    assert responses[-1].Status == RetrieveStatus.SUCCESS
    assert responses[-1].NumberOfCompletedSuboperations == 2
    _same(storescp.received(2), study.in_series(study.series[1]))


def test_move_patient_root_patient_level(
    receiver: ReceiverHandle, study: Stored, storescp: StoreSCP
) -> None:
    identifier = _identifier("PATIENT", PatientID="RECEIVER-TEST")
    responses = _move(
        receiver.port, identifier, DESTINATION, PatientRootQueryRetrieveInformationModelMove
    )
    assert responses[-1].Status == RetrieveStatus.SUCCESS
    _same(storescp.received(4), study.instances)


def test_move_to_unknown_destination(receiver: ReceiverHandle, study: Stored) -> None:
    identifier = _identifier("STUDY", StudyInstanceUID=study.study)
    responses = _move(
        receiver.port, identifier, "NOBODY", StudyRootQueryRetrieveInformationModelMove
    )
    assert [r.Status for r in responses] == [RetrieveStatus.MOVE_DESTINATION_UNKNOWN]


def test_move_without_unique_key_is_refused(
    receiver: ReceiverHandle, study: Stored, storescp: StoreSCP
) -> None:
    identifier = _identifier("STUDY", StudyInstanceUID="")
    responses = _move(
        receiver.port, identifier, DESTINATION, StudyRootQueryRetrieveInformationModelMove
    )
    assert [r.Status for r in responses] == [RetrieveStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS]
    assert "StudyInstanceUID" in responses[0].ErrorComment
    assert list(storescp.folder.iterdir()) == []


def test_move_series_without_study_is_refused(
    receiver: ReceiverHandle, study: Stored, storescp: StoreSCP
) -> None:
    identifier = _identifier("SERIES", SeriesInstanceUID=study.series[0])
    responses = _move(
        receiver.port, identifier, DESTINATION, StudyRootQueryRetrieveInformationModelMove
    )
    assert [r.Status for r in responses] == [RetrieveStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS]


def test_movescu_to_storescp(receiver: ReceiverHandle, study: Stored, storescp: StoreSCP) -> None:
    command = [
        "movescu", "-aet", CALLING_AE, "-aec", CALLED_AE, "-aem", DESTINATION, "-S",
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study.study}",
        "127.0.0.1", str(receiver.port),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=DCMTK_TIMEOUT)
    assert result.returncode == 0, result.stderr
    _same(storescp.received(4), study.instances)


def _get(port: int, identifier: Dataset) -> tuple[list[Dataset], list[Dataset]]:
    """C-GET with a pynetdicom SCU taking the SCP role for CT storage."""
    received: list[Dataset] = []

    def handle_store(event: Event) -> int:
        received.append(event.dataset)
        return int(StoreStatus.SUCCESS)

    ae = AE(ae_title=CALLING_AE)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title=CALLED_AE,
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, handle_store)],
    )
    assert assoc.is_established
    model = StudyRootQueryRetrieveInformationModelGet
    responses = [status for status, _ in assoc.send_c_get(identifier, model)]
    assoc.release()
    return responses, received


def test_get_series_with_pynetdicom(receiver: ReceiverHandle, study: Stored) -> None:
    identifier = _identifier(
        "SERIES", StudyInstanceUID=study.study, SeriesInstanceUID=study.series[0]
    )
    responses, received = _get(receiver.port, identifier)
    assert [r.Status for r in responses] == [RetrieveStatus.PENDING] * 2 + [0]
    _same({ds.SOPInstanceUID: ds for ds in received}, study.in_series(study.series[0]))


def test_get_image_level_uid_list(receiver: ReceiverHandle, study: Stored) -> None:
    wanted = list(study.in_series(study.series[1]))
    identifier = _identifier(
        "IMAGE",
        StudyInstanceUID=study.study,
        SeriesInstanceUID=study.series[1],
        SOPInstanceUID="\\".join(wanted),
    )
    responses, received = _get(receiver.port, identifier)
    assert responses[-1].Status == RetrieveStatus.SUCCESS
    assert sorted(ds.SOPInstanceUID for ds in received) == sorted(wanted)


def test_get_unreadable_file_is_a_failed_sub_operation(
    receiver: ReceiverHandle, study: Stored, archive: Archive
) -> None:
    lost = next(iter(study.in_series(study.series[0])))
    path = archive.storage.local_path(stored(archive)[lost])
    assert path is not None
    path.unlink()
    identifier = _identifier(
        "SERIES", StudyInstanceUID=study.study, SeriesInstanceUID=study.series[0]
    )
    responses, received = _get(receiver.port, identifier)
    final = responses[-1]
    assert final.Status == RetrieveStatus.WARNING_SUB_OPERATIONS_FAILED
    assert final.NumberOfFailedSuboperations == 1
    assert final.NumberOfCompletedSuboperations == 1
    assert len(received) == 1 and received[0].SOPInstanceUID != lost


def test_get_unknown_study_sends_nothing(receiver: ReceiverHandle, study: Stored) -> None:
    responses, received = _get(receiver.port, _identifier("STUDY", StudyInstanceUID="1.2.3"))
    assert [r.Status for r in responses] == [RetrieveStatus.SUCCESS]
    assert received == []


def test_getscu_series(receiver: ReceiverHandle, study: Stored, tmp_path: Path) -> None:
    folder = tmp_path / "getscu"
    folder.mkdir()
    command = [
        "getscu", "-aet", CALLING_AE, "-aec", CALLED_AE, "-S",
        "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study.study}",
        "-k", f"SeriesInstanceUID={study.series[0]}", "-od", str(folder),
        "127.0.0.1", str(receiver.port),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=DCMTK_TIMEOUT)
    assert result.returncode == 0, result.stderr
    received = [pydicom.dcmread(path) for path in folder.iterdir()]
    _same({ds.SOPInstanceUID: ds for ds in received}, study.in_series(study.series[0]))


def test_move_to_peer_without_address(
    receiver: ReceiverHandle, study: Stored, archive: Archive
) -> None:
    add_peer(archive, "NOADDRESS")
    identifier = _identifier("STUDY", StudyInstanceUID=study.study)
    model = StudyRootQueryRetrieveInformationModelMove
    responses = _move(receiver.port, identifier, "NOADDRESS", model)
    assert [r.Status for r in responses] == [RetrieveStatus.MOVE_DESTINATION_UNKNOWN]


def test_destination_contexts_offer_stored_then_uncompressed_syntaxes() -> None:
    matches = [
        Match("1.1", CTImageStorage, JPEG2000Lossless, "a", "9.9"),
        Match("1.2", CTImageStorage, ExplicitVRLittleEndian, "b", "9.9"),
        Match("1.3", MRImageStorage, ImplicitVRLittleEndian, "c", "9.9"),
    ]
    contexts = {str(cx.abstract_syntax): cx.transfer_syntax for cx in destination_contexts(matches)}
    assert contexts == {
        CTImageStorage: [ExplicitVRLittleEndian, JPEG2000Lossless, ImplicitVRLittleEndian],
        MRImageStorage: [ImplicitVRLittleEndian, ExplicitVRLittleEndian],
    }


# -- the audit trail: every DIMSE access, with calling AE, address, studies and outcome


def events(archive: Archive, kind: AuditKind) -> list[dict[str, Any]]:
    archive.audit.flush()
    return read_events(archive.engine, kind=kind)


def test_stores_are_audited_once_per_association(archive: Archive, study: Stored) -> None:
    (stored,) = events(archive, AuditKind.STORE)
    assert (stored["user"], stored["interface"], stored["event_code"]) == (
        CALLING_AE,
        "dimse",
        "110104",
    )
    assert stored["source"].startswith("127.0.0.1:")
    assert stored["studies"] == [study.study]
    assert (stored["outcome"], stored["action"]) == (AuditOutcome.SUCCESS, "C")
    assert "stored=4" in stored["detail"]


def test_a_find_is_audited_with_the_studies_it_answered(
    receiver: ReceiverHandle, archive: Archive, study: Stored
) -> None:
    ae = AE(ae_title=CALLING_AE)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", receiver.port, ae_title=CALLED_AE)
    identifier = _identifier("STUDY", StudyInstanceUID=study.study, PatientName="")
    answers = list(assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind))
    assoc.release()
    assert answers[-1][0].Status == 0
    (query,) = events(archive, AuditKind.QUERY)
    assert (query["user"], query["status"], query["studies"]) == (CALLING_AE, 0, [study.study])
    assert query["detail"] == "C-FIND STUDY StudyInstanceUID"


def test_moves_and_gets_are_audited_refused_or_not(
    receiver: ReceiverHandle, archive: Archive, study: Stored, storescp: StoreSCP
) -> None:
    identifier = _identifier("STUDY", StudyInstanceUID=study.study)
    model = StudyRootQueryRetrieveInformationModelMove
    _move(receiver.port, identifier, DESTINATION, model)
    _move(receiver.port, identifier, "NOBODY", model)
    series = _identifier("SERIES", StudyInstanceUID=study.study, SeriesInstanceUID=study.series[0])
    _get(receiver.port, series)
    got, refused, moved = events(archive, AuditKind.RETRIEVE)  # newest first
    assert (moved["detail"], moved["studies"], moved["outcome"]) == (
        f"C-MOVE 4 instances to {DESTINATION}",
        [study.study],
        AuditOutcome.SUCCESS,
    )
    assert (refused["detail"], refused["status"], refused["outcome"]) == (
        "C-MOVE refused",
        0xA801,
        AuditOutcome.SERIOUS_FAILURE,
    )
    assert (got["detail"], got["studies"]) == ("C-GET 2 instances", [study.study])
    assert {e["user"] for e in (moved, refused, got)} == {CALLING_AE}
