"""The TID 1500 SR: written with highdicom, valid for dciodvfy, read back to the same numbers."""

from __future__ import annotations

import csv
import io
import math
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import Comprehensive3DSRStorage, RTStructureSetStorage

from pacsflow.operators.radiomics.codes import IBSI_SCHEME, PRIVATE_SCHEME
from pacsflow.operators.radiomics.features import EMPTY_SEGMENT, RegionFeatures, extract_features
from pacsflow.operators.radiomics.model import ImageVolume, RadiomicsError, RegionMask, RegionSource
from pacsflow.operators.radiomics.parameters import parameter_file, parameters_digest
from pacsflow.operators.radiomics.report import (
    CSV_COLUMNS,
    NOT_COMPUTED,
    REFERENCED_ROI_IDENTIFIER,
    REGION_IN_SPACE,
    FeatureRow,
    measurement_report,
    read_measurement_report,
    results_series_uid,
    rows_to_csv,
    tracking_uid,
)
from tests.conftest import SHARED_DATA
from tests.operators.radiomics.test_features import fake_segmentation, nifti_case, volume_of

DCMQI = SHARED_DATA / "dcmqi-seg"
CT_PHANTOM = SHARED_DATA / "ibsi-ct-phantom"
EMPTIED_SEGMENT = 5  # partial_overlaps.dcm's segment 5, emptied here


def by_position(datasets: list[Dataset]) -> list[Dataset]:
    return sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))


def ct_3slice_volume() -> ImageVolume:
    """The 3-slice CT as the volume builder gives it: HU, geometry, headers without pixels."""
    slices = by_position([pydicom.dcmread(p) for p in (DCMQI / "ct-3slice").glob("*.dcm")])
    stack = np.stack(
        [ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices]
    ).astype(np.float32)
    image = sitk.GetImageFromArray(stack)
    first, second = (np.array(ds.ImagePositionPatient, dtype=float) for ds in slices[:2])
    row, column = (float(v) for v in slices[0].PixelSpacing)
    image.SetSpacing((column, row, float(np.linalg.norm(second - first))))
    image.SetOrigin(tuple(first))
    for ds in slices:
        del ds.PixelData
    return volume_of(image, slices)


def seg_regions(volume: ImageVolume) -> list[RegionMask]:
    """The five overlapping segments of partial_overlaps.dcm, the last one emptied."""
    seg = hd.seg.segread(DCMQI / "partial_overlaps.dcm")
    pixels = seg.get_pixels_by_source_instance(
        [ds.SOPInstanceUID for ds in volume.source_images], ignore_spatial_locations=True
    )
    segmentation = pydicom.dcmread(DCMQI / "partial_overlaps.dcm", stop_before_pixels=True)
    regions = []
    for index, item in enumerate(segmentation.SegmentSequence):
        mask = pixels[..., index].astype(bool)
        if item.SegmentNumber == EMPTIED_SEGMENT:
            mask[:] = False
        regions.append(
            RegionMask(RegionSource.SEG, item.SegmentNumber, item.SegmentLabel, mask, segmentation)
        )
    return regions


def phantom_rtstruct_case() -> tuple[ImageVolume, list[RegionMask]]:
    """The CT phantom's GTV as an RTSTRUCT ROI, on the phantom's own image headers."""
    image = sitk.ReadImage(str(CT_PHANTOM / "image.nii.gz"))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(CT_PHANTOM / "mask.nii.gz"))) > 0
    slices = by_position(
        [
            pydicom.dcmread(path, stop_before_pixels=True)
            for path in (CT_PHANTOM / "image").glob("*.dcm")
        ]
    )
    assert len(slices) == image.GetSize()[2]
    (structure_set_path,) = (CT_PHANTOM / "rtstruct").glob("*.dcm")
    structure_set = pydicom.dcmread(structure_set_path, stop_before_pixels=True)
    (roi,) = structure_set.StructureSetROISequence
    region = RegionMask(RegionSource.RTSTRUCT, int(roi.ROINumber), roi.ROIName, mask, structure_set)
    return volume_of(image, slices), [region]


