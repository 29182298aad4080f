"""QIDO-RS over HTTP on real files: the three levels, every kind of matching, paging,
includefield, media types and errors, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from pydicom.data import get_testdata_file
from werkzeug.test import TestResponse

from pacsflow.archive.ingest import Source, SourceKind
from pacsflow.archive.query import MORE_RESULTS_WARNING
from tests.conftest import ADMIN_PASSWORD, migrated_archive, opened_app

ROOT = "http://localhost/dicomweb"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}

# The studies the corpus below holds, in the order they are stored.
S1 = "1.2.392.200103.20080913.113635.0.2009.6.22.21.43.10.22941.1"  # JANCT000: CT + 2 SEG
S2 = "1.3.6.1.4.1.9590.100.1.2.96328687310426543129572151154132284399"  # PAT1: CT + RTSTRUCT
S3 = "1.3.6.1.4.1.14519.5.2.1.2744.7002.150059977302243314164020079415"  # QIN: SEG + SR
S4 = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"  # CT_small
S5 = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"  # MR_small
S6 = "1.2.826.0.1.3680043.8.498.12406831542731051035295345080039845114"  # SC_rgb
S7 = "1.22.333.4.555555.6.7777777777777777777777777777"  # rtplan
ALL_STUDIES = [S1, S2, S3, S4, S5, S6, S7]
S1_CT = "1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1"
CT_SOP = "1.2.392.200103.20080913.113635.2.2009.6.22.21.43.10.2343{}.1"


def corpus(shared_data: Path) -> list[Path]:
    seg = shared_data / "dcmqi-seg"
    phantom = shared_data / "ibsi-ct-phantom"
    tid1500 = shared_data / "tid1500-example"
    pydicom_files = ["CT_small.dcm", "MR_small.dcm", "SC_rgb.dcm", "rtplan.dcm"]
    return [
        *(seg / "ct-3slice" / f"0{n}.dcm" for n in (1, 2, 3)),
        seg / "liver.dcm",
        seg / "partial_overlaps.dcm",
        *(phantom / "image" / f"DCM_IMG_0000{n}.dcm" for n in (0, 1, 2)),
        phantom / "rtstruct" / "DCM_RS_00060.dcm",
        tid1500 / "seg.dcm",
        tid1500 / "sr.dcm",
        *(Path(str(get_testdata_file(name))) for name in pydicom_files),
    ]


@dataclass(frozen=True)
class Server:
    client: FlaskClient

    def get(self, path: str, headers: dict[str, str] | None = None) -> TestResponse:
        return self.client.get(f"/dicomweb{path}", headers={**AUTH, **(headers or {})})

    def json(self, path: str) -> list[dict[str, Any]]:
        response = self.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "application/dicom+json"
        result: list[dict[str, Any]] = response.get_json()
        return result

    def uids(self, path: str, tag: str) -> list[str]:
        return [value(match, tag) for match in self.json(path)]


def value(match: dict[str, Any], tag: str) -> Any:
    return match[tag]["Value"][0]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, shared_data: Path
) -> Iterator[Server]:
    """One app per database over the corpus, shared by this module's read-only tests."""
    home = tmp_path_factory.mktemp("qido")
    with migrated_archive(request.param, home) as archive:
        for path in corpus(shared_data):
            with open(path, "rb") as f:
                archive.ingest_stream(f, Source(SourceKind.IMPORT))
        with opened_app(archive.settings) as app:
            yield Server(app.test_client())


# -- studies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ALL_STUDIES),
        ("?PatientName=", ALL_STUDIES),  # universal matching
        ("?PatientID=99000", [S1]),
        ("?00080050=03086212", [S1]),
        ("?PatientName=compressed*", [S4, S5]),
        ("?PatientName=LESTRADE^G", [S6]),
        ("?PatientID=?CT1", [S4]),
        ("?PatientID=1ct1", []),  # case-sensitive
        ("?PatientName=ct", []),
        ("?PatientName=ct&fuzzymatching=true", [S4]),
        ("?PatientName=sampl&fuzzymatching=true", []),
        ("?ReferringPhysicianName=moriarty*", [S6]),
        (f"?StudyInstanceUID={S1},{S4}", [S1, S4]),
        (f"?StudyInstanceUID={S7}%5C{S2}", [S2, S7]),
        ("?StudyDate=20030417", [S1]),
        ("?StudyDate=20030101-20031231", [S1, S7]),
        ("?StudyDate=-20031231", [S1, S3, S7]),
        ("?StudyDate=20040101-", [S4, S5, S6]),
        ("?StudyTime=1000-1200", [S1, S3, S6]),
        ("?StudyTime=114243.2-114243.3", [S3]),
        ("?StudyDate=20040101-&StudyTime=-1200", [S4, S6]),
        ("?ModalitiesInStudy=SEG", [S1, S3]),
        ("?ModalitiesInStudy=RTSTRUCT,SR", [S2, S3]),
        ("?ModalitiesInStudy=RT*", [S2, S7]),
        ("?ModalitiesInStudy=OT", [S6]),
        ("?StudyDescription=*", ALL_STUDIES),
    ],
)
def test_search_for_studies(server: Server, query: str, expected: list[str]) -> None:
    assert server.uids(f"/studies{query}", "0020000D") == expected


