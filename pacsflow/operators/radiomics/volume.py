"""An image series as one 3-D image with the geometry its headers give.

Features are only comparable between scans when the voxel grid is what the scanner wrote, so
a series whose slices do not form a uniform, unsheared stack is rejected, naming the slice and
the size of the misfit, unless the caller asks for resampling onto a uniform grid.

Tolerances: a slice position may stray from the uniform grid by 1 % of the spacing, and by
at least 0.01 mm, the precision to which many writers round Image Position (Patient). Slices
closer than 0.01 mm to each other are duplicates. Orientation cosines may differ by 1e-4
(0.006 degrees) and pixel spacings by 1e-4 relative, so positions far from the origin stay
within a fraction of a pixel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from pydicom import Dataset
from pydicom.pixels import apply_modality_lut

from pacsflow.operators.radiomics.model import ImageVolume, RadiomicsError

logger = logging.getLogger(__name__)

ABS_TOLERANCE_MM = 0.01
REL_TOLERANCE = 0.01
ORIENTATION_TOLERANCE = 1e-4
PIXEL_SPACING_RTOL = 1e-4
PIXEL_DATA_GROUP = 0x7FE00000
RESAMPLE_HINT = "build the volume with resample=True to resample it onto a uniform grid"


def tolerance(spacing: float) -> float:
    """How far a position may stray from a grid of this spacing (mm) and still be on it."""
    return max(ABS_TOLERANCE_MM, REL_TOLERANCE * spacing)


@dataclass(frozen=True, eq=False)
class Grid:
    """Where the voxels of a volume sit: voxel (x, y, z) at origin + axes @ (index * spacing).

    ``axes`` columns are the row direction, the column direction and the slice normal (DICOM
    patient coordinates, which are ITK's LPS); ``shape`` is the array's (z, y, x).
    """

    origin: np.ndarray
    axes: np.ndarray
    spacing: np.ndarray
    shape: tuple[int, int, int]

    @classmethod
    def of(cls, image: sitk.Image) -> Grid:
        x, y, z = image.GetSize()
        return cls(
            origin=np.array(image.GetOrigin()),
            axes=np.array(image.GetDirection()).reshape(3, 3),
            spacing=np.array(image.GetSpacing()),
            shape=(z, y, x),
        )

    def continuous_index(self, points: np.ndarray) -> np.ndarray:
        """(n, 3) patient positions in mm to (n, 3) continuous (x, y, z) voxel indices."""
        return np.linalg.solve(self.axes * self.spacing, (points - self.origin).T).T

    def image(self, array: np.ndarray) -> sitk.Image:
        image = sitk.GetImageFromArray(array)
        image.SetOrigin(tuple(self.origin))
        image.SetDirection(tuple(self.axes.ravel()))
        image.SetSpacing(tuple(self.spacing))
        return image


def build_volume(datasets: Sequence[Dataset], resample: bool = False) -> ImageVolume:
    """Stack a single-frame image series into a volume of modality values (float32).

    Slices are sorted along the slice normal. With ``resample`` a stack with non-uniform
    spacing (the median gap is kept) or a gantry tilt is interpolated linearly onto a uniform
    grid; ``source_images`` are then the original slices in stack order, no longer one per
    slice of the volume.
    """
    if not datasets:
        raise RadiomicsError("no images to build a volume from")
    normal = _axes(datasets[0])[:, 2]
    along = [float(_floats(ds, "ImagePositionPatient") @ normal) for ds in datasets]
    images = [datasets[i] for i in np.argsort(along, kind="stable")]
    _check_consistent(images)
    positions = np.stack([_floats(ds, "ImagePositionPatient") for ds in images])
    grid = _nominal_grid(images, positions)
    _check_no_duplicates(images, positions @ grid.axes[:, 2])
    misfits = _misfits(images, positions, grid)
    if misfits and not resample:
        raise RadiomicsError(f"{'; '.join(misfits)}; {RESAMPLE_HINT}")
    if misfits:
        grid = _uniform_grid(grid, positions)
        logger.info("series %s resampled to %s slices", images[0].SeriesInstanceUID, grid.shape[0])
    planes = np.stack([_modality_values(ds) for ds in images])
    array = resample_stack(planes, positions, grid, linear=True, fill=float(planes.min()))
    first = images[0]
    return ImageVolume(
        image=grid.image(array),
        source_images=tuple(headers(ds) for ds in images),
        study_instance_uid=first.StudyInstanceUID,
        series_instance_uid=first.SeriesInstanceUID,
        frame_of_reference_uid=first.get("FrameOfReferenceUID", ""),
    )


def headers(ds: Dataset) -> Dataset:
    """The data set without pixel data, to keep for provenance without keeping the pixels."""
    kept = Dataset({elem.tag: elem for elem in ds if elem.tag < PIXEL_DATA_GROUP})
    if hasattr(ds, "file_meta"):
        kept.file_meta = ds.file_meta
    return kept


def place_planes(
    planes: np.ndarray, positions: np.ndarray, grid: Grid, fill: float = 0.0
) -> np.ndarray:
    """Copy 2-D planes (n, rows, columns) onto the grid slices they lie on.

    ``positions`` are the planes' first pixels; slices without a plane keep ``fill`` (a SEG
    covering part of a volume). A plane off the grid's slices or columns is refused.
    """
    index = grid.continuous_index(positions)
    fits = _fits(index, grid)
    if not fits.all():
        where = positions[np.argmin(fits.all(axis=1))].round(2).tolist()
        raise RadiomicsError(f"a plane at {where} mm lies off the volume's voxel grid")
    slices = np.rint(index[:, 2]).astype(int)
    outside = (slices < 0) | (slices >= grid.shape[0])
    if outside.any():
        where = positions[np.argmax(outside)].round(2).tolist()
        raise RadiomicsError(f"a plane at {where} mm lies outside the image volume")
    out = np.full(grid.shape, fill, dtype=planes.dtype)
    out[slices] = planes
    return out


def resample_stack(
    planes: np.ndarray, positions: np.ndarray, grid: Grid, *, linear: bool, fill: float = 0.0
) -> np.ndarray:
    """Carry a stack of 2-D planes (n, rows, columns) onto ``grid``, interpolating if needed.

    A stack on consecutive grid slices is copied. Otherwise (a resampled grid) each plane is
    shifted in-plane onto the grid's columns (gantry tilt) and each slice interpolated from
    the planes either side, linearly or from the nearest; slices beyond the stack keep
    ``fill``. The planes share the grid's row and column directions and pixel spacing.
    """
    index = grid.continuous_index(positions)
    fits = _fits(index, grid)
    slices = np.sort(np.rint(index[:, 2]))
    if fits.all() and np.all(np.diff(slices) == 1):
        return place_planes(planes, positions, grid, fill)
    if len(planes) < 2:
        where = positions[0].round(2).tolist()
        raise RadiomicsError(f"a single plane at {where} mm lies off the volume's voxel grid")
    order = np.argsort(index[:, 2])
    shifted = np.stack(
        [
            planes[i] if fits[i, :2].all() else _shift(planes[i], index[i, :2], linear, fill)
            for i in order
        ]
    )
    out = np.full(grid.shape, fill, dtype=planes.dtype)
    margin = tolerance(grid.spacing[2]) / grid.spacing[2]
    return _interpolate_slices(shifted, index[order, 2], out, linear, margin)


def _fits(index: np.ndarray, grid: Grid) -> np.ndarray:
    """(n, 3) bool: whether each continuous index is on the grid, column, row and slice."""
    off = np.abs(index - np.rint(index)) * grid.spacing
    off[:, :2] = np.abs(index[:, :2]) * grid.spacing[:2]
    return off <= [tolerance(s) for s in grid.spacing]


def _interpolate_slices(
    planes: np.ndarray, z: np.ndarray, out: np.ndarray, linear: bool, margin: float
) -> np.ndarray:
    """Fill ``out``'s slices between the planes at continuous slice indices ``z`` (ascending)."""
    slices = np.arange(out.shape[0])
    upper = np.clip(np.searchsorted(z, slices), 1, len(z) - 1)
    lower = upper - 1
    weight = np.clip((slices - z[lower]) / (z[upper] - z[lower]), 0.0, 1.0)
    covered = (slices >= z[0] - margin) & (slices <= z[-1] + margin)
    if linear:
        w = weight[covered, None, None]
        values = planes[lower[covered]] * (1 - w) + planes[upper[covered]] * w
    else:
        values = planes[np.where(weight < 0.5, lower, upper)[covered]]
    out[covered] = values
    return out


