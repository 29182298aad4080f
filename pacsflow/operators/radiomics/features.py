"""pyradiomics features of one segment or ROI on its image volume.

pyradiomics runs on SimpleITK images in memory: the volume's image as it is, and the region's
mask as a label image (label 1) with exactly the volume's geometry, so no resampling or
tolerance is needed to match them. Fractional SEG segments are thresholded at 0.5: a voxel
belongs to the region when at least half of it does (IBSI's partial-volume threshold for
ROI masks). A region that cannot be computed (empty, or refused by pyradiomics, e.g. a single
voxel) is returned as not computed with the reason; it never stops the other regions. Only a
parameter file that cannot be loaded raises, as it concerns every region.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import radiomics
import SimpleITK as sitk

from pacsflow.operators.radiomics.model import ImageVolume, RegionMask
from pacsflow.operators.radiomics.parameters import load_extractor

logger = logging.getLogger(__name__)

LABEL = 1
FRACTION_THRESHOLD = 0.5
DIAGNOSTICS_PREFIX = "diagnostics_"
EMPTY_SEGMENT = "empty segment"
EMPTY_AFTER_THRESHOLD = f"empty segment (no voxel with a fraction of at least {FRACTION_THRESHOLD})"


@dataclass(frozen=True)
class RegionFeatures:
    """What pyradiomics computed for one region, or why it computed nothing.

    ``features`` maps pyradiomics' feature keys (``original_glcm_Idm``; diagnostics left out)
    to their values, which may be NaN where pyradiomics could not compute a single feature.
    ``normalized`` says whether the parameter set had pyradiomics normalise intensities, which
    leaves first-order features without the image's unit.
    """

    number: int
    label: str
    pyradiomics_version: str
    features: dict[str, float] = field(default_factory=dict)
    not_computed: str | None = None
    normalized: bool = False

    @property
    def computed(self) -> bool:
        return self.not_computed is None


@cache
def pyradiomics_version() -> str:
    """pyradiomics' version without the leading "v" its ``__version__`` carries."""
    return str(radiomics.__version__).removeprefix("v")


def extract_features(volume: ImageVolume, region: RegionMask, parameters: Path) -> RegionFeatures:
    """pyradiomics' features of ``region`` on ``volume`` with the parameter file ``parameters``.

    Raises RadiomicsError only if the parameter file cannot be loaded.
    """
    extractor = load_extractor(parameters)
    normalized = bool(extractor.settings.get("normalize", False))

    def not_computed(reason: str) -> RegionFeatures:
        return RegionFeatures(
            number=region.number,
            label=region.label,
            pyradiomics_version=pyradiomics_version(),
            not_computed=reason,
            normalized=normalized,
        )

    shape = volume.array().shape
    if region.mask.shape != shape:
        return not_computed(f"mask shape {region.mask.shape} differs from image shape {shape}")
    if region.is_empty:
        return not_computed(EMPTY_SEGMENT)
    binary = binary_mask(region.mask)
    if not binary.any():
        return not_computed(EMPTY_AFTER_THRESHOLD)

    mask_image = sitk.GetImageFromArray(binary.astype(np.uint8))
    mask_image.CopyInformation(volume.image)
    try:
        result = extractor.execute(volume.image, mask_image, label=LABEL)
    except Exception as exc:  # pyradiomics refuses a mask with ValueError, its C code with others
        reason = " ".join(str(exc).split()) or type(exc).__name__
        logger.warning(
            "pyradiomics did not compute region %d of %s %s: %s",
            region.number,
            region.source.value,
            region.segmentation.get("SOPInstanceUID", "?"),
            reason,
        )
        return not_computed(f"pyradiomics: {reason}")
    features = {
        name: float(value)
        for name, value in result.items()
        if not name.startswith(DIAGNOSTICS_PREFIX)
    }
    failed = sorted(name for name, value in features.items() if not math.isfinite(value))
    if failed:
        logger.warning(
            "pyradiomics computed no value for %s of region %d: %s",
            region.source.value,
            region.number,
            ", ".join(failed),
        )
    return RegionFeatures(
        number=region.number,
        label=region.label,
        pyradiomics_version=pyradiomics_version(),
        features=features,
        normalized=normalized,
    )


def binary_mask(mask: np.ndarray) -> np.ndarray:
    """The region as booleans: fractional masks thresholded at ``FRACTION_THRESHOLD``."""
    if mask.dtype == np.bool_:
        return mask
    if np.issubdtype(mask.dtype, np.floating):
        return np.asarray(mask >= FRACTION_THRESHOLD)
    return np.asarray(mask != 0)
