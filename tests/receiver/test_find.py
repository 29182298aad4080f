"""The C-FIND SCP against real files in a real index, queried by pynetdicom and dcmtk findscu.

One loaded archive and one in-process SCP per database kind serve the module's read-only
tests; identifier validation is also tested without a network.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.events import Event

from pacsflow.archive.archive import Archive
from pacsflow.archive.ingest import Source, SourceKind
from pacsflow.archive.remote_aes import add_peer
from pacsflow.receiver.find import (
    FIND_SOP_CLASSES,
    FindStatus,
    handle_find,
    parse_identifier,
)
from pacsflow.receiver.status import RequestFailure
from tests.archive.test_query import synthetic as synthetic_instance
from tests.conftest import SHARED_DATA, migrated_archive

PATIENT_ROOT, STUDY_ROOT = FIND_SOP_CLASSES
CT3_STUDY = "1.2.392.200103.20080913.113635.0.2009.6.22.21.43.10.22941.1"
CT_SMALL_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
MR_SMALL_STUDY = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"
SYNTHETIC_STUDY, SYNTHETIC_SERIES = "1.2.826.0.1.9.1", "1.2.826.0.1.9.1.1"
SYNTHETIC_COUNT = 30
SYNTHETIC_NAME = "Müller^Jürgen"


def real_files() -> list[Path]:
    seg = SHARED_DATA / "dcmqi-seg"
    pydicom_files = [Path(get_testdata_file(name)) for name in ("CT_small.dcm", "MR_small.dcm")]
    return [*sorted((seg / "ct-3slice").glob("*.dcm")), seg / "liver.dcm", *pydicom_files]


def synthetic(number: int) -> BytesIO:
    """One of many small instances of one patient, with a non-ASCII name."""
    return synthetic_instance(
        SYNTHETIC_STUDY,
        SYNTHETIC_SERIES,
        f"{SYNTHETIC_SERIES}.{number}",
        PatientName=SYNTHETIC_NAME,
        PatientID="SYN1",
        StudyDate="20250115",
        Modality="OT",
        InstanceNumber=number,
    )


def start_scp(archive: Archive, handler: Any = handle_find) -> tuple[Any, int]:
    ae = AE(ae_title="PACSFLOW")
    for sop_class in FIND_SOP_CLASSES:
        ae.add_supported_context(sop_class)
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_FIND, handler, [archive])]
    )
    return server, server.server_address[1]


@dataclass(frozen=True)
class Scp:
    archive: Archive
    port: int


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def scp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scp]:
    home = tmp_path_factory.mktemp("find")
    with migrated_archive(request.param, home) as archive:
        for path in real_files():
            with path.open("rb") as stream:
                archive.ingest_stream(stream, Source(SourceKind.IMPORT))
        for number in range(1, SYNTHETIC_COUNT + 1):
            archive.ingest_stream(synthetic(number), Source(SourceKind.IMPORT))
        for caller in ("TESTSCU", "PYNETDICOM", "FINDSCU"):  # ours, pynetdicom's and dcmtk's
            add_peer(archive, caller, all_projects=True)  # may query every study
        server, port = start_scp(archive)
        try:
            yield Scp(archive, port)
        finally:
            server.shutdown()


def identifier(level: str, **keys: Any) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def find(port: int, model: str, query: Dataset) -> tuple[list[Dataset], int, Dataset]:
    """Matches, the final status code and the final status data set."""
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSFLOW")
    assert assoc.is_established
    matches, final = [], Dataset()
    try:
        for status, match in assoc.send_c_find(query, model):
            final = status
            if status.Status in (
                FindStatus.PENDING,
                FindStatus.PENDING_OPTIONAL_KEYS_NOT_SUPPORTED,
            ):
                matches.append(match)
    finally:
        assoc.release()
    return matches, int(final.Status), final


def keywords(ds: Dataset) -> set[str]:
    return {element.keyword for element in ds}


# -- pynetdicom SCU ------------------------------------------------------------------------------


def test_patient_level_with_wildcard_returns_counts_and_exactly_the_requested_keys(
    scp: Scp,
) -> None:
    query = identifier(
        "PATIENT",
        PatientName="JANCT?0*",
        PatientID="",
        PatientSex="",
        NumberOfPatientRelatedStudies="",
        NumberOfPatientRelatedSeries="",
        NumberOfPatientRelatedInstances="",
    )
    matches, status, _ = find(scp.port, PATIENT_ROOT, query)
    assert status == FindStatus.SUCCESS
    assert len(matches) == 1
    match = matches[0]
    assert keywords(match) == {*keywords(query), "SpecificCharacterSet"}
    assert match.SpecificCharacterSet == "ISO_IR 192"
    assert (match.PatientName, match.PatientID, match.PatientSex) == ("JANCT000", "99000", "M")
    counts = (
        match.NumberOfPatientRelatedStudies,
        match.NumberOfPatientRelatedSeries,
        match.NumberOfPatientRelatedInstances,
    )
    assert counts == (1, 2, 4)  # three CT slices and their SEG


def test_patient_root_study_level_matches_a_date_range_under_the_patient(scp: Scp) -> None:
    query = identifier(
        "STUDY", PatientID="99000", StudyDate="20030101-20031231", StudyInstanceUID=""
    )
    matches, status, _ = find(scp.port, PATIENT_ROOT, query)
    assert status == FindStatus.SUCCESS
    assert [m.StudyInstanceUID for m in matches] == [CT3_STUDY]
    # PatientID is text (LO), so the character set comes along.
    assert keywords(matches[0]) == {*keywords(query), "SpecificCharacterSet"}
    query.StudyDate = "20040101-"
    matches, _, _ = find(scp.port, PATIENT_ROOT, query)
    assert matches == []


def test_study_level_person_name_is_case_insensitive_and_unique_key_always_returned(
    scp: Scp,
) -> None:
    query = identifier("STUDY", PatientName="compressedsamples^?t1", ModalitiesInStudy="")
    matches, status, _ = find(scp.port, STUDY_ROOT, query)
    assert status == FindStatus.SUCCESS
    assert [m.StudyInstanceUID for m in matches] == [CT_SMALL_STUDY]
    assert matches[0].ModalitiesInStudy == "CT"
    assert str(matches[0].PatientName) == "CompressedSamples^CT1"


def test_study_level_uid_list_and_universal_return_keys(scp: Scp) -> None:
    query = identifier(
        "STUDY",
        StudyInstanceUID=[CT_SMALL_STUDY, MR_SMALL_STUDY],
        StudyDate="",
        NumberOfStudyRelatedSeries="",
        NumberOfStudyRelatedInstances="",
    )
    matches, status, _ = find(scp.port, STUDY_ROOT, query)
    assert status == FindStatus.SUCCESS
    by_uid = {m.StudyInstanceUID: m for m in matches}
    assert set(by_uid) == {CT_SMALL_STUDY, MR_SMALL_STUDY}
    assert by_uid[MR_SMALL_STUDY].StudyDate == "20040826"
    assert by_uid[MR_SMALL_STUDY].NumberOfStudyRelatedInstances == 1


def test_series_level_needs_the_study_and_returns_series_keys(scp: Scp) -> None:
    query = identifier(
        "SERIES",
        StudyInstanceUID=CT3_STUDY,
        Modality="",
        SeriesInstanceUID="",
        NumberOfSeriesRelatedInstances="",
    )
    matches, status, _ = find(scp.port, STUDY_ROOT, query)
    assert status == FindStatus.SUCCESS
    counts = sorted((m.Modality, m.NumberOfSeriesRelatedInstances) for m in matches)
    assert counts == [("CT", 3), ("SEG", 1)]
    query.Modality = "S*"
    matches, _, _ = find(scp.port, STUDY_ROOT, query)
    assert [m.Modality for m in matches] == ["SEG"]


def test_image_level_returns_index_columns_and_stored_attributes(scp: Scp) -> None:
    ct = dcmread(real_files()[0], stop_before_pixels=True)
    query = identifier(
        "IMAGE",
        PatientID=ct.PatientID,
        StudyInstanceUID=CT3_STUDY,
        SeriesInstanceUID=ct.SeriesInstanceUID,
        InstanceNumber="",
        ImagePositionPatient="",  # not an index column: from the stored JSON
    )
    query.add_new(0x7FE00010, "OB", b"")  # PixelData: bulk data, returned empty
    matches, status, _ = find(scp.port, PATIENT_ROOT, query)
    assert status == FindStatus.SUCCESS
    assert len(matches) == 3
    first = next(m for m in matches if m.SOPInstanceUID == ct.SOPInstanceUID)
    assert first.InstanceNumber == ct.InstanceNumber
    assert [float(v) for v in first.ImagePositionPatient] == [
        float(v) for v in ct.ImagePositionPatient
    ]
    assert "PixelData" in first and not first.PixelData
    assert first.SpecificCharacterSet == "ISO_IR 192"  # PatientID is text


def test_non_ascii_names_match_and_come_back_in_utf8(scp: Scp) -> None:
    query = identifier("STUDY", PatientName="MÜLLER*", StudyInstanceUID="")
    query.SpecificCharacterSet = "ISO_IR 192"
    matches, status, _ = find(scp.port, STUDY_ROOT, query)
    assert status == FindStatus.SUCCESS
    assert [str(m.PatientName) for m in matches] == [SYNTHETIC_NAME]


def test_a_value_the_index_cannot_match_is_a_return_key_with_a_warning(scp: Scp) -> None:
    query = identifier("STUDY", StudyInstanceUID=CT_SMALL_STUDY, InstitutionName="anything")
    ae = AE()
    ae.add_requested_context(STUDY_ROOT)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="PACSFLOW")
    try:
        statuses = [status.Status for status, _ in assoc.send_c_find(query, STUDY_ROOT)]
    finally:
        assoc.release()
    assert statuses == [FindStatus.PENDING_OPTIONAL_KEYS_NOT_SUPPORTED, FindStatus.SUCCESS]


@pytest.mark.parametrize(
    ("model", "query", "status", "comment"),
    [
        (STUDY_ROOT, identifier("SERIES", Modality="CT"), 0xA900, "StudyInstanceUID"),
        (PATIENT_ROOT, identifier("STUDY", StudyInstanceUID=""), 0xA900, "PatientID"),
        (
            STUDY_ROOT,
            identifier("IMAGE", StudyInstanceUID=CT3_STUDY, SeriesInstanceUID="1.2.*"),
            0xA900,
            "SeriesInstanceUID",
        ),
        (STUDY_ROOT, identifier("PATIENT", PatientID=""), 0xA900, "QueryRetrieveLevel"),
        (STUDY_ROOT, identifier("WORKLIST"), 0xC000, "QueryRetrieveLevel"),
        (STUDY_ROOT, identifier("STUDY", StudyDate="20251231-20250101"), 0xA900, "StudyDate"),
        (STUDY_ROOT, identifier("STUDY", StudyInstanceUID="1.2.x"), 0xA900, "StudyInstanceUID"),
        (STUDY_ROOT, identifier("STUDY", Modality="CT"), 0xA900, "Modality"),
    ],
)
def test_refused_identifiers_fail_with_a_comment_naming_the_attribute(
    scp: Scp, model: str, query: Dataset, status: int, comment: str
) -> None:
    matches, final, response = find(scp.port, model, query)
    assert matches == []
    assert final == status
    assert response.ErrorComment.startswith(comment) or comment in response.ErrorComment
    assert len(response.ErrorComment) <= 64


def test_cancel_ends_a_long_answer_with_cancel_status(scp: Scp) -> None:
    def slow(event: Event, archive: Archive) -> Iterator[Any]:
        for response in handle_find(event, archive):
            time.sleep(0.05)  # give the C-CANCEL time to arrive mid-answer
            yield response

    server, port = start_scp(scp.archive, slow)
    try:
        ae = AE()
        ae.add_requested_context(STUDY_ROOT)
        assoc = ae.associate("127.0.0.1", port, ae_title="PACSFLOW")
        query = identifier(
            "IMAGE", StudyInstanceUID=SYNTHETIC_STUDY, SeriesInstanceUID=SYNTHETIC_SERIES
        )
        try:
            responses = assoc.send_c_find(query, STUDY_ROOT, msg_id=7)
            first, _ = next(responses)
            assert first.Status == FindStatus.PENDING
            assoc.send_c_cancel(7, query_model=STUDY_ROOT)
            statuses = [status.Status for status, _ in responses]
        finally:
            assoc.release()
    finally:
        server.shutdown()
    assert statuses[-1] == FindStatus.CANCEL
    assert len(statuses) < SYNTHETIC_COUNT


def test_long_answers_are_read_a_page_at_a_time(scp: Scp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pacsflow.receiver.find.PAGE_SIZE", 7)
    query = identifier(
        "IMAGE",
        StudyInstanceUID=SYNTHETIC_STUDY,
        SeriesInstanceUID=SYNTHETIC_SERIES,
        InstanceNumber="",
    )
    matches, status, _ = find(scp.port, STUDY_ROOT, query)
    assert status == FindStatus.SUCCESS
    assert sorted(m.InstanceNumber for m in matches) == list(range(1, SYNTHETIC_COUNT + 1))


# -- dcmtk findscu -------------------------------------------------------------------------------


def findscu(port: int, model_flag: str, keys: list[str], out: Path) -> list[Dataset]:
    out.mkdir()
    command = ["findscu", model_flag, "-aec", "PACSFLOW", "-X", "-od", str(out)]
    for key in keys:
        command += ["-k", key]
    result = subprocess.run(
        [*command, "127.0.0.1", str(port)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return [dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]


def test_findscu_study_root_study_level(scp: Scp, tmp_path: Path) -> None:
    keys = ["QueryRetrieveLevel=STUDY", "PatientName=Compressed*", "StudyInstanceUID", "StudyDate"]
    matches = findscu(scp.port, "-S", keys, tmp_path / "out")
    assert sorted(m.StudyInstanceUID for m in matches) == sorted([CT_SMALL_STUDY, MR_SMALL_STUDY])
    assert all(m.QueryRetrieveLevel == "STUDY" for m in matches)


def test_findscu_patient_root_patient_level_with_counts(scp: Scp, tmp_path: Path) -> None:
    keys = [
        "QueryRetrieveLevel=PATIENT",
        "PatientID=SYN1",
        "PatientName",
        "NumberOfPatientRelatedInstances",
    ]
    matches = findscu(scp.port, "-P", keys, tmp_path / "out")
    assert len(matches) == 1
    assert str(matches[0].PatientName) == SYNTHETIC_NAME
    assert matches[0].NumberOfPatientRelatedInstances == SYNTHETIC_COUNT


def test_findscu_refused_query_reports_the_status(scp: Scp, tmp_path: Path) -> None:
    keys = ["QueryRetrieveLevel=SERIES", "SeriesInstanceUID"]
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run(
        ["findscu", "-v", "-S", "-aec", "PACSFLOW", *[a for k in keys for a in ("-k", k)]]
        + ["127.0.0.1", str(scp.port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "DataSetDoesNotMatchSOPClass" in result.stdout + result.stderr  # dcmtk's 0xA900


# -- identifier validation without a network -----------------------------------------------------


def test_unknown_model_is_refused() -> None:
    with pytest.raises(RequestFailure) as caught:
        parse_identifier("1.2.3", identifier("STUDY"))
    assert caught.value.status == FindStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS


def test_sequences_are_return_keys_and_sequence_matching_is_not_performed() -> None:
    item = Dataset()
    item.CodeValue = "123"
    query = identifier("STUDY", ProcedureCodeSequence=[item], StudyInstanceUID="")
    request = parse_identifier(STUDY_ROOT, query)
    assert request.pending_status == FindStatus.PENDING_OPTIONAL_KEYS_NOT_SUPPORTED
    assert 0x00081032 in request.returned  # ProcedureCodeSequence


def test_private_keys_and_group_lengths_are_neither_matched_nor_returned() -> None:
    query = identifier("STUDY", StudyInstanceUID="")
    query.add_new(0x00090010, "LO", "ACME")
    query.add_new(0x00091001, "LO", "x")
    request = parse_identifier(STUDY_ROOT, query)
    assert set(request.returned) == {0x0020000D}