def _shift(plane: np.ndarray, offset: np.ndarray, linear: bool, fill: float) -> np.ndarray:
    """Resample a plane whose first pixel sits at continuous index ``offset`` onto the grid's."""
    as_bool = plane.dtype == bool
    image = sitk.GetImageFromArray(plane.astype(np.uint8) if as_bool else plane)
    move = sitk.TranslationTransform(2, tuple(-float(o) for o in offset))
    method = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    moved = sitk.GetArrayFromImage(sitk.Resample(image, image, move, method, fill))
    return moved.astype(bool) if as_bool else moved


def _floats(ds: Dataset, keyword: str) -> np.ndarray:
    value = ds.get(keyword)
    if value is None or value == "":
        raise RadiomicsError(f"instance {ds.get('SOPInstanceUID', '?')} has no {keyword}")
    return np.array([float(v) for v in value])


def _axes(ds: Dataset) -> np.ndarray:
    """Columns: row direction, column direction, slice normal, as unit vectors."""
    orientation = _floats(ds, "ImageOrientationPatient")
    row, column = orientation[:3], orientation[3:]
    row, column = row / np.linalg.norm(row), column / np.linalg.norm(column)
    normal = np.cross(row, column)
    return np.column_stack([row, column, normal / np.linalg.norm(normal)])