@pytest.fixture(scope="module")
def seg_case() -> tuple[ImageVolume, list[RegionMask], list[RegionFeatures], str]:
    volume = ct_3slice_volume()
    regions = seg_regions(volume)
    parameters = parameter_file("default")
    results = [extract_features(volume, region, parameters) for region in regions]
    return volume, regions, results, parameters_digest(parameters)


@pytest.fixture(scope="module")
def rtstruct_case() -> tuple[ImageVolume, list[RegionMask], list[RegionFeatures], str]:
    volume, regions = phantom_rtstruct_case()
    parameters = parameter_file("ibsi")
    results = [extract_features(volume, region, parameters) for region in regions]
    return volume, regions, results, parameters_digest(parameters)


def saved(sr: Dataset, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sr.SOPInstanceUID}.dcm"
    sr.save_as(path, enforce_file_format=True)
    return path


def texts(group: Any, name: object) -> list[str]:
    """Values of a measurement group's direct content items called ``name``."""
    return [str(item.value) for item in group[0].ContentSequence if item.name == name]


def dciodvfy_errors(path: Path) -> list[str]:
    assert shutil.which("dciodvfy"), "dciodvfy missing: scripts/install-test-tools.sh installs it"
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    assert any("Comprehensive3DSR" in line for line in lines), lines
    return [line for line in lines if line.startswith("Error")]


def expected_rows(regions: list[RegionMask], results: list[RegionFeatures]) -> dict:
    """(region number, feature) -> value, and region number -> not-computed reason."""
    values = {
        (result.number, name): value
        for result in results
        for name, value in result.features.items()
    }
    reasons = {result.number: result.not_computed for result in results if not result.computed}
    return {"values": values, "reasons": reasons}


def test_seg_report_is_valid_and_reads_back(seg_case, tmp_path: Path) -> None:
    volume, regions, results, digest = seg_case
    assert [r.computed for r in results] == [True, True, True, True, False]
    assert results[-1].not_computed == EMPTY_SEGMENT

    sr = measurement_report(volume, regions, results, "default", digest, 900, 1)
    path = saved(sr, tmp_path)
    assert dciodvfy_errors(path) == []

    stored = pydicom.dcmread(path)
    segmentation = regions[0].segmentation
    assert stored.SOPClassUID == Comprehensive3DSRStorage
    assert stored.StudyInstanceUID == segmentation.StudyInstanceUID
    assert stored.SeriesInstanceUID == results_series_uid(segmentation.SOPInstanceUID)
    assert (stored.ContentDate, stored.ContentTime) == (
        segmentation.ContentDate,
        segmentation.ContentTime,
    )

    # highdicom's own reading of the document
    document = hd.sr.Comprehensive3DSR.from_dataset(stored)
    report = document.content
    assert isinstance(report, hd.sr.MeasurementReport)
    groups = report.get_volumetric_roi_measurement_groups()
    assert [g.tracking_identifier for g in groups] == [r.label for r in regions]
    assert [g.tracking_uid for g in groups] == [
        tracking_uid(segmentation.SOPInstanceUID, r.number) for r in regions
    ]
    for group, region in zip(groups, regions, strict=True):
        segment = group.referenced_segment
        assert segment is not None
        assert segment.referenced_sop_instance_uid == segmentation.SOPInstanceUID
        assert segment.referenced_segment_numbers == [region.number]
        if region.is_empty:
            series = segment.source_series_for_segmentation
            assert series is not None and series.value == volume.series_instance_uid
        else:
            touched = [
                volume.source_images[k].SOPInstanceUID
                for k in np.flatnonzero(region.mask.any(axis=(1, 2)))
            ]
            assert [
                image.referenced_sop_instance_uid
                for image in segment.source_images_for_segmentation
            ] == touched
        assert group.finding_type is not None
        assert texts(group, codes.DCM.AlgorithmName) == ["pyradiomics"]
        assert texts(group, codes.DCM.AlgorithmVersion) == ["3.0.1"]
        assert texts(group, codes.DCM.AlgorithmParameters) == [
            "parameter set: default",
            f"settings digest: {digest}",
        ]
    evidence = {uid for _, _, uid, _ in document.get_evidence()}
    assert segmentation.SOPInstanceUID in evidence
    assert {ds.SOPInstanceUID for ds in volume.source_images} <= evidence

    rows = read_measurement_report(stored)
    expected = expected_rows(regions, results)
    computed = {(row.region_number, row.feature): row.value for row in rows if row.feature}
    assert computed == expected["values"]
    not_computed = {row.region_number: row.not_computed for row in rows if row.feature is None}
    assert not_computed == expected["reasons"] == {EMPTIED_SEGMENT: EMPTY_SEGMENT}
    labels = {row.region_number: row.region_label for row in rows}
    assert labels == {r.number: r.label for r in regions}
    mean = next(r for r in rows if r.feature == "original_firstorder_Mean" and r.region_number == 1)
    assert (mean.code_value, mean.coding_scheme, mean.unit) == ("Q4LE", IBSI_SCHEME, "[hnsf'U]")
    kurtosis = next(r for r in rows if r.feature == "original_firstorder_Kurtosis")
    assert kurtosis.coding_scheme == PRIVATE_SCHEME
    volume_row = next(r for r in rows if r.feature == "original_shape_MeshVolume")
    assert volume_row.unit == "mm3"


