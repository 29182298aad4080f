"""Series documents from the DICOM JSON pacsflow's metadata endpoint serves, on real data."""

from __future__ import annotations

import copy
import json
import math
import random
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.data.data_manager import DATA_ROOT, external_data_sources
from pydicom.dataelem import DataElement
from pydicom.uid import generate_uid

from pacsflow.archive.dicomjson import dicom_json, instance_path
from pacsflow.operators.radiomics.features import RegionFeatures
from pacsflow.operators.radiomics.report import measurement_report
from pacsflow.search.document import (
    MAX_ITEMS,
    MAX_ITEMS_TOTAL,
    MAX_VALUES,
    PN_PARTS,
    annotation_labels,
    document_field_type,
    radiomics_values,
    series_document,
)
from pacsflow.search.model import FIELDS, FieldType
from tests.conftest import SHARED_DATA
from tests.operators.radiomics.test_report import ct_3slice_volume, seg_regions

DCMQI = SHARED_DATA / "dcmqi-seg"
CT_PHANTOM = SHARED_DATA / "ibsi-ct-phantom"
TID1500 = SHARED_DATA / "tid1500-example"


def metadata(datasets: list[Dataset]) -> list[dict[str, Any]]:
    """The series' DICOM JSON as ``GET .../series/{uid}/metadata`` answers it."""
    return [
        json.loads(
            json.dumps(
                dicom_json(
                    ds,
                    instance_path(
                        str(ds.get("StudyInstanceUID", "")),
                        str(ds.get("SeriesInstanceUID", "")),
                        str(ds.get("SOPInstanceUID", "")),
                    ),
                )
            )
        )
        for ds in datasets
    ]


def read(*patterns: str) -> list[Dataset]:
    paths = [path for pattern in patterns for path in sorted(SHARED_DATA.glob(pattern))]
    assert paths, patterns
    return [pydicom.dcmread(path) for path in paths]


def document_of(*patterns: str, **kwargs: Any) -> dict[str, Any]:
    document = series_document(metadata(read(*patterns)), **kwargs)
    json.dumps(document, allow_nan=False)  # plain JSON, nothing a backend could choke on
    assert set(document) <= set(FIELDS)
    return document


def slice_position(ds: Dataset) -> float:
    """Position along the slice normal, computed with numpy from pydicom's values."""
    orientation = np.array(ds.ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    return float(np.dot(np.array(ds.ImagePositionPatient, dtype=float), normal))


def leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every field, list elements under their list's path."""
    if isinstance(value, list):
        for item in value:
            yield from leaves(item, path)
    elif isinstance(value, dict) and not _is_person_name(value):
        yield path, value
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}" if path else key)
    else:
        yield path, value


def _is_person_name(value: dict[str, Any]) -> bool:
    return "Alphabetic" in value and set(value) <= set(PN_PARTS)


def assert_typed_as_declared(document: dict[str, Any]) -> None:
    """Every value has the type document_field_type gives its path (or is a kept string)."""
    for path, value in leaves(document, ""):
        if not path:
            continue
        field_type = document_field_type(path)
        assert field_type is not None, path
        if field_type is FieldType.OBJECT:
            assert isinstance(value, dict), path
        elif field_type is FieldType.PERSON_NAME:
            assert isinstance(value, dict) and set(value) <= set(PN_PARTS), path
            assert all(isinstance(part, str) and part for part in value.values()), path
        elif field_type is FieldType.NUMBER:
            assert isinstance(value, int | float | str) and not isinstance(value, bool), path
            if isinstance(value, float):
                assert math.isfinite(value), path
        else:
            assert isinstance(value, str) and value, path
        if field_type is FieldType.DATE and path in FIELDS:
            datetime.strptime(value, "%Y-%m-%d")
        if field_type is FieldType.DATETIME and path in FIELDS:
            datetime.fromisoformat(value)


# ---------------------------------------------------------------------------- CT