def _check_consistent(images: Sequence[Dataset]) -> None:
    """Every slice must come from one single-frame series and share its in-plane grid."""
    first = images[0]
    orientation = _floats(first, "ImageOrientationPatient")
    spacing = _floats(first, "PixelSpacing")
    for ds in images:
        where = (
            f"instance {ds.get('SOPInstanceUID', '?')} of series {first.get('SeriesInstanceUID')}"
        )
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise RadiomicsError(
                f"{where} is a multi-frame image ({ds.NumberOfFrames} frames); "
                "only series of single-frame images are supported"
            )
        if int(ds.get("SamplesPerPixel", 1)) != 1:
            raise RadiomicsError(f"{where} has {ds.SamplesPerPixel} samples per pixel, not 1")
        for keyword in ("SeriesInstanceUID", "FrameOfReferenceUID", "Rows", "Columns"):
            if ds.get(keyword) != first.get(keyword):
                raise RadiomicsError(
                    f"{where}: {keyword} {ds.get(keyword)} differs from "
                    f"{first.get(keyword)} of instance {first.SOPInstanceUID}"
                )
        this = _floats(ds, "ImageOrientationPatient")
        if np.max(np.abs(this - orientation)) > ORIENTATION_TOLERANCE:
            raise RadiomicsError(
                f"{where}: ImageOrientationPatient {this.round(4).tolist()} differs from "
                f"{orientation.round(4).tolist()} of instance {first.SOPInstanceUID}"
            )
        this = _floats(ds, "PixelSpacing")
        if not np.allclose(this, spacing, rtol=PIXEL_SPACING_RTOL, atol=0):
            raise RadiomicsError(
                f"{where}: PixelSpacing {this.tolist()} differs from {spacing.tolist()} "
                f"of instance {first.SOPInstanceUID}"
            )


def _nominal_grid(images: Sequence[Dataset], positions: np.ndarray) -> Grid:
    """The grid from the first slice's position to the last's, in equal steps."""
    first = images[0]
    axes = _axes(first)
    along = positions @ axes[:, 2]
    if len(images) > 1:
        step = (along[-1] - along[0]) / (len(images) - 1)
    else:
        step = float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)
    row_spacing, column_spacing = _floats(first, "PixelSpacing")
    return Grid(
        origin=positions[0],
        axes=axes,
        spacing=np.array([column_spacing, row_spacing, step]),
        shape=(len(images), int(first.Rows), int(first.Columns)),
    )


def _uniform_grid(nominal: Grid, positions: np.ndarray) -> Grid:
    """The nominal grid with the median gap between slices, over the same extent."""
    along = positions @ nominal.axes[:, 2]
    step = float(np.median(np.diff(along)))
    extent = along[-1] - along[0]
    count = int(np.floor(extent / step + tolerance(step) / step)) + 1
    spacing = np.array([*nominal.spacing[:2], step])
    return Grid(nominal.origin, nominal.axes, spacing, (count, *nominal.shape[1:]))


def _check_no_duplicates(images: Sequence[Dataset], along: np.ndarray) -> None:
    gaps = np.diff(along)
    if len(gaps) and gaps.min() <= ABS_TOLERANCE_MM:
        k = int(np.argmin(gaps))
        raise RadiomicsError(
            f"instances {images[k].SOPInstanceUID} and {images[k + 1].SOPInstanceUID} of series "
            f"{images[k].SeriesInstanceUID} are at the same position ({along[k]:.3f} mm along "
            "the slice normal); a series with more than one image per position (echoes, "
            "phases, repeated acquisitions) must be split first"
        )


def _misfits(images: Sequence[Dataset], positions: np.ndarray, grid: Grid) -> list[str]:
    """What keeps the slices off the nominal grid: a gantry tilt, uneven slice spacing."""
    series = images[0].SeriesInstanceUID
    index = grid.continuous_index(positions)
    misfits = []
    in_plane = np.linalg.norm(index[:, :2] * grid.spacing[:2], axis=1)
    if in_plane.max() > tolerance(float(grid.spacing[:2].min())):
        k = int(np.argmax(in_plane))
        angle = np.degrees(np.arctan2(in_plane[k], abs(index[k, 2]) * grid.spacing[2]))
        misfits.append(
            f"series {series} has a gantry tilt or sheared stack: instance "
            f"{images[k].SOPInstanceUID} is {in_plane[k]:.3f} mm off the slice normal through "
            f"the first slice ({angle:.2f} degrees)"
        )
    off = np.abs(index[:, 2] - np.arange(len(images))) * grid.spacing[2]
    if off.max() > tolerance(grid.spacing[2]):
        k = int(np.argmax(off))
        gaps = np.diff(positions @ grid.axes[:, 2])
        misfits.append(
            f"series {series} has non-uniform slice spacing: instance {images[k].SOPInstanceUID} "
            f"is {off[k]:.3f} mm off a uniform grid of {grid.spacing[2]:.3f} mm (gaps range "
            f"from {gaps.min():.3f} to {gaps.max():.3f} mm; tolerance "
            f"{tolerance(grid.spacing[2]):.3f} mm)"
        )
    return misfits


def _modality_values(ds: Dataset) -> np.ndarray:
    """Stored values to modality values (rescale slope and intercept, or a Modality LUT)."""
    return np.asarray(apply_modality_lut(ds.pixel_array, ds), dtype=np.float32)
