"""The ROIs of an RT Structure Set as masks on an image volume's grid.

Closed planar contours are filled on the image planes they were drawn on: a pixel belongs to
the ROI when its centre lies inside, and contours on the same plane combine by the even-odd
rule, so an inner contour cuts a hole. The planes are then carried onto the volume's grid
(nearest plane, for a resampled volume), like the image itself.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
from pydicom import Dataset

from pacsflow.operators.radiomics.model import ImageVolume, RadiomicsError, RegionMask, RegionSource
from pacsflow.operators.radiomics.volume import Grid, resample_stack

CLOSED_PLANAR = "CLOSED_PLANAR"


def rtstruct_masks(
    rtstruct: Dataset, volume: ImageVolume, roi_names: Collection[str] | None = None
) -> list[RegionMask]:
    """One mask per ROI (those in ``roi_names`` if given), in Structure Set ROI order.

    An ROI without closed planar contours (only points, say) gets an empty mask, so the
    caller can report it as not computed.
    """
    rois = list(rtstruct.get("StructureSetROISequence", []))
    if roi_names is not None:
        rois = _named(rois, roi_names, rtstruct)
    contours = {
        int(item.ReferencedROINumber): item.get("ContourSequence", [])
        for item in rtstruct.get("ROIContourSequence", [])
    }
    planes = _Planes(volume)
    return [_region(rtstruct, roi, contours.get(int(roi.ROINumber), []), planes) for roi in rois]


def _region(
    rtstruct: Dataset, roi: Dataset, contours: list[Dataset], planes: _Planes
) -> RegionMask:
    where = f"RTSTRUCT {rtstruct.SOPInstanceUID} ROI {roi.ROINumber} ({roi.get('ROIName', '')})"
    _check_frame_of_reference(roi, planes.volume, where)
    filled = planes.fill(contours, where)
    return RegionMask(
        source=RegionSource.RTSTRUCT,
        number=int(roi.ROINumber),
        label=str(roi.get("ROIName", "")),
        mask=resample_stack(filled, planes.positions, planes.grid, linear=False),
        segmentation=rtstruct,
    )


class _Planes:
    """The image planes of a volume: where each sits, and how to fill contours on them."""

    def __init__(self, volume: ImageVolume) -> None:
        self.volume = volume
        self.grid = Grid.of(volume.image)
        self.positions = np.array(
            [[float(v) for v in ds.ImagePositionPatient] for ds in volume.source_images]
        )
        self.along = self.positions @ self.grid.axes[:, 2]
        _, self.rows, self.columns = self.grid.shape

    def fill(self, contours: list[Dataset], where: str) -> np.ndarray:
        """(planes, rows, columns) bool: the closed planar contours filled, even-odd."""
        crossings = np.zeros((len(self.positions), self.rows, self.columns + 1), np.uint8)
        for number, contour in enumerate(contours, start=1):
            if contour.get("ContourGeometricType") != CLOSED_PLANAR:
                continue
            points = _points(contour, f"{where} contour {number}")
            plane = self._plane_of(points, f"{where} contour {number}")
            x, y = self._pixel_coordinates(points, plane)
            rows, columns = _crossings(x, y, self.rows, self.columns)
            np.add.at(crossings[plane], (rows, columns), 1)
        parity = np.cumsum(crossings, axis=2, dtype=np.uint8) % 2  # wraps at 256: still even-odd
        return parity[:, :, : self.columns] == 1

    def _plane_of(self, points: np.ndarray, where: str) -> int:
        """The plane the contour lies on: the nearest within half a slice spacing."""
        along = points @ self.grid.axes[:, 2]
        half = self.grid.spacing[2] / 2
        if np.ptp(along) > half:
            raise RadiomicsError(
                f"{where} is not parallel to the image planes: it spans {np.ptp(along):.2f} mm "
                "along the slice normal"
            )
        distance = np.abs(self.along - along.mean())
        plane = int(np.argmin(distance))
        if distance[plane] > half:
            raise RadiomicsError(
                f"{where} lies {distance[plane]:.2f} mm from the nearest image plane (at "
                f"{self.along[plane]:.2f} mm along the slice normal, the contour at "
                f"{along.mean():.2f} mm); its image is not in the series"
            )
        return plane

    def _pixel_coordinates(self, points: np.ndarray, plane: int) -> tuple[np.ndarray, np.ndarray]:
        """Continuous column and row indices of the points on the plane (pixel centres whole)."""
        offset = points - self.positions[plane]
        x = offset @ self.grid.axes[:, 0] / self.grid.spacing[0]
        y = offset @ self.grid.axes[:, 1] / self.grid.spacing[1]
        return x, y


def _crossings(
    x: np.ndarray, y: np.ndarray, rows: int, columns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Where the closed polygon's edges cross rows of pixel centres.

    Returns each crossing's row and the first column whose centre is at or right of it; an
    edge crosses row r when r lies in [lower end, upper end), so vertices count once.
    """
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    first = np.ceil(np.minimum(y, y1))
    counts = (np.ceil(np.maximum(y, y1)) - first).astype(int)
    edge = np.repeat(np.arange(len(x)), counts)
    row = first[edge] + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    at = x[edge] + (row - y[edge]) * (x1[edge] - x[edge]) / (y1[edge] - y[edge])
    inside = (row >= 0) & (row < rows)
    column = np.clip(np.ceil(at[inside]), 0, columns).astype(int)
    return row[inside].astype(int), column


def _points(contour: Dataset, where: str) -> np.ndarray:
    data = np.asarray(contour.get("ContourData") or [], dtype=float)
    if data.size == 0 or data.size % 3:
        raise RadiomicsError(f"{where} has {data.size} Contour Data values, not triplets")
    return data.reshape(-1, 3)


def _named(rois: list[Dataset], names: Collection[str], rtstruct: Dataset) -> list[Dataset]:
    missing = set(names) - {str(roi.get("ROIName", "")) for roi in rois}
    if missing:
        raise RadiomicsError(
            f"RTSTRUCT {rtstruct.SOPInstanceUID} has no ROI named {', '.join(sorted(missing))}"
        )
    return [roi for roi in rois if str(roi.get("ROIName", "")) in names]


def _check_frame_of_reference(roi: Dataset, volume: ImageVolume, where: str) -> None:
    theirs = roi.get("ReferencedFrameOfReferenceUID", "")
    ours = volume.frame_of_reference_uid
    if theirs and ours and theirs != ours:
        raise RadiomicsError(
            f"{where} is in frame of reference {theirs}, series {volume.series_instance_uid} "
            f"in {ours}"
        )
