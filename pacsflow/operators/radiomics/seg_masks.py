"""The segments of a DICOM SEG as masks on an image volume's grid.

Frames are matched to slices by the source image each frame names, which survives rounding in
positions; a SEG whose frames name no image of the volume is placed by its frames' plane
positions instead, provided it shares the volume's frame of reference. Each segment gets its
own mask, so overlapping segments stay whole; fractional segments give values in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom import Dataset

from pacsflow.operators.radiomics.model import ImageVolume, RadiomicsError, RegionMask, RegionSource
from pacsflow.operators.radiomics.references import frame_source_instances
from pacsflow.operators.radiomics.volume import (
    ORIENTATION_TOLERANCE,
    PIXEL_SPACING_RTOL,
    Grid,
    headers,
    place_planes,
    resample_stack,
)

HIGHDICOM_ERRORS = (AttributeError, KeyError, RuntimeError, ValueError)


def seg_masks(seg: Dataset, volume: ImageVolume) -> list[RegionMask]:
    """One mask per segment, in Segment Number order; empty where the SEG has no frame."""
    where = f"SEG {seg.SOPInstanceUID}"
    _check_matches(seg, volume, where)
    segmentation = _segmentation(seg, where)
    numbers = segmentation.get_segment_numbers()
    try:
        masks = _masks(seg, segmentation, numbers, volume)
    except HIGHDICOM_ERRORS as exc:
        raise RadiomicsError(f"{where}: {exc}") from exc
    header = headers(seg)
    return [
        RegionMask(
            source=RegionSource.SEG,
            number=number,
            label=str(segmentation.get_segment_description(number).segment_label),
            mask=mask,
            segmentation=header,
        )
        for number, mask in zip(numbers, masks, strict=True)
    ]


def _masks(
    seg: Dataset, segmentation: hd.seg.Segmentation, numbers: list[int], volume: ImageVolume
) -> list[np.ndarray]:
    """One array per segment: bool, or float32 in [0, 1] for a fractional SEG."""
    fractional = segmentation.segmentation_type == hd.seg.SegmentationTypeValues.FRACTIONAL
    dtype = np.float32 if fractional else np.bool_
    grid = Grid.of(volume.image)
    if _frames_come_from(seg, volume):
        planes, positions = _planes_by_source(segmentation, numbers, dtype, volume)
        return [
            resample_stack(planes[..., i], positions, grid, linear=fractional)
            for i in range(len(numbers))
        ]
    planes, positions = _planes_by_position(segmentation, numbers, dtype, grid)
    return [place_planes(planes[..., i], positions, grid) for i in range(len(numbers))]


def _segmentation(seg: Dataset, where: str) -> hd.seg.Segmentation:
    try:
        return hd.seg.Segmentation.from_dataset(seg, copy=True)
    except HIGHDICOM_ERRORS as exc:
        raise RadiomicsError(f"{where} cannot be read as a segmentation: {exc}") from exc


def _check_matches(seg: Dataset, volume: ImageVolume, where: str) -> None:
    """The SEG must have been drawn on this volume's frame of reference and pixel grid."""
    columns, rows, _ = volume.image.GetSize()
    if (seg.Rows, seg.Columns) != (rows, columns):
        raise RadiomicsError(
            f"{where} has {seg.Rows}x{seg.Columns} pixels per frame, series "
            f"{volume.series_instance_uid} {rows}x{columns} (rows x columns)"
        )
    ours, theirs = seg.get("FrameOfReferenceUID", ""), volume.frame_of_reference_uid
    if ours and theirs and ours != theirs:
        raise RadiomicsError(
            f"{where} is in frame of reference {ours}, series {volume.series_instance_uid} "
            f"in {theirs}"
        )
    if not ours and not _frames_come_from(seg, volume):
        raise RadiomicsError(
            f"{where} has no frame of reference and its frames name no image of series "
            f"{volume.series_instance_uid} as their source"
        )


def _frames_come_from(seg: Dataset, volume: ImageVolume) -> bool:
    """Whether every frame names its source image and all those images are in the volume."""
    sources = set(frame_source_instances(seg))
    return bool(sources) and sources <= {ds.SOPInstanceUID for ds in volume.source_images}


def _planes_by_source(
    segmentation: hd.seg.Segmentation,
    numbers: Sequence[int],
    dtype: type,
    volume: ImageVolume,
) -> tuple[np.ndarray, np.ndarray]:
    """(n, rows, columns, segments) planes, one per source image, and their positions.

    They are the full stack the volume was built from, so a resampled volume gets its masks
    resampled the same way (nearest plane, or linearly for fractional segments).

    Spatial locations are taken as preserved: many writers (dcmqi among them) leave Spatial
    Locations Preserved out, and the frame of reference and pixel grid were checked.
    """
    planes = segmentation.get_pixels_by_source_instance(
        [ds.SOPInstanceUID for ds in volume.source_images],
        segment_numbers=numbers,
        ignore_spatial_locations=True,
        assert_missing_frames_are_empty=True,
        dtype=dtype,
    )
    positions = np.array(
        [[float(v) for v in ds.ImagePositionPatient] for ds in volume.source_images]
    )
    return planes, positions


def _planes_by_position(
    segmentation: hd.seg.Segmentation,
    numbers: Sequence[int],
    dtype: type,
    grid: Grid,
) -> tuple[np.ndarray, np.ndarray]:
    """(n, rows, columns, segments) planes of the SEG's own stack and their positions.

    Each must lie on a slice of the volume: frames naming no source image are not resampled.
    """
    stack = segmentation.get_volume(
        segment_numbers=numbers, dtype=dtype, allow_missing_positions=True
    )
    slice_axis, down_rows, along_rows = stack.direction.T
    pixel_spacing = np.array([stack.spacing[2], stack.spacing[1]])
    same_axes = np.allclose(
        [along_rows, down_rows], grid.axes[:, :2].T, atol=ORIENTATION_TOLERANCE
    ) and np.allclose(pixel_spacing, grid.spacing[:2], rtol=PIXEL_SPACING_RTOL, atol=0)
    if not same_axes:
        raise RadiomicsError(
            f"frames have row direction {along_rows.round(4).tolist()}, column "
            f"direction {down_rows.round(4).tolist()} and pixel spacing "
            f"{pixel_spacing.tolist()}, the images {grid.axes[:, 0].round(4).tolist()}, "
            f"{grid.axes[:, 1].round(4).tolist()} and {grid.spacing[:2].tolist()}"
        )
    steps = np.arange(stack.spatial_shape[0])[:, None] * slice_axis * stack.spacing[0]
    return stack.array, np.asarray(stack.position) + steps