def test_ct_phantom_series() -> None:
    slices = read("ibsi-ct-phantom/image/*.dcm")
    assert len(slices) == 60
    document = series_document(metadata(slices))
    json.dumps(document, allow_nan=False)
    assert_typed_as_declared(document)

    assert document["NumberOfInstances"] == 60
    assert document["SeriesInstanceUID"] == slices[0].SeriesInstanceUID
    assert document["Modality"] == "CT"
    assert document["ModalitiesInStudy"] == ["CT"]
    assert document["SOPClassUIDs"] == ["1.2.840.10008.5.1.4.1.1.2"]
    assert document["PatientName"] == {"Alphabetic": "PAT1", "FamilyName": "PAT1"}
    positions = [slice_position(ds) for ds in slices]
    assert document["SlicePositionMin"] == pytest.approx(min(positions))
    assert document["SlicePositionMax"] == pytest.approx(max(positions))
    assert document["SlicePositionMax"] - document["SlicePositionMin"] == pytest.approx(59 * 3)

    # the representative instance is the middle one by Instance Number
    numbers = sorted(int(ds.InstanceNumber) for ds in slices)
    tags = document["tags"]
    assert tags["InstanceNumber"] == numbers[29]
    assert tags["SliceThickness"] == 3.0
    assert tags["Rows"] == 201 and isinstance(tags["Rows"], int)
    assert tags["PixelSpacing"] == pytest.approx([0.977, 0.977])
    assert tags["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert tags["InstanceCreationDate"] == "2016-08-04"
    assert tags["InstanceCreationTime"].startswith("12:19:")
    assert "PixelData" not in tags and "7FE00010" not in tags
    # empty type 2 elements have no value to search
    assert "StudyDate" not in tags and "StudyDate" not in document


def test_ct_3slice_dates_and_numbers() -> None:
    slices = read("dcmqi-seg/ct-3slice/*.dcm")
    document = series_document(metadata(slices))
    assert_typed_as_declared(document)
    assert document["StudyDate"] == "2003-04-17"
    assert document["SeriesDate"] == "2003-04-17"
    # no Timezone Offset From UTC: the local time as it is, naive (no "Z")
    assert document["StudyDateTime"] == "2003-04-17T10:46:07.000000"
    assert document["AcquisitionDateTimeMin"] == "2003-04-17T10:50:28.000000"
    assert document["AcquisitionDateTimeMax"] == "2003-04-17T10:50:28.000000"
    assert document["SeriesNumber"] == 2
    assert document["AccessionNumber"] == "03086212"  # a keyword keeps its leading zero
    assert document["PatientSex"] == "M"
    assert document["Manufacturer"] == "GE MEDICAL SYSTEMS"
    positions = [slice_position(ds) for ds in slices]
    assert document["SlicePositionMin"] == pytest.approx(min(positions))
    assert document["SlicePositionMax"] == pytest.approx(max(positions))


def test_representative_does_not_depend_on_order() -> None:
    instances = metadata(read("ibsi-ct-phantom/image/*.dcm"))
    shuffled = list(instances)
    random.Random(6).shuffle(shuffled)
    assert series_document(shuffled) == series_document(instances)


def test_pydicom_to_json_dict_with_bulk_data_handler() -> None:
    """Another server's DICOM JSON, made by pydicom with its own bulk data threshold."""
    slices = read("dcmqi-seg/ct-3slice/*.dcm")

    def uri(element: DataElement) -> str:
        return f"bulkdata/{element.tag:08X}"

    instances = [
        ds.to_json_dict(bulk_data_threshold=64, bulk_data_element_handler=uri) for ds in slices
    ]
    assert all("BulkDataURI" in instance["7FE00010"] for instance in instances)
    assert series_document(instances) == series_document(metadata(slices))


# ------------------------------------------------------------------ SEG, RTSTRUCT


def test_seg_labels_nested_sequences_and_frame_positions() -> None:
    (seg,) = read("dcmqi-seg/partial_overlaps.dcm")
    document = series_document(metadata([seg]))
    assert_typed_as_declared(document)
    assert document["AnnotationLabels"] == sorted(s.SegmentLabel for s in seg.SegmentSequence)
    assert len(document["AnnotationLabels"]) == 5

    segments = document["tags"]["SegmentSequence"]
    assert [s["SegmentNumber"] for s in segments] == [1, 2, 3, 4, 5]
    category = segments[0]["SegmentedPropertyCategoryCodeSequence"][0]
    expected = seg.SegmentSequence[0].SegmentedPropertyCategoryCodeSequence[0]
    assert category["CodeValue"] == expected.CodeValue
    assert category["CodingSchemeDesignator"] == expected.CodingSchemeDesignator

    orientation = seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
    positions = []
    for frame in seg.PerFrameFunctionalGroupsSequence:
        frame.ImagePositionPatient = frame.PlanePositionSequence[0].ImagePositionPatient
        frame.ImageOrientationPatient = orientation.ImageOrientationPatient
        positions.append(slice_position(frame))
    assert document["SlicePositionMin"] == pytest.approx(min(positions))
    assert document["SlicePositionMax"] == pytest.approx(max(positions))


def test_seg_liver_label() -> None:
    document = document_of("dcmqi-seg/liver.dcm")
    assert document["AnnotationLabels"] == ["Liver"]
    assert document["Modality"] == "SEG"


def test_rtstruct_roi_names_and_no_contour_points() -> None:
    document = document_of("ibsi-ct-phantom/rtstruct/*.dcm")
    assert document["AnnotationLabels"] == ["GTV-1"]
    assert "SlicePositionMin" not in document  # not an image
    tags = document["tags"]
    assert tags["StructureSetROISequence"][0]["ROIName"] == "GTV-1"
    contours = tags["ROIContourSequence"][0]["ContourSequence"]
    assert contours[0]["ContourGeometricType"] == "CLOSED_PLANAR"
    # thousands of contour points would be numbers no one searches: left out
    assert all("ContourData" not in contour for contour in contours)


def test_annotation_labels_of_several_instances() -> None:
    instances = metadata(read("dcmqi-seg/liver.dcm", "ibsi-ct-phantom/rtstruct/*.dcm"))
    assert annotation_labels(instances) == ["GTV-1", "Liver"]


# ---------------------------------------------------------------------- radiomics


def test_radiomics_of_another_tools_report() -> None:
    """dcmqi's TID 1500 example: concepts once per region by meaning and unit."""
    values = radiomics_values(read("tid1500-example/sr.dcm"))
    assert values["Volume_ml"] == pytest.approx([33.5824])
    assert values["Total_Lesion_Glycolysis_g"] == pytest.approx([202.008])
    assert values["Percent_Within_First_Quarter_of_Intensity_Range_percent"] == pytest.approx(
        [29.434]
    )
    # SUVbw mean, max, peak... are one concept qualified by derivation: not mixed together
    assert not any(name.startswith("SUVbw") for name in values)
    document = document_of("tid1500-example/sr.dcm", radiomics=values)
    assert document["radiomics"]["Volume_ml"] == pytest.approx([33.5824])
    assert document_field_type("radiomics.Volume_ml") is FieldType.NUMBER


def test_radiomics_of_a_pacsflow_report(tmp_path: Path) -> None:
    volume = ct_3slice_volume()
    regions = seg_regions(volume)
    results = [
        RegionFeatures(
            region.number,
            region.label,
            "3.0.1",
            {"original_shape_MeshVolume": 100.0 * region.number, "original_firstorder_Mean": 5.5},
        )
        for region in regions[:-1]
    ]
    results.append(RegionFeatures(regions[-1].number, regions[-1].label, "3.0.1", {}, "empty"))
    sr = measurement_report(volume, regions, results, "default", "0" * 64)
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)

    values = radiomics_values([pydicom.dcmread(path), *read("dcmqi-seg/ct-3slice/01.dcm")])
    assert values == {
        "original_shape_MeshVolume": [100.0, 200.0, 300.0, 400.0],
        "original_firstorder_Mean": [5.5] * 4,
    }
    document = series_document(metadata([pydicom.dcmread(path)]), radiomics=values)
    assert document["radiomics"] == values
    assert_typed_as_declared(document)


