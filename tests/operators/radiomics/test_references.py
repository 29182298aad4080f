"""What SEGs and RTSTRUCTs refer to, from real objects and with optional parts left out."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence

from pacsflow.operators.radiomics.model import RadiomicsError
from pacsflow.operators.radiomics.references import (
    References,
    frame_source_instances,
    references_of,
)
from tests.conftest import SHARED_DATA

LIVER = SHARED_DATA / "dcmqi-seg" / "liver.dcm"
OVERLAPS = SHARED_DATA / "dcmqi-seg" / "partial_overlaps.dcm"
CT_3SLICE = SHARED_DATA / "dcmqi-seg" / "ct-3slice"
TID1500_SEG = SHARED_DATA / "tid1500-example" / "seg.dcm"
IBSI = SHARED_DATA / "ibsi-ct-phantom"
IBSI_RTSTRUCT = IBSI / "rtstruct" / "DCM_RS_00060.dcm"


def read_headers(folder: Path) -> list[Dataset]:
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in sorted(folder.glob("*.dcm"))]


@pytest.mark.parametrize("path", [LIVER, OVERLAPS], ids=["liver", "partial_overlaps"])
def test_seg_refers_to_the_3slice_ct(path: Path) -> None:
    images = read_headers(CT_3SLICE)
    references = references_of(pydicom.dcmread(path))
    assert references == References(
        study_instance_uid=images[0].StudyInstanceUID,
        series_instance_uids=(images[0].SeriesInstanceUID,),
        sop_instance_uids=references.sop_instance_uids,
        frame_of_reference_uid=images[0].FrameOfReferenceUID,
    )
    assert sorted(references.sop_instance_uids) == sorted(ds.SOPInstanceUID for ds in images)


def test_rtstruct_refers_to_the_ibsi_ct() -> None:
    images = read_headers(IBSI / "image")
    references = references_of(pydicom.dcmread(IBSI_RTSTRUCT))
    assert references.study_instance_uid == images[0].StudyInstanceUID
    assert references.series_instance_uids == (images[0].SeriesInstanceUID,)
    assert sorted(references.sop_instance_uids) == sorted(ds.SOPInstanceUID for ds in images)
    assert references.frame_of_reference_uid == images[0].FrameOfReferenceUID


def test_tid1500_seg_refers_to_its_pet_series() -> None:
    seg = pydicom.dcmread(TID1500_SEG)
    references = references_of(seg)
    assert references.series_instance_uids == (seg.ReferencedSeriesSequence[0].SeriesInstanceUID,)
    assert set(frame_source_instances(seg)) <= set(references.sop_instance_uids)
    assert references.frame_of_reference_uid == seg.FrameOfReferenceUID


def test_seg_frames_alone_name_the_instances() -> None:
    seg = pydicom.dcmread(OVERLAPS)
    del seg.ReferencedSeriesSequence
    references = references_of(seg)
    assert references.series_instance_uids == ()
    assert len(references.sop_instance_uids) == 3
    assert references.sop_instance_uids == frame_source_instances(seg)


def test_seg_images_in_another_study() -> None:
    seg = pydicom.dcmread(LIVER)
    other = Dataset()
    other.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    other.ReferencedSeriesSequence = seg.ReferencedSeriesSequence
    seg.StudiesContainingOtherReferencedInstancesSequence = Sequence([other])
    del seg.ReferencedSeriesSequence
    references = references_of(seg)
    assert references.study_instance_uid == other.StudyInstanceUID
    assert references.series_instance_uids == (other.ReferencedSeriesSequence[0].SeriesInstanceUID,)


def test_seg_source_images_in_shared_functional_groups() -> None:
    seg = pydicom.dcmread(LIVER)
    derivation = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence
    for frame in seg.PerFrameFunctionalGroupsSequence:
        del frame.DerivationImageSequence
    seg.SharedFunctionalGroupsSequence[0].DerivationImageSequence = derivation
    assert frame_source_instances(seg) == (
        derivation[0].SourceImageSequence[0].ReferencedSOPInstanceUID,
    )


def test_rtstruct_without_referenced_study_falls_back() -> None:
    """Newer editions make the RT Referenced Study Sequence optional."""
    rtstruct = pydicom.dcmread(IBSI_RTSTRUCT)
    frame = rtstruct.ReferencedFrameOfReferenceSequence[0]
    contour_images = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    contour = rtstruct.ROIContourSequence[0].ContourSequence[0]
    contour.ContourImageSequence = Sequence([contour_images.ContourImageSequence[0]])
    del frame.RTReferencedStudySequence
    references = references_of(rtstruct)
    assert references.study_instance_uid == rtstruct.StudyInstanceUID
    assert references.series_instance_uids == ()
    assert references.sop_instance_uids == (
        contour_images.ContourImageSequence[0].ReferencedSOPInstanceUID,
    )


def test_rtstruct_frame_of_reference_from_its_rois() -> None:
    rtstruct = pydicom.dcmread(IBSI_RTSTRUCT)
    expected = rtstruct.StructureSetROISequence[0].ReferencedFrameOfReferenceUID
    rtstruct.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = "1.2.3"
    assert references_of(rtstruct).frame_of_reference_uid == expected
    del rtstruct.StructureSetROISequence[0].ReferencedFrameOfReferenceUID
    assert references_of(rtstruct).frame_of_reference_uid == "1.2.3"


def test_rtstruct_referring_to_nothing_is_refused() -> None:
    rtstruct = pydicom.dcmread(IBSI_RTSTRUCT)
    del rtstruct.ReferencedFrameOfReferenceSequence
    with pytest.raises(RadiomicsError, match=f"RTSTRUCT {rtstruct.SOPInstanceUID} refers to no"):
        references_of(rtstruct)


def test_seg_referring_to_nothing_is_refused() -> None:
    seg = pydicom.dcmread(LIVER)
    del seg.ReferencedSeriesSequence
    for frame in seg.PerFrameFunctionalGroupsSequence:
        del frame.DerivationImageSequence
    with pytest.raises(RadiomicsError, match=f"SEG {seg.SOPInstanceUID} refers to no image"):
        references_of(seg)


def test_other_objects_are_refused() -> None:
    image = read_headers(CT_3SLICE)[0]
    with pytest.raises(RadiomicsError, match="neither a Segmentation nor an RT Structure Set"):
        references_of(image)
