"""What the radiomics steps hand each other: an image volume and masks on its grid."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import SimpleITK as sitk
from pydicom import Dataset


class RadiomicsError(ValueError):
    """The input cannot be processed as it is; the message says what is wrong and where."""


@dataclass(frozen=True)
class ImageVolume:
    """A series as one 3-D image with its DICOM geometry.

    ``image`` holds modality values (rescale slope and intercept applied) with spacing,
    origin and direction from the headers. ``source_images`` are the headers (no pixel data)
    of the instances read, in stack order: slice ``k`` of ``array()`` (z, y, x) came from
    ``source_images[k]``, unless the volume was resampled onto a uniform grid.
    """

    image: sitk.Image
    source_images: tuple[Dataset, ...]
    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str

    def array(self) -> np.ndarray:
        """A copy: a view into ``image`` would outlive it if the volume were freed."""
        return sitk.GetArrayFromImage(self.image)


class RegionSource(Enum):
    SEG = "SEG"
    RTSTRUCT = "RTSTRUCT"


@dataclass(frozen=True)
class RegionMask:
    """One segment of a SEG or ROI of an RTSTRUCT, on the grid of an ImageVolume.

    ``mask`` has the volume's (z, y, x) shape: bool for binary segments and ROIs, float in
    [0, 1] for fractional segments. ``number`` is the Segment Number or ROI Number, unique
    within ``segmentation`` (the SEG or RTSTRUCT data set, headers only).
    """

    source: RegionSource
    number: int
    label: str
    mask: np.ndarray
    segmentation: Dataset

    @property
    def is_empty(self) -> bool:
        return not bool(np.any(self.mask))