def test_rtstruct_report_references_the_roi(rtstruct_case, tmp_path: Path) -> None:
    volume, regions, results, digest = rtstruct_case
    (region,) = regions
    sr = measurement_report(volume, regions, results, "ibsi", digest, 900, 1)
    path = saved(sr, tmp_path)
    assert dciodvfy_errors(path) == []

    stored = pydicom.dcmread(path)
    report = hd.sr.Comprehensive3DSR.from_dataset(stored).content
    assert isinstance(report, hd.sr.MeasurementReport)
    (group,) = report.get_volumetric_roi_measurement_groups(
        reference_type=REGION_IN_SPACE,
        referenced_sop_instance_uid=region.segmentation.SOPInstanceUID,
        referenced_sop_class_uid=RTStructureSetStorage,
    )
    assert group.tracking_identifier == "GTV-1"
    (reference,) = [i for i in group[0].ContentSequence if i.name == REGION_IN_SPACE]
    (roi,) = reference.ContentSequence
    assert (roi.name, roi.value) == (REFERENCED_ROI_IDENTIFIER, "1")
    assert stored.StudyInstanceUID == region.segmentation.StudyInstanceUID

    rows = read_measurement_report(stored)
    assert {row.region_number for row in rows} == {1}
    assert {row.feature: row.value for row in rows} == results[0].features
    assert {row.region_label for row in rows} == {"GTV-1"}


def test_identical_inputs_give_the_identical_instance(seg_case, tmp_path: Path) -> None:
    volume, regions, results, digest = seg_case
    first = measurement_report(volume, regions, results, "default", digest, 900, 1)
    again = measurement_report(volume, regions, results, "default", digest, 900, 1)
    assert again.SOPInstanceUID == first.SOPInstanceUID
    first_bytes = saved(first, tmp_path / "first").read_bytes()
    assert saved(again, tmp_path / "again").read_bytes() == first_bytes


def test_changes_give_a_new_instance_in_the_same_series(seg_case) -> None:
    volume, regions, results, digest = seg_case
    base = measurement_report(volume, regions, results, "default", digest, 900, 1)
    variants = [
        measurement_report(volume, regions, results, "default", "0" * 64, 900, 1),
        measurement_report(volume, regions, results, "mine.yaml", digest, 900, 1),
        measurement_report(volume, regions, results, "default", digest, 900, 2),
        measurement_report(
            volume,
            regions,
            [replace(result, pyradiomics_version="9.9") for result in results],
            "default",
            digest,
            900,
            1,
        ),
    ]
    uids = {base.SOPInstanceUID, *(sr.SOPInstanceUID for sr in variants)}
    assert len(uids) == 1 + len(variants)
    assert {sr.SeriesInstanceUID for sr in variants} == {base.SeriesInstanceUID}


