"""SEG segments as masks: dcmqi's SEGs on the 3-slice CT, and SEGs made here with highdicom.

Expected masks are decoded independently of highdicom: each frame's pixels placed on the
slice its Image Position (Patient) names.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.sr.codedict import codes

from pacsflow.operators.radiomics.model import ImageVolume, RadiomicsError, RegionSource
from pacsflow.operators.radiomics.seg_masks import seg_masks
from pacsflow.operators.radiomics.volume import build_volume
from tests.conftest import SHARED_DATA

DCMQI = SHARED_DATA / "dcmqi-seg"
CT_3SLICE = DCMQI / "ct-3slice"
LIVER = DCMQI / "liver.dcm"
OVERLAPS = DCMQI / "partial_overlaps.dcm"
IBSI_IMAGES = SHARED_DATA / "ibsi-ct-phantom" / "image"

# highdicom copies the CT's one-component Patient's Name into the SEG and warns about it
pytestmark = pytest.mark.filterwarnings("ignore:The string .* person name:UserWarning")


def read_series(folder: Path) -> list[Dataset]:
    """By position, lowest first, as the volume stacks them (the slice normal is +z)."""
    datasets = [pydicom.dcmread(path) for path in folder.glob("*.dcm")]
    return sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))


def expected_masks(seg: Dataset, volume: ImageVolume) -> dict[int, np.ndarray]:
    """Segment number to mask, each frame put on the slice at its position."""
    along = [float(ds.ImagePositionPatient[2]) for ds in volume.source_images]
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    masks = {
        s.SegmentNumber: np.zeros((len(along), seg.Rows, seg.Columns), bool)
        for s in seg.SegmentSequence
    }
    for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence, strict=True):
        number = group.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        z = float(group.PlanePositionSequence[0].ImagePositionPatient[2])
        masks[number][int(np.argmin(np.abs(np.subtract(along, z))))] = frame > 0
    return masks


def test_liver_gives_one_mask() -> None:
    seg = pydicom.dcmread(LIVER)
    volume = build_volume(read_series(CT_3SLICE))
    (region,) = seg_masks(seg, volume)
    assert (region.source, region.number, region.label) == (RegionSource.SEG, 1, "Liver")
    assert region.mask.dtype == bool
    assert region.mask.shape == (3, 512, 512)
    assert np.array_equal(region.mask, expected_masks(seg, volume)[1])
    assert region.mask.sum(axis=(1, 2)).tolist() == [36233, 35645, 35220]
    assert region.segmentation.SOPInstanceUID == seg.SOPInstanceUID
    assert "PixelData" not in region.segmentation


def test_partial_overlaps_gives_one_mask_per_segment() -> None:
    seg = pydicom.dcmread(OVERLAPS)
    volume = build_volume(read_series(CT_3SLICE))
    regions = seg_masks(seg, volume)
    assert [r.label for r in regions] == [s.SegmentLabel for s in seg.SegmentSequence]
    assert [r.number for r in regions] == [1, 2, 3, 4, 5]
    expected = expected_masks(seg, volume)
    for region in regions:
        assert region.mask.sum() > 0
        assert np.array_equal(region.mask, expected[region.number])
    overlapping = [
        (a.number, b.number)
        for i, a in enumerate(regions)
        for b in regions[i + 1 :]
        if np.any(a.mask & b.mask)
    ]
    assert overlapping
    assert any(not region.mask[k].any() for region in regions for k in range(3))


@pytest.mark.parametrize("path", [LIVER, OVERLAPS], ids=["liver", "partial_overlaps"])
def test_plane_positions_place_frames_without_source_references(path: Path) -> None:
    volume = build_volume(read_series(CT_3SLICE))
    by_source = seg_masks(pydicom.dcmread(path), volume)
    seg = pydicom.dcmread(path)
    for group in seg.PerFrameFunctionalGroupsSequence:
        del group.DerivationImageSequence
    by_position = seg_masks(seg, volume)
    assert [r.number for r in by_position] == [r.number for r in by_source]
    for a, b in zip(by_position, by_source, strict=True):
        assert np.array_equal(a.mask, b.mask)


def liver_mask() -> np.ndarray:
    return expected_masks(pydicom.dcmread(LIVER), build_volume(read_series(CT_3SLICE)))[1]


def made_seg(
    images: list[Dataset],
    pixels: np.ndarray,
    segmentation_type: str,
    max_fractional_value: int = 255,
) -> Dataset:
    """A one-segment SEG made with highdicom, saved and read back."""
    for ds in images:
        if not ds.get("SpecificCharacterSet"):  # the CT has an empty one, which highdicom refuses
            del ds.SpecificCharacterSet
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Liver",
        segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=images,
        pixel_array=pixels,
        segmentation_type=segmentation_type,
        segment_descriptions=[segment],
        series_instance_uid=hd.UID(),
        series_number=100,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="pacsflow tests",
        manufacturer_model_name="test_seg_masks",
        software_versions="0",
        device_serial_number="0",
        max_fractional_value=max_fractional_value,
    )
    buffer = BytesIO()
    seg.save_as(buffer)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def test_fractional_seg_gives_float_masks() -> None:
    images = read_series(CT_3SLICE)
    mask = liver_mask()
    weights = np.array([0.25, 0.5, 1.0], dtype=np.float32)[:, None, None]
    seg = made_seg(images, mask * weights, "FRACTIONAL", max_fractional_value=200)
    assert seg.SegmentationType == "FRACTIONAL"
    (region,) = seg_masks(seg, build_volume(images))
    assert region.mask.dtype == np.float32
    assert region.mask.min() >= 0.0 and region.mask.max() <= 1.0
    assert np.array_equal(region.mask, mask * weights)


@pytest.mark.parametrize("source", ["all", "middle", "none"])
def test_sparse_seg_leaves_other_slices_empty(source: str) -> None:
    """One frame: made with all images as sources, with the middle one, or placed by position."""
    images = read_series(CT_3SLICE)
    mask = liver_mask()
    if source == "all":
        seg = made_seg(images, mask * np.array([0, 1, 0], bool)[:, None, None], "BINARY")
    else:
        seg = made_seg(images[1:2], mask[1:2], "BINARY")
    if source == "none":
        del seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence
    assert seg.NumberOfFrames == 1
    (region,) = seg_masks(seg, build_volume(images))
    assert np.array_equal(region.mask[1], mask[1])
    assert not region.mask[[0, 2]].any()


def test_seg_on_a_resampled_tilted_volume_follows_the_image() -> None:
    """Slice k shifted k pixels along the rows: its mask moves with it."""
    images = read_series(CT_3SLICE)
    spacing = float(images[0].PixelSpacing[1])
    for k, ds in enumerate(images):
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x + k * spacing, y, z]
    (region,) = seg_masks(pydicom.dcmread(LIVER), build_volume(images, resample=True))
    mask = liver_mask()
    assert np.array_equal(region.mask[0], mask[0])
    for k in (1, 2):
        assert np.array_equal(region.mask[k, :, k:], mask[k, :, :-k])
        assert not region.mask[k, :, :k].any()


def without_top_slice() -> ImageVolume:
    return build_volume(read_series(CT_3SLICE)[:2])


def other_frame_of_reference(seg: Dataset) -> Dataset:
    seg.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.2"
    return seg


def no_frame_of_reference(seg: Dataset) -> Dataset:
    del seg.FrameOfReferenceUID
    return seg


def flipped_rows_without_sources(seg: Dataset) -> Dataset:
    seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient = [
        -1,
        0,
        0,
        0,
        1,
        0,
    ]
    for group in seg.PerFrameFunctionalGroupsSequence:
        del group.DerivationImageSequence
    return seg


def no_segments(seg: Dataset) -> Dataset:
    del seg.SegmentSequence
    return seg


@pytest.mark.parametrize(
    ("change", "volume", "message"),
    [
        (
            other_frame_of_reference,
            None,
            r"is in frame of reference 1\.2\.826\.0\.1\.3680043\.8\.498\.2, series",
        ),
        (None, "ibsi", r"has 512x512 pixels per frame, series .* 201x204 \(rows x columns\)"),
        (
            no_frame_of_reference,
            "two",
            r"has no frame of reference and its frames name no image of series",
        ),
        (
            None,
            "two",
            r"a plane at \[-235\.2, -226\.8, -126\.69\] mm lies outside the image volume",
        ),
        (flipped_rows_without_sources, None, r"frames have row direction \[-1\.0, 0\.0, 0\.0\]"),
        (no_segments, None, r"cannot be read as a segmentation"),
    ],
    ids=["frame-of-reference", "rows", "no-reference", "outside", "orientation", "unreadable"],
)
def test_mismatches_are_refused(
    change: Callable[[Dataset], Dataset] | None, volume: str | None, message: str
) -> None:
    seg: Dataset = pydicom.dcmread(LIVER)
    if change is not None:
        seg = change(seg)
    if volume == "ibsi":
        target = build_volume([pydicom.dcmread(path) for path in IBSI_IMAGES.glob("*.dcm")])
    elif volume == "two":
        target = without_top_slice()
    else:
        target = build_volume(read_series(CT_3SLICE))
    with pytest.raises(RadiomicsError, match=f"SEG {seg.SOPInstanceUID}.*{message}"):
        seg_masks(seg, target)