def test_study_results_carry_the_default_attributes_and_counts(server: Server) -> None:
    s1, s2, s3, s4, *_ = server.json("/studies")
    assert s1 == {
        "00080005": {"vr": "CS", "Value": ["ISO_IR 192"]},
        "00080020": {"vr": "DA", "Value": ["20030417"]},
        "00080030": {"vr": "TM", "Value": ["104607"]},
        "00080050": {"vr": "SH", "Value": ["03086212"]},
        "00080056": {"vr": "CS", "Value": ["ONLINE"]},
        "00080061": {"vr": "CS", "Value": ["CT", "SEG"]},
        "00080090": {"vr": "PN"},
        "00081030": {"vr": "LO"},
        "00081190": {"vr": "UR", "Value": [f"{ROOT}/studies/{S1}"]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "JANCT000"}]},
        "00100020": {"vr": "LO", "Value": ["99000"]},
        "00100030": {"vr": "DA"},
        "00100040": {"vr": "CS", "Value": ["M"]},
        "0020000D": {"vr": "UI", "Value": [S1]},
        "00200010": {"vr": "SH", "Value": ["1"]},
        "00201206": {"vr": "IS", "Value": [3]},
        "00201208": {"vr": "IS", "Value": [5]},
    }
    assert (value(s2, "00201206"), value(s2, "00201208")) == (2, 4)
    assert (value(s3, "00201206"), value(s3, "00201208")) == (2, 2)
    assert s2["00080061"]["Value"] == ["CT", "RTSTRUCT"]
    assert s4["00080201"] == {"vr": "SH", "Value": ["-0500"]}  # TimezoneOffsetFromUTC


def test_includefield_at_study_level_reads_the_first_instance(server: Server) -> None:
    # OHIF asks for StudyDescription and Modality this way.
    s1, s2, *_ = server.json("/studies?includefield=00081030,00080060&includefield=Manufacturer")
    assert s1["00080060"] == {"vr": "CS", "Value": ["CT"]}
    assert s1["00080070"] == {"vr": "LO", "Value": ["GE MEDICAL SYSTEMS"]}
    assert s2["00080070"] == {"vr": "LO", "Value": ["CMS, Inc."]}
    assert s1["00081030"] == {"vr": "LO"}  # a column, not the instance's


def test_includefield_all_at_study_level(server: Server) -> None:
    (s3,) = server.json(f"/studies?StudyInstanceUID={S3}&includefield=all")
    assert s3["00101010"] == {"vr": "AS", "Value": ["048Y"]}  # PatientAge, from the JSON
    assert s3["00080005"] == {"vr": "CS", "Value": ["ISO_IR 192"]}
    assert value(s3, "00201208") == 2 and value(s3, "00080056") == "ONLINE"
    assert not any(key.endswith("0000") for key in s3)  # no group lengths
    assert "7FE00010" not in s3 and not any("BulkDataURI" in e for e in s3.values())


# -- series ------------------------------------------------------------------------------------


def test_series_of_a_study(server: Server) -> None:
    series = server.json(f"/studies/{S1}/series")
    assert [value(s, "00080060") for s in series] == ["CT", "SEG", "SEG"]
    assert [value(s, "00201209") for s in series] == [3, 1, 1]
    assert [value(s, "00200011") for s in series] == [2, 1, 100]
    ct = series[0]
    assert value(ct, "0020000D") == S1
    assert value(ct, "0020000E") == S1_CT
    assert value(ct, "00081190") == f"{ROOT}/studies/{S1}/series/{S1_CT}"
    assert ct["0008103E"] == {"vr": "LO"}
    assert value(series[1], "0008103E") == "Liver Segmentation"
    assert set(ct) >= {"00080005", "00400244", "00400245", "00180015"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?Modality=SEG", [S1, S1, S3]),
        ("?Modality=S*", [S1, S1, S3, S3]),
        ("?Modality=seg", []),
        ("?SeriesNumber=100", [S1]),
        ("?SeriesDescription=*Segmentation", [S1, S1]),
        ("?SeriesDescription=tumor ???????????? - User2*", [S3, S3]),
        ("?BodyPartExamined=HEADNECK", [S3]),
        ("?PatientName=jan*", [S1, S1, S1]),  # a study attribute
        ("?StudyDate=19860311&Modality=SR", [S3]),
        ("?ModalitiesInStudy=RTSTRUCT", [S2, S2]),
        (f"?SeriesInstanceUID={S1_CT}", [S1]),
    ],
)
def test_search_for_all_series(server: Server, query: str, expected: list[str]) -> None:
    assert server.uids(f"/series{query}", "0020000D") == expected