def test_non_finite_feature_reads_back_as_not_computed(seg_case, tmp_path: Path) -> None:
    volume, regions, results, digest = seg_case
    features = dict(results[0].features)
    features["original_glcm_Correlation"] = math.nan
    features["original_glcm_Imc1"] = math.inf
    broken = [replace(results[0], features=features), *results[1:]]
    sr = measurement_report(volume, regions, broken, "default", digest, 900, 1)
    path = saved(sr, tmp_path)
    assert dciodvfy_errors(path) == []
    rows = [r for r in read_measurement_report(pydicom.dcmread(path)) if r.region_number == 1]
    missing = {r.feature: r.not_computed for r in rows if r.value is None}
    assert missing == {
        "original_glcm_Correlation": "not a number",
        "original_glcm_Imc1": "positive infinity",
    }
    assert len(rows) == len(features)


def test_csv_has_every_row(seg_case) -> None:
    volume, regions, results, digest = seg_case
    sr = measurement_report(volume, regions, results, "default", digest)
    rows = read_measurement_report(sr)
    parsed = list(csv.DictReader(io.StringIO(rows_to_csv(rows))))
    assert tuple(parsed[0]) == CSV_COLUMNS
    assert len(parsed) == len(rows)
    for line, row in zip(parsed, rows, strict=True):
        assert line["feature"] == (row.feature or "")
        assert (float(line["value"]) if line["value"] else None) == row.value
        assert line["not_computed"] == (row.not_computed or "")


def test_report_of_another_tool_reads() -> None:
    rows = read_measurement_report(pydicom.dcmread(SHARED_DATA / "tid1500-example" / "sr.dcm"))
    assert rows
    assert all(isinstance(row, FeatureRow) and row.feature is None for row in rows)
    assert {row.region_number for row in rows} == {1}


def test_not_an_sr_is_refused() -> None:
    image = pydicom.dcmread(next((DCMQI / "ct-3slice").glob("*.dcm")), stop_before_pixels=True)
    with pytest.raises(RadiomicsError, match="is not a radiomics measurement report"):
        read_measurement_report(image)


def test_inconsistent_inputs_are_refused(seg_case) -> None:
    volume, regions, results, digest = seg_case
    with pytest.raises(RadiomicsError, match="at least one"):
        measurement_report(volume, [], [], "default", digest)
    with pytest.raises(RadiomicsError, match="4 results for 5"):
        measurement_report(volume, regions, results[:4], "default", digest)
    with pytest.raises(RadiomicsError, match="result for number 2 given for segment or ROI 1"):
        measurement_report(volume, regions[:2], results[1::-1], "default", digest)
    other = fake_segmentation(volume.study_instance_uid)
    mixed = [regions[0], replace(regions[1], segmentation=other)]
    with pytest.raises(RadiomicsError, match="several segmentations"):
        measurement_report(volume, mixed, results[:2], "default", digest)
    with pytest.raises(RadiomicsError, match="several pyradiomics versions"):
        measurement_report(
            volume, regions[:2], [results[0], replace(results[1], pyradiomics_version="0")],
            "default", digest,
        )  # fmt: skip
    with pytest.raises(RadiomicsError, match="no source images"):
        measurement_report(replace(volume, source_images=()), regions, results, "default", digest)


def test_unwritable_inputs_are_refused_without_a_partial_sr(seg_case) -> None:
    volume, regions, results, digest = seg_case
    segmentation = Dataset()
    segmentation.update(regions[0].segmentation)
    del segmentation.PatientID  # type 2 in every source; highdicom needs it
    broken = [replace(region, segmentation=segmentation) for region in regions]
    with pytest.raises(RadiomicsError, match="cannot write the radiomics SR"):
        measurement_report(volume, broken, results, "default", digest)


def test_nifti_phantom_report(tmp_path: Path) -> None:
    """A report on fake headers (as test_features builds them) is valid too."""
    volume, region = nifti_case(SHARED_DATA / "ibsi-digital-phantom")
    result = extract_features(volume, region, parameter_file("ibsi"))
    sr = measurement_report(volume, [region], [result], "ibsi", "d" * 64)
    assert dciodvfy_errors(saved(sr, tmp_path)) == []
    assert NOT_COMPUTED.scheme_designator == PRIVATE_SCHEME