def test_radiomics_skips_what_is_no_report() -> None:
    assert radiomics_values(read("dcmqi-seg/ct-3slice/01.dcm", "dcmqi-seg/liver.dcm")) == {}
    assert radiomics_values([]) == {}


# ------------------------------------------------------------- derived and origin


def test_origin_fields() -> None:
    arrived = datetime(2024, 5, 6, 9, 30, 15, 250000, tzinfo=timezone(timedelta(hours=2)))
    document = document_of(
        "dcmqi-seg/liver.dcm",
        source={"kind": "dimse", "calling_ae": "SCANNER1", "username": ""},
        arrived_at=arrived,
        modalities_in_study=["CT", "SEG", "CT", ""],
        project=["lung", "atlas"],
        radiomics={"original_shape_MeshVolume": [1.0, math.nan], "empty": []},
    )
    assert document["SourceKind"] == "dimse"
    assert document["SourceAE"] == "SCANNER1"
    assert document["ArrivedAt"] == "2024-05-06T07:30:15.250000Z"
    assert document["ModalitiesInStudy"] == ["CT", "SEG"]
    assert document["Project"] == ["atlas", "lung"]
    assert document["radiomics"] == {"original_shape_MeshVolume": [1.0]}

    naive = document_of("dcmqi-seg/liver.dcm", arrived_at=datetime(2024, 5, 6, 9, 30))
    assert naive["ArrivedAt"] == "2024-05-06T09:30:00.000000Z"  # the archive's clock is UTC
    stow = document_of("dcmqi-seg/liver.dcm", source={"kind": "stow", "calling_ae": ""})
    assert stow["SourceKind"] == "stow" and "SourceAE" not in stow
    assert "Project" not in stow and "radiomics" not in stow and "ArrivedAt" not in stow
    conf = document_of("dcmqi-seg/liver.dcm", project="lung", modalities_in_study="CT")
    assert conf["Project"] == ["lung"] and conf["ModalitiesInStudy"] == ["CT", "SEG"]


