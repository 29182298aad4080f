"""build_volume against SimpleITK's own series reader, and every way a series is refused."""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom import Dataset

from pacsflow.operators.radiomics.model import RadiomicsError
from pacsflow.operators.radiomics.volume import Grid, build_volume, place_planes, resample_stack
from tests.conftest import SHARED_DATA

IBSI_IMAGES = SHARED_DATA / "ibsi-ct-phantom" / "image"
CT_3SLICE = SHARED_DATA / "dcmqi-seg" / "ct-3slice"


def read_series(folder: Path) -> list[Dataset]:
    return [pydicom.dcmread(path) for path in sorted(folder.glob("*.dcm"))]


def by_position(datasets: list[Dataset]) -> list[Dataset]:
    """Axial series here: the slice normal is +z."""
    return sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))


@pytest.mark.parametrize("folder", [IBSI_IMAGES, CT_3SLICE], ids=["ibsi-60", "ct-3slice"])
def test_geometry_and_values_match_simpleitk(folder: Path) -> None:
    datasets = read_series(folder)
    random.Random(5).shuffle(datasets)
    volume = build_volume(datasets)

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    expected = reader.Execute()
    assert volume.image.GetSize() == expected.GetSize()
    assert np.allclose(volume.image.GetOrigin(), expected.GetOrigin(), atol=1e-6)
    assert np.allclose(volume.image.GetSpacing(), expected.GetSpacing(), atol=1e-6)
    assert np.allclose(volume.image.GetDirection(), expected.GetDirection(), atol=1e-6)
    assert volume.array().dtype == np.float32
    assert np.array_equal(volume.array(), sitk.GetArrayFromImage(expected))


def test_slices_keep_their_headers_in_stack_order() -> None:
    datasets = read_series(IBSI_IMAGES)
    volume = build_volume(datasets[::-1])
    expected = by_position(datasets)
    assert [ds.SOPInstanceUID for ds in volume.source_images] == [
        ds.SOPInstanceUID for ds in expected
    ]
    assert not any("PixelData" in ds for ds in volume.source_images)
    assert "PixelData" in datasets[0]
    first = expected[0]
    assert (volume.study_instance_uid, volume.series_instance_uid) == (
        first.StudyInstanceUID,
        first.SeriesInstanceUID,
    )
    assert volume.frame_of_reference_uid == first.FrameOfReferenceUID


def test_rescale_applies_per_slice() -> None:
    datasets = by_position(read_series(CT_3SLICE))
    stored = [ds.pixel_array.astype(np.float32) for ds in datasets]
    datasets[1].RescaleSlope, datasets[1].RescaleIntercept = 2, -1000
    volume = build_volume(datasets)
    assert np.array_equal(volume.array()[0], stored[0] - 1024)
    assert np.array_equal(volume.array()[1], stored[1] * 2 - 1000)


def test_single_slice_takes_spacing_from_slice_thickness() -> None:
    volume = build_volume(read_series(CT_3SLICE)[:1])
    assert volume.image.GetSize() == (512, 512, 1)
    assert volume.image.GetSpacing()[2] == pytest.approx(1.25)


def shift_position(ds: Dataset, dx: float = 0.0, dz: float = 0.0) -> None:
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    ds.ImagePositionPatient = [x + dx, y, z + dz]


def drop_middle_slice(datasets: list[Dataset]) -> list[Dataset]:
    return [ds for k, ds in enumerate(by_position(datasets)) if k != 30]


def tilt(datasets: list[Dataset], degrees: float = 10.0) -> list[Dataset]:
    """Shear the stack along x as a gantry tilt does."""
    ordered = by_position(datasets)
    for ds in ordered:
        along = float(ds.ImagePositionPatient[2]) - float(ordered[0].ImagePositionPatient[2])
        shift_position(ds, dx=along * np.tan(np.radians(degrees)))
    return ordered


def rotate_one_orientation(datasets: list[Dataset]) -> list[Dataset]:
    angle = np.radians(1.0)
    datasets[7].ImageOrientationPatient = [
        np.cos(angle),
        np.sin(angle),
        0,
        -np.sin(angle),
        np.cos(angle),
        0,
    ]
    return datasets


def duplicate_position(datasets: list[Dataset]) -> list[Dataset]:
    ordered = by_position(datasets)
    ordered[5].ImagePositionPatient = ordered[6].ImagePositionPatient
    return ordered


def set_attribute(keyword: str, value: object) -> Callable[[list[Dataset]], list[Dataset]]:
    def change(datasets: list[Dataset]) -> list[Dataset]:
        setattr(datasets[3], keyword, value)
        return datasets

    return change


