"""RTSTRUCT ROIs as masks: the IBSI phantom's GTV against its NIfTI mask, synthetic contours."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid

from pacsflow.operators.radiomics.model import ImageVolume, RadiomicsError, RegionSource
from pacsflow.operators.radiomics.rtstruct_masks import rtstruct_masks
from pacsflow.operators.radiomics.volume import build_volume
from tests.conftest import SHARED_DATA

IBSI = SHARED_DATA / "ibsi-ct-phantom"
CT_3SLICE = SHARED_DATA / "dcmqi-seg" / "ct-3slice"


def read_series(folder: Path) -> list[Dataset]:
    """By position, lowest first (the slice normal is +z)."""
    datasets = [pydicom.dcmread(path) for path in folder.glob("*.dcm")]
    return sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float(np.sum(a & b)) / float(a.sum() + b.sum())


def ibsi_reference_mask(volume: ImageVolume) -> np.ndarray:
    """The phantom's NIfTI GTV mask, after checking it lies on the volume's grid."""
    reference = sitk.ReadImage(str(IBSI / "mask.nii.gz"))
    assert reference.GetSize() == volume.image.GetSize()
    assert np.allclose(reference.GetSpacing(), volume.image.GetSpacing(), atol=1e-4)
    assert np.allclose(reference.GetOrigin(), volume.image.GetOrigin(), atol=1e-4)
    assert np.allclose(reference.GetDirection(), volume.image.GetDirection(), atol=1e-6)
    return sitk.GetArrayFromImage(reference).astype(bool)


def test_ibsi_gtv_matches_the_phantom_mask() -> None:
    volume = build_volume(read_series(IBSI / "image"))
    rtstruct = pydicom.dcmread(IBSI / "rtstruct" / "DCM_RS_00060.dcm")
    (gtv,) = rtstruct_masks(rtstruct, volume, roi_names=["GTV-1"])
    assert (gtv.source, gtv.number, gtv.label) == (RegionSource.RTSTRUCT, 1, "GTV-1")
    reference = ibsi_reference_mask(volume)
    assert gtv.mask.dtype == bool
    assert gtv.mask.sum() == reference.sum() == 125256
    assert dice(gtv.mask, reference) >= 0.98
    assert np.flatnonzero(gtv.mask.any(axis=(1, 2))).tolist() == list(range(17, 43))


def test_ibsi_gtv_on_a_resampled_volume() -> None:
    """A slice missing outside the GTV: the volume is resampled, the mask is unchanged."""
    images = [ds for k, ds in enumerate(read_series(IBSI / "image")) if k != 5]
    volume = build_volume(images, resample=True)
    rtstruct = pydicom.dcmread(IBSI / "rtstruct" / "DCM_RS_00060.dcm")
    (gtv,) = rtstruct_masks(rtstruct, volume)
    assert np.array_equal(gtv.mask, ibsi_reference_mask(volume))


def test_contour_on_a_missing_image_is_refused() -> None:
    images = [ds for k, ds in enumerate(read_series(IBSI / "image")) if k != 30]
    volume = build_volume(images, resample=True)
    rtstruct = pydicom.dcmread(IBSI / "rtstruct" / "DCM_RS_00060.dcm")
    with pytest.raises(RadiomicsError, match=r"ROI 1 \(GTV-1\) contour \d+ lies 3\.00 mm from"):
        rtstruct_masks(rtstruct, volume)


def square(image: Dataset, first: float, last: float, dz: float = 0.0) -> list[float]:
    """Corners of a square from pixel (first, first) to (last, last) on an axial image, in mm."""
    x, y, z = (float(v) for v in image.ImagePositionPatient)
    row_spacing, column_spacing = (float(v) for v in image.PixelSpacing)
    corners = [(first, first), (last, first), (last, last), (first, last)]
    return [
        value
        for column, row in corners
        for value in (x + column * column_spacing, y + row * row_spacing, z + dz)
    ]


def contour(data: list[float], geometric_type: str = "CLOSED_PLANAR") -> Dataset:
    item = Dataset()
    item.ContourGeometricType = geometric_type
    item.NumberOfContourPoints = len(data) // 3
    item.ContourData = data
    return item


def rtstruct_on(images: list[Dataset], rois: dict[str, list[Dataset] | None]) -> Dataset:
    """An RTSTRUCT on ``images`` with an ROI per name (None: no ROI Contour item), read back."""
    first = images[0]
    ds = Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.Modality = RTStructureSetStorage, "RTSTRUCT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = first.StudyInstanceUID, generate_uid()
    ds.StructureSetLabel = "test"
    ds.StructureSetROISequence = Sequence()
    ds.ROIContourSequence = Sequence()
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName = number, name
        roi.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
        roi.ROIGenerationAlgorithm = "MANUAL"
        ds.StructureSetROISequence.append(roi)
        if contours is not None:
            item = Dataset()
            item.ReferencedROINumber = number
            item.ContourSequence = Sequence(contours)
            ds.ROIContourSequence.append(item)
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def pixels(first: int, last: int) -> tuple[slice, slice]:
    return slice(first, last + 1), slice(first, last + 1)


def test_inner_contour_cuts_a_hole() -> None:
    images = read_series(CT_3SLICE)
    volume = build_volume(images)
    rtstruct = rtstruct_on(
        images,
        {
            "RING": [
                contour(square(images[1], 100.5, 120.5)),
                contour(square(images[1], 105.5, 115.5)),
            ],
            "TWO SLICES": [
                contour(square(images[0], 10.2, 19.7)),
                contour(square(images[2], 10, 20)),
            ],
            "POINTS": [contour(square(images[1], 50, 50)[:3], "POINT")],
            "NO CONTOURS": None,
        },
    )
    ring, two_slices, points, no_contours = rtstruct_masks(rtstruct, volume)
    expected = np.zeros((3, 512, 512), bool)
    expected[1][pixels(101, 120)] = True
    expected[1][pixels(106, 115)] = False
    assert ring.mask.sum() == 300
    assert np.array_equal(ring.mask, expected)
    expected = np.zeros((3, 512, 512), bool)
    expected[0][pixels(11, 19)] = True
    expected[2][pixels(10, 19)] = True  # on the edge: top and left in, bottom and right out
    assert np.array_equal(two_slices.mask, expected)
    assert [r.label for r in (points, no_contours)] == ["POINTS", "NO CONTOURS"]
    assert points.is_empty and no_contours.is_empty
    assert points.mask.shape == (3, 512, 512)


def test_roi_names_select() -> None:
    images = read_series(CT_3SLICE)
    one = [contour(square(images[1], 100.5, 120.5))]
    rtstruct = rtstruct_on(images, {"A": one, "B": one, "C": one})
    selected = rtstruct_masks(rtstruct, build_volume(images), roi_names={"C", "A"})
    assert [(r.number, r.label) for r in selected] == [(1, "A"), (3, "C")]
    with pytest.raises(RadiomicsError, match="has no ROI named D, E"):
        rtstruct_masks(rtstruct, build_volume(images), roi_names=["A", "E", "D"])


def tilted_contour(images: list[Dataset]) -> Dataset:
    data = square(images[1], 100.5, 120.5)
    data[2] -= 2.0
    return contour(data)


def beyond_last_slice(images: list[Dataset]) -> Dataset:
    return contour(square(images[2], 100.5, 120.5, dz=1.0))


def not_triplets(images: list[Dataset]) -> Dataset:
    return contour(square(images[1], 100.5, 120.5)[:7])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            tilted_contour,
            r"ROI 1 \(X\) contour 1 is not parallel to the image planes: it spans 2\.00 mm",
        ),
        (beyond_last_slice, r"ROI 1 \(X\) contour 1 lies 1\.00 mm from the nearest image plane"),
        (not_triplets, r"ROI 1 \(X\) contour 1 has 7 Contour Data values, not triplets"),
    ],
    ids=["not-planar", "off-plane", "not-triplets"],
)
def test_bad_contours_are_refused(make: Callable[[list[Dataset]], Dataset], message: str) -> None:
    images = read_series(CT_3SLICE)
    rtstruct = rtstruct_on(images, {"X": [make(images)]})
    with pytest.raises(RadiomicsError, match=f"RTSTRUCT {rtstruct.SOPInstanceUID} {message}"):
        rtstruct_masks(rtstruct, build_volume(images))


def test_other_frame_of_reference_is_refused() -> None:
    images = read_series(CT_3SLICE)
    rtstruct = rtstruct_on(images, {"X": [contour(square(images[1], 100.5, 120.5))]})
    rtstruct.StructureSetROISequence[
        0
    ].ReferencedFrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.3"
    with pytest.raises(RadiomicsError, match=r"ROI 1 \(X\) is in frame of reference 1\.2\.826"):
        rtstruct_masks(rtstruct, build_volume(images))