# ------------------------------------------------------------------ typed values


def ct_with(**attributes: Any) -> Dataset:
    ds = read("dcmqi-seg/ct-3slice/01.dcm")[0]
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def test_time_zones() -> None:
    ds = ct_with(TimezoneOffsetFromUTC="+0200", StudyDate="20030417", StudyTime="004607.5")
    ds.AcquisitionDateTime = "20030417105028.123-0500"
    document = series_document(metadata([ds]))
    assert document["StudyDateTime"] == "2003-04-16T22:46:07.500000Z"  # the day before in UTC
    assert document["AcquisitionDateTimeMin"] == "2003-04-17T15:50:28.123000Z"  # its own offset
    assert document["tags"]["AcquisitionDateTime"] == "2003-04-17T15:50:28.123000Z"
    assert document["tags"]["StudyTime"] == "00:46:07.5"  # a time of day stays local
    assert document["tags"]["StudyDate"] == "2003-04-17"

    partial = series_document(metadata([ct_with(AcquisitionDateTime="200304")]))
    assert partial["AcquisitionDateTimeMin"] == "2003-04-01T00:00:00.000000"


def test_acquisition_range_over_instances() -> None:
    slices = read("dcmqi-seg/ct-3slice/*.dcm")
    for minute, ds in enumerate(slices):
        ds.AcquisitionTime = f"10{minute:02d}00"
    document = series_document(metadata(slices))
    assert document["AcquisitionDateTimeMin"] == "2003-04-17T10:00:00.000000"
    assert document["AcquisitionDateTimeMax"] == "2003-04-17T10:02:00.000000"