def delete_attribute(keyword: str) -> Callable[[list[Dataset]], list[Dataset]]:
    def change(datasets: list[Dataset]) -> list[Dataset]:
        delattr(datasets[3], keyword)
        return datasets

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            drop_middle_slice,
            r"non-uniform slice spacing: .* is 1\.\d+ mm off a uniform grid .*"
            r"gaps range from 3\.000 to 6\.000 mm",
        ),
        (tilt, r"gantry tilt or sheared stack: .* \(10\.00 degrees\)"),
        (
            rotate_one_orientation,
            r"ImageOrientationPatient \[0\.9998, 0\.0175, .* differs from "
            r"\[1\.0, 0\.0, 0\.0, 0\.0, 1\.0, 0\.0\]",
        ),
        (duplicate_position, r"are at the same position \(.* mm along the slice normal\)"),
        (set_attribute("NumberOfFrames", 2), r"is a multi-frame image \(2 frames\)"),
        (set_attribute("SamplesPerPixel", 3), r"has 3 samples per pixel, not 1"),
        (set_attribute("Rows", 200), r"Rows 200 differs from 201 of instance"),
        (set_attribute("SeriesInstanceUID", "1.2.3"), r"SeriesInstanceUID 1\.2\.3 differs"),
        (set_attribute("FrameOfReferenceUID", "1.2.3"), r"FrameOfReferenceUID 1\.2\.3 differs"),
        (set_attribute("PixelSpacing", [0.98, 0.98]), r"PixelSpacing \[0\.98, 0\.98\] differs"),
        (delete_attribute("ImagePositionPatient"), r"has no ImagePositionPatient"),
    ],
    ids=[
        "non-uniform",
        "gantry-tilt",
        "orientation",
        "duplicate",
        "multi-frame",
        "samples-per-pixel",
        "rows",
        "series",
        "frame-of-reference",
        "pixel-spacing",
        "no-position",
    ],
)
def test_rejects_with_reason(
    change: Callable[[list[Dataset]], list[Dataset]], message: str
) -> None:
    datasets = change(read_series(IBSI_IMAGES))
    with pytest.raises(RadiomicsError, match=message):
        build_volume(datasets)


def test_rejects_no_images() -> None:
    with pytest.raises(RadiomicsError, match="no images"):
        build_volume([])


def test_misfits_suggest_resampling() -> None:
    with pytest.raises(RadiomicsError, match="resample=True"):
        build_volume(drop_middle_slice(read_series(IBSI_IMAGES)))


def test_resample_fills_a_missing_slice() -> None:
    full = build_volume(read_series(IBSI_IMAGES))
    gapped = drop_middle_slice(read_series(IBSI_IMAGES))
    volume = build_volume(gapped, resample=True)
    assert volume.image.GetSize() == full.image.GetSize()
    assert volume.image.GetSpacing() == pytest.approx(full.image.GetSpacing())
    assert volume.image.GetOrigin() == pytest.approx(full.image.GetOrigin())
    assert len(volume.source_images) == 59
    array, original = volume.array(), full.array()
    kept = [k for k in range(60) if k != 30]
    assert np.allclose(array[kept], original[kept], atol=1e-3)
    assert np.allclose(array[30], (original[29] + original[31]) / 2, atol=1e-3)


def test_resample_undoes_a_tilt() -> None:
    """Slice k shifted k pixels along the rows comes back onto the first slice's columns."""
    datasets = by_position(read_series(CT_3SLICE))
    original = sitk.GetArrayFromImage(build_volume(datasets).image)
    column_spacing = float(datasets[0].PixelSpacing[1])
    for k, ds in enumerate(datasets):
        shift_position(ds, dx=k * column_spacing)
    volume = build_volume(datasets, resample=True)
    array, fill = volume.array(), original.min()
    assert volume.image.GetSize() == (512, 512, 3)
    assert np.array_equal(array[0], original[0])
    for k in (1, 2):
        assert np.allclose(array[k, :, k:], original[k, :, :-k])
        assert np.all(array[k, :, :k] == fill)


def test_planes_outside_the_grid_are_refused() -> None:
    grid = Grid.of(build_volume(read_series(CT_3SLICE)).image)
    planes = np.ones((1, 512, 512), dtype=bool)
    beyond = grid.origin - 5 * grid.axes[:, 2] * grid.spacing[2]
    with pytest.raises(RadiomicsError, match="lies outside the image volume"):
        place_planes(planes, beyond[None], grid)
    between = grid.origin + 0.5 * grid.axes[:, 2] * grid.spacing[2]
    for place in (place_planes, partial(resample_stack, linear=False)):
        with pytest.raises(RadiomicsError, match="lies off the volume's voxel grid"):
            place(planes, between[None], grid)