def test_series_results_return_matched_study_attributes(server: Server) -> None:
    series = server.json("/series?PatientName=jan*&StudyDate=20030101-&limit=1")
    assert series[0]["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "JANCT000"}]}
    assert series[0]["00080020"] == {"vr": "DA", "Value": ["20030417"]}


def test_includefield_at_series_level(server: Server) -> None:
    (sr,) = server.json(f"/studies/{S3}/series?Modality=SR&includefield=00080070,PatientAge")
    assert sr["00101010"] == {"vr": "AS", "Value": ["048Y"]}
    assert sr["00080070"] == {"vr": "LO"}  # present and empty in the file
    (liver,) = server.json("/series?SeriesNumber=1&Modality=SEG&includefield=all")
    assert value(liver, "00080070") == "QIICR"
    assert value(liver, "00201209") == 1
    assert "7FE00010" not in liver


# -- instances ---------------------------------------------------------------------------------


def test_instances_of_a_series(server: Server) -> None:
    instances = server.json(f"/studies/{S1}/series/{S1_CT}/instances")
    assert [value(i, "00080018") for i in instances] == [CT_SOP.format(n) for n in (1, 2, 3)]
    first = instances[0]
    assert value(first, "00200013") == 1
    assert (value(first, "00280010"), value(first, "00280011"), value(first, "00280100")) == (
        512,
        512,
        16,
    )
    assert first["00280008"] == {"vr": "IS"}  # NumberOfFrames absent
    assert value(first, "00080016") == "1.2.840.10008.5.1.4.1.1.2"
    assert value(first, "00080056") == "ONLINE"
    assert value(first, "0020000D") == S1 and value(first, "0020000E") == S1_CT
    assert value(first, "00081190") == (
        f"{ROOT}/studies/{S1}/series/{S1_CT}/instances/{CT_SOP.format(1)}"
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/studies/{S1}/instances", 5),
        (f"/studies/{S1}/instances?Modality=SEG", 2),
        (f"/studies/{S1}/instances?NumberOfFrames=7", 1),
        ("/instances", 15),
        ("/instances?Modality=SEG&PatientID=99000", 2),
        ("/instances?SOPClassUID=1.2.840.10008.5.1.4.1.1.66.4", 3),
        ("/instances?InstanceNumber=42", 1),
        ("/instances?Rows=512&Columns=512", 5),
        ("/instances?BitsAllocated=8", 1),
        ("/instances?StudyDate=-19991231&SeriesDescription=tumor*", 2),
        (f"/instances?SOPInstanceUID={CT_SOP.format(1)},{CT_SOP.format(3)},1.2.3", 2),
        (f"/studies/{S2}/series/{S1_CT}/instances", 0),
    ],
)
def test_search_for_instances(server: Server, path: str, expected: int) -> None:
    assert len(server.json(path)) == expected


def test_instance_results_return_matched_series_and_study_attributes(server: Server) -> None:
    seg = server.json("/instances?Modality=SEG&PatientID=99000")
    assert [value(i, "00080060") for i in seg] == ["SEG", "SEG"]
    assert [value(i, "00100020") for i in seg] == ["99000", "99000"]
    assert [value(i, "0020000D") for i in seg] == [S1, S1]
    assert [value(i, "00280008") for i in seg] == [3, 7]


def test_includefield_at_instance_level(server: Server) -> None:
    (ct,) = server.json(f"/instances?SOPInstanceUID={CT_SOP.format(2)}&includefield=all")
    assert value(ct, "00180050") == 1.25  # SliceThickness, DS as a number
    assert value(ct, "00200013") == 2
    assert "7FE00010" not in ct
    (ct,) = server.json(
        f"/instances?SOPInstanceUID={CT_SOP.format(2)}&includefield=7FE00010,ImagePositionPatient"
    )
    assert ct["7FE00010"]["BulkDataURI"] == (
        f"{ROOT}/studies/{S1}/series/{S1_CT}/instances/{CT_SOP.format(2)}/bulkdata/7FE00010"
    )
    assert ct["00200032"]["vr"] == "DS"