def test_person_names_split_into_components() -> None:
    ds = ct_with(PatientName="Doe^John^^Dr.^Jr", ReferringPhysicianName="Smith^Anna^Maria")
    ds.OtherPatientNames = ["Roe^Richard", "Poe^Edgar"]
    document = series_document(metadata([ds]))
    assert document["PatientName"] == {
        "Alphabetic": "Doe^John^^Dr.^Jr",
        "FamilyName": "Doe",
        "GivenName": "John",
        "NamePrefix": "Dr.",
        "NameSuffix": "Jr",
    }
    assert document["ReferringPhysicianName"]["MiddleName"] == "Maria"
    assert [name["FamilyName"] for name in document["tags"]["OtherPatientNames"]] == [
        "Roe",
        "Poe",
    ]


def test_ideographic_name_without_alphabetic_group() -> None:
    (instance,) = metadata(read("dcmqi-seg/liver.dcm"))
    instance["00100010"] = {"vr": "PN", "Value": [{"Ideographic": "山田^太郎"}]}
    document = series_document([instance])
    assert document["PatientName"] == {
        "Alphabetic": "山田^太郎",
        "FamilyName": "山田",
        "GivenName": "太郎",
    }


def test_japanese_names_read_by_pydicom() -> None:
    (path,) = get_charset_files("chrH31.dcm")
    document = series_document(metadata([pydicom.dcmread(path)]))
    assert document["PatientName"]["FamilyName"] == "Yamada"
    assert document["tags"]["TimezoneOffsetFromUTC"] == "-0400"