# -- paging ------------------------------------------------------------------------------------


def test_limit_cuts_with_a_warning_and_offset_pages(server: Server) -> None:
    response = server.get("/studies?limit=3")
    assert [value(m, "0020000D") for m in response.get_json()] == ALL_STUDIES[:3]
    assert response.headers.getlist("Warning") == [MORE_RESULTS_WARNING]
    assert MORE_RESULTS_WARNING == (
        '299 pacsflow: "There are additional results that can be requested"'
    )
    response = server.get("/studies?limit=3&offset=3")
    assert [value(m, "0020000D") for m in response.get_json()] == ALL_STUDIES[3:6]
    assert "Warning" in response.headers
    response = server.get("/studies?limit=3&offset=6")
    assert [value(m, "0020000D") for m in response.get_json()] == ALL_STUDIES[6:]
    assert "Warning" not in response.headers
    response = server.get("/studies?limit=7")
    assert len(response.get_json()) == 7 and "Warning" not in response.headers
    assert server.json("/studies?offset=100") == []
    assert server.json("/instances?limit=0") == []


def test_series_and_instances_page_too(server: Server) -> None:
    response = server.get(f"/studies/{S1}/instances?limit=2&offset=2")
    assert [value(i, "00080018") for i in response.get_json()] == [
        CT_SOP.format(3),
        server.json(f"/studies/{S1}/instances?NumberOfFrames=3")[0]["00080018"]["Value"][0],
    ]
    assert "Warning" in response.headers
    response = server.get("/series?limit=100")
    assert len(response.get_json()) == 11 and "Warning" not in response.headers


# -- media types and errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "mimetype"),
    [
        ("application/dicom+json", "application/dicom+json"),
        ("*/*", "application/dicom+json"),
        ("application/json", "application/json"),
        ("text/html, application/json;q=0.5", "application/json"),
        ("", "application/dicom+json"),
    ],
)
def test_accepted_media_types(server: Server, accept: str, mimetype: str) -> None:
    response = server.get("/studies?limit=1", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.mimetype == mimetype


@pytest.mark.parametrize(
    "accept", ["text/html", 'multipart/related; type="application/dicom+xml"', "application/xml"]
)
def test_other_media_types_are_not_acceptable(server: Server, accept: str) -> None:
    response = server.get("/studies", headers={"Accept": accept})
    assert response.status_code == 406
    assert "application/dicom+json" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/studies?Foo=1", "Foo"),
        ("/studies?Modality=CT", "Modality"),
        ("/studies?StudyDate=2003", "StudyDate"),
        ("/studies?StudyDate=20031231-20030101", "StudyDate"),
        ("/studies?StudyTime=2400", "StudyTime"),
        ("/studies?StudyInstanceUID=1.2.x", "StudyInstanceUID"),
        ("/studies?limit=-1", "limit"),
        ("/studies?offset=x", "offset"),
        ("/studies?includefield=NotAKeyword", "NotAKeyword"),
        ("/studies?fuzzymatching=1", "fuzzymatching"),
        ("/series?SOPInstanceUID=1.2.3", "SOPInstanceUID"),
        ("/series?SeriesNumber=x", "SeriesNumber"),
        ("/studies/1.2.abc/series", "StudyInstanceUID"),
        (f"/studies/{S1}/series/abc/instances", "SeriesInstanceUID"),
        ("/instances?Rows=big", "Rows"),
        ("/instances?NumberOfFrames=1&NumberOfFrames=2", "NumberOfFrames"),
    ],
)
def test_invalid_queries_are_refused_naming_the_parameter(
    server: Server, path: str, named: str
) -> None:
    response = server.get(path)
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == 400
    assert named in body["error"]


def test_searching_needs_a_login(server: Server) -> None:
    assert server.client.get("/dicomweb/studies").status_code == 401
    assert server.client.get("/dicomweb/instances").status_code == 401


def test_emptyvaluematching_is_reported_as_unsupported(server: Server) -> None:
    response = server.get("/studies?emptyvaluematching=true&limit=7")
    assert response.status_code == 200
    assert response.headers.getlist("Warning") == [
        '299 pacsflow: "The emptyvaluematching parameter is not supported. '
        'Empty Value Matching has not been performed."'
    ]