def test_values_that_do_not_parse_are_kept_as_strings() -> None:
    (instance,) = metadata(read("dcmqi-seg/liver.dcm"))
    odd: dict[str, Any] = {
        "00080020": {"vr": "DA", "Value": ["20161345"]},  # StudyDate: no 45th of the 13th month
        "00080030": {"vr": "TM", "Value": ["256000"]},  # StudyTime
        "00200011": {"vr": "IS", "Value": ["1A"]},  # SeriesNumber
        "00180050": {"vr": "DS", "Value": ["NaN"]},  # SliceThickness
        "00181030": {"vr": "LO", "Value": [None, "  protocol  ", ""]},  # ProtocolName
        "00280030": {"vr": "DS", "Value": [0.5, math.inf]},  # PixelSpacing
        "0008002A": {"vr": "DT", "Value": ["2016"]},  # AcquisitionDateTime: a year is a DT
        "00100030": {"vr": "DA", "Value": ["1970.01.02"]},  # the ACR-NEMA form
        "00100040": "not an element",
        "00101010": {"vr": "AS", "Value": "045Y"},  # Value not a list
        "XYZ": {"vr": "CS", "Value": ["x"]},
        "0010": {"vr": "CS", "Value": ["x"]},
        "00080000": {"vr": "UL", "Value": [4]},  # a group length
        "00181020": {"Value": ["1.0"]},  # SoftwareVersions without its VR
        "00082112": {"vr": "SQ", "Value": ["not an item", {}]},  # SourceImageSequence
        "00280106": {"vr": "SS", "Value": [-5]},  # SmallestImagePixelValue: "US or SS"
        "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.66.4\x00"]},
    }
    instance.update(odd)
    document = series_document([instance])
    json.dumps(document, allow_nan=False)
    assert_typed_as_declared(document)
    tags = document["tags"]
    assert tags["StudyDate"] == "20161345" and "StudyDate" not in document
    assert tags["StudyTime"] == "256000" and "StudyDateTime" not in document
    assert tags["SeriesNumber"] == "1A" and "SeriesNumber" not in document
    assert tags["SliceThickness"] == "NaN"
    assert tags["ProtocolName"] == "protocol"
    assert tags["PixelSpacing"] == [0.5, "inf"]
    assert tags["AcquisitionDateTime"] == "2016-01-01T00:00:00.000000"
    assert tags["PatientBirthDate"] == "1970-01-02" == document["PatientBirthDate"]
    assert tags["SoftwareVersions"] == "1.0"
    assert tags["SmallestImagePixelValue"] == -5
    assert tags["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.66.4"
    for key in ("PatientSex", "PatientAge", "XYZ", "0010", "00080000", "SourceImageSequence"):
        assert key not in tags


def test_private_tags_by_hex_key_as_strings() -> None:
    ds = ct_with()
    block = ds.private_block(0x0009, "ACME 1.1", create=True)
    block.add_new(0x01, "DS", "1.5")
    block.add_new(0x02, "LO", ["a", "b"])
    block.add_new(0x03, "DA", "20200101")
    block.add_new(0x04, "PN", "Doe^Jane")
    item = Dataset()
    item.SeriesDescription = "inside a private sequence"
    item.SliceThickness = "2.5"
    block.add_new(0x05, "SQ", [item])
    block.add_new(0x06, "OB", b"\x00" * 8)
    document = series_document(metadata([ds]))
    assert_typed_as_declared(document)
    tags = document["tags"]

    def key(offset: int) -> str:
        return f"{block.get_tag(offset):08X}"

    assert key(0x01).startswith("0009")
    assert tags[f"0009{block.block_start >> 8:04X}"] == "ACME 1.1"  # the private creator
    assert tags[key(0x01)] == "1.5"
    assert tags[key(0x02)] == ["a", "b"]
    assert tags[key(0x03)] == "20200101"
    assert tags[key(0x04)] == "Doe^Jane"
    # another creator's block may hold a string at the same tag: one type per key
    assert key(0x05) not in tags
    assert key(0x06) not in tags  # binary
    assert document_field_type(f"tags.{key(0x01)}") is FieldType.KEYWORD
    assert document_field_type(f"tags.{key(0x05)}.SliceThickness") is None


def test_long_values_and_sequences_are_bounded() -> None:
    ds = ct_with()
    ds.ReferencedFrameNumber = list(range(1, MAX_VALUES + 2))
    ds.SourceImageSequence = [Dataset() for _ in range(MAX_ITEMS + 20)]
    for k, item in enumerate(ds.SourceImageSequence):
        item.ReferencedSOPInstanceUID = f"1.2.3.{k}"
    many = []
    for _ in range(MAX_ITEMS_TOTAL // MAX_ITEMS + 2):
        outer = Dataset()
        outer.ReferencedImageSequence = copy.deepcopy(ds.SourceImageSequence)
        many.append(outer)
    ds.ReferencedSeriesSequence = many
    document = series_document(metadata([ds]))
    tags = document["tags"]
    assert "ReferencedFrameNumber" not in tags
    assert len(tags["SourceImageSequence"]) == MAX_ITEMS
    items = len(tags["SourceImageSequence"]) + sum(
        1 + len(outer.get("ReferencedImageSequence", []))
        for outer in tags["ReferencedSeriesSequence"]
    )
    assert items == MAX_ITEMS_TOTAL


def test_errors() -> None:
    with pytest.raises(ValueError, match="at least one instance"):
        series_document([])
    (instance,) = metadata(read("dcmqi-seg/liver.dcm"))
    del instance["0020000E"]
    with pytest.raises(ValueError, match="SeriesInstanceUID"):
        series_document([instance])


# ----------------------------------------------------------- pydicom's test files


def _pydicom_files() -> list[str]:
    """pydicom's test files and pydicom-data's, found locally (``get_testdata_files`` would
    also try to download the ones missing here)."""
    folders = [
        Path(DATA_ROOT) / "test_files",
        *(s.data_path for s in external_data_sources().values()),
    ]
    files = [str(path) for folder in folders for path in Path(folder).glob("*.dcm")]
    return sorted(files + get_charset_files("*.dcm"))


@pytest.mark.parametrize("path", _pydicom_files(), ids=lambda p: Path(p).name)
def test_pydicom_test_files(path: str) -> None:
    """Odd VRs, private tags, sequences, multi-frame, character sets: never an exception."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True, defer_size=1024)
        instances = metadata([ds])
    for instance in instances:  # the archive refuses an instance without its UIDs
        instance.setdefault("0020000E", {"vr": "UI", "Value": [generate_uid()]})
    document = series_document(instances)
    json.dumps(document, allow_nan=False)
    assert set(document) <= set(FIELDS)
    assert_typed_as_declared(document)


def test_enhanced_ct_frames() -> None:
    path = get_testdata_file("eCT_Supplemental.dcm")
    assert isinstance(path, str)
    ds = pydicom.dcmread(path)
    document = series_document(metadata([ds]))
    orientation = ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
    positions = []
    for frame in ds.PerFrameFunctionalGroupsSequence:
        frame.ImagePositionPatient = frame.PlanePositionSequence[0].ImagePositionPatient
        frame.ImageOrientationPatient = orientation.ImageOrientationPatient
        positions.append(slice_position(frame))
    assert (document["SlicePositionMin"], document["SlicePositionMax"]) == pytest.approx(
        (min(positions), max(positions))
    )
    # Timezone Offset From UTC -0500 makes the study time UTC
    assert document["tags"]["TimezoneOffsetFromUTC"] == str(ds.TimezoneOffsetFromUTC)
    local = datetime.strptime(f"{ds.StudyDate}{ds.StudyTime}", "%Y%m%d%H%M%S.%f")
    offset = datetime.strptime(str(ds.TimezoneOffsetFromUTC)[1:], "%H%M")
    sign = -1 if str(ds.TimezoneOffsetFromUTC).startswith("-") else 1
    utc = local - sign * timedelta(hours=offset.hour, minutes=offset.minute)
    assert document["StudyDateTime"] == utc.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ------------------------------------------------------------------ field types


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("Modality", FieldType.KEYWORD),
        ("StudyDescription", FieldType.TEXT),
        ("StudyDateTime", FieldType.DATETIME),
        ("PatientName", FieldType.PERSON_NAME),
        ("PatientName.FamilyName", FieldType.PERSON_NAME),
        ("PatientName.Alphabetic", FieldType.PERSON_NAME),
        ("ReferringPhysicianName.GivenName", FieldType.PERSON_NAME),
        ("PatientName.Nickname", None),
        ("Modality.X", None),
        ("radiomics", FieldType.OBJECT),
        ("radiomics.original_shape_MeshVolume", FieldType.NUMBER),
        ("radiomics.a.b", None),
        ("tags", FieldType.OBJECT),
        ("tags.SliceThickness", FieldType.NUMBER),
        ("tags.Rows", FieldType.NUMBER),
        ("tags.SmallestImagePixelValue", FieldType.NUMBER),  # "US or SS"
        ("tags.StudyDate", FieldType.DATE),
        ("tags.AcquisitionDateTime", FieldType.DATETIME),
        ("tags.StudyTime", FieldType.KEYWORD),
        ("tags.StudyDescription", FieldType.KEYWORD),  # LO, as in QIDO: exact or wildcard
        ("tags.ImageComments", FieldType.TEXT),  # LT
        ("tags.PatientName", FieldType.PERSON_NAME),
        ("tags.PatientName.GivenName", FieldType.PERSON_NAME),
        ("tags.SegmentSequence", FieldType.OBJECT),
        ("tags.SegmentSequence.SegmentLabel", FieldType.KEYWORD),
        ("tags.SegmentSequence.SegmentedPropertyTypeCodeSequence.CodeValue", FieldType.KEYWORD),
        ("tags.00091001", FieldType.KEYWORD),
        ("tags.60000010", FieldType.KEYWORD),  # a repeating group: no one keyword
        ("tags.00100010", None),  # a public tag goes by its keyword
        ("tags.PixelData", None),  # binary: never in a document
        ("tags.Rows.Columns", None),
        ("tags.SegmentSequence.SegmentLabel.X", None),
        ("tags.NoSuchKeyword", None),
        ("NoSuchField", None),
        ("", None),
    ],
)
def test_document_field_type(path: str, expected: FieldType | None) -> None:
    assert document_field_type(path) is expected


def test_every_top_level_field_has_its_type() -> None:
    for name, field_type in FIELDS.items():
        assert document_field_type(name) is field_type
