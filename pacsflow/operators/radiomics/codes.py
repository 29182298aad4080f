"""Coded concepts and UCUM units for pyradiomics features in a TID 1500 measurement report.

Feature names are pyradiomics' own keys, ``<image type>_<class>_<feature>`` (for example
``original_glcm_Idm``).

- A feature of the ``original`` image with an IBSI counterpart is coded with its IBSI code
  (coding scheme ``IBSI``, the IBSI reference manual's permanent identifiers, which DICOM
  PS3.16 lists as a coding scheme): ``original_glcm_Idm`` is ``(WF0Z, IBSI, "Inverse
  Difference Moment of GLCM")``. The table is ``ibsi_codes.tsv``, derived from pyradiomics'
  own mapping (see its header for the source, licence and corrections).
- Every other feature (no IBSI counterpart, a different definition such as pyradiomics'
  Kurtosis, which is IBSI's excess kurtosis + 3, or a filtered image type such as
  ``wavelet-LLH``) is coded in the private scheme ``99PACSFLOW``. The code meaning is the
  pyradiomics key; the code value is ``pyr-`` and the first 12 hex digits of the key's
  SHA-256: ``(pyr-02747a6c0d41, 99PACSFLOW, "original_firstorder_Kurtosis")``. Keys run to
  about 60 characters and Code Value (SH) holds 16; Long Code Value would hold them, but
  highdicom (0.28) cannot read a measurement group that contains one, nor can many other
  readers. The SR declares the scheme in its Coding Scheme Identification Sequence. The
  scheme has one more concept, ``(NotComputed, 99PACSFLOW, "Radiomics features not
  computed")``, the name of the TEXT item that says why a region has no features (see
  ``report``).

Units are UCUM: shape lengths mm, areas mm2, volumes mm3; first-order features in the image's
intensity unit (Hounsfield units ``[hnsf'U]`` for CT, ``1`` otherwise, squared for variance
and energy); texture features ``1``.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import highdicom as hd
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.sr.coding import Code

IBSI_SCHEME = "IBSI"
PRIVATE_SCHEME = "99PACSFLOW"
PRIVATE_SCHEME_NAME = "pacsflow radiomics concepts"
PRIVATE_SCHEME_ORGANIZATION = "pacsflow"
ORIGINAL_IMAGE_TYPE = "original"
PRIVATE_CODE_PREFIX = "pyr-"
MAX_CODE_VALUE = 16  # SH
MAX_CODE_MEANING = 64  # LO
CODES_FILE = Path(__file__).with_name("ibsi_codes.tsv")

UCUM = "UCUM"
NO_UNITS = Code("1", UCUM, "no units")
MILLIMETER = Code("mm", UCUM, "millimeter")
SQUARE_MILLIMETER = Code("mm2", UCUM, "square millimeter")
CUBIC_MILLIMETER = Code("mm3", UCUM, "cubic millimeter")
PER_MILLIMETER = Code("/mm", UCUM, "per millimeter")
HOUNSFIELD_UNIT = Code("[hnsf'U]", UCUM, "Hounsfield unit")

# Features whose value is not dimensionless, by class; everything else is "1".
_LENGTHS = frozenset(
    {
        "Maximum3DDiameter",
        "Maximum2DDiameterSlice",
        "Maximum2DDiameterColumn",
        "Maximum2DDiameterRow",
        "MaximumDiameter",
        "MajorAxisLength",
        "MinorAxisLength",
        "LeastAxisLength",
        "Perimeter",
    }
)
_AREAS = frozenset({"SurfaceArea", "MeshSurface", "PixelSurface"})
_VOLUMES = frozenset({"MeshVolume", "VoxelVolume"})
_INVERSE_LENGTHS = frozenset({"SurfaceVolumeRatio", "PerimeterSurfaceRatio"})
_INTENSITIES = frozenset(
    {
        "Mean",
        "Median",
        "Minimum",
        "Maximum",
        "10Percentile",
        "90Percentile",
        "InterquartileRange",
        "Range",
        "MeanAbsoluteDeviation",
        "RobustMeanAbsoluteDeviation",
        "RootMeanSquared",
        "StandardDeviation",
    }
)
_SQUARED_INTENSITIES = frozenset({"Variance", "Energy"})
_SHAPE_CLASSES = frozenset({"shape", "shape2D"})


@dataclass(frozen=True)
class FeatureName:
    """A pyradiomics feature key split into its parts."""

    image_type: str
    feature_class: str
    feature: str

    @classmethod
    def parse(cls, key: str) -> FeatureName:
        parts = key.split("_", 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(
                f"feature name {key!r} is not a pyradiomics key <image type>_<class>_<feature>"
            )
        return cls(*parts)

    @property
    def key(self) -> str:
        return f"{self.image_type}_{self.feature_class}_{self.feature}"


@cache
def ibsi_table() -> dict[tuple[str, str], hd.sr.CodedConcept]:
    """(pyradiomics class, feature) -> IBSI concept, from ``ibsi_codes.tsv``."""
    with CODES_FILE.open(newline="", encoding="utf-8") as f:
        lines = (line for line in f if not line.startswith("#"))
        rows = list(csv.DictReader(lines, delimiter="\t"))
    return {
        (row["pyradiomics_class"], row["pyradiomics_feature"]): hd.sr.CodedConcept(
            value=row["ibsi_code"], scheme_designator=IBSI_SCHEME, meaning=row["code_meaning"]
        )
        for row in rows
    }


@cache
def _ibsi_features() -> dict[str, tuple[str, str]]:
    return {concept.value: key for key, concept in ibsi_table().items()}


def feature_concept(key: str) -> hd.sr.CodedConcept:
    """The coded concept for a pyradiomics feature key (IBSI if it has one, else private)."""
    name = FeatureName.parse(key)
    if name.image_type == ORIGINAL_IMAGE_TYPE:
        concept = ibsi_table().get((name.feature_class, name.feature))
        if concept is not None:
            return concept
    if len(key) > MAX_CODE_MEANING:
        raise ValueError(f"feature name {key!r} is longer than {MAX_CODE_MEANING} characters")
    return hd.sr.CodedConcept(
        value=private_code_value(key), scheme_designator=PRIVATE_SCHEME, meaning=key
    )


def private_code_value(key: str) -> str:
    """The 99PACSFLOW code value of a pyradiomics key: short enough for Code Value (SH)."""
    digits = MAX_CODE_VALUE - len(PRIVATE_CODE_PREFIX)
    return PRIVATE_CODE_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:digits]


def feature_key(concept: hd.sr.CodedConcept | Code) -> str:
    """The pyradiomics feature key a concept written by ``feature_concept`` stands for."""
    if concept.scheme_designator == PRIVATE_SCHEME:
        key = FeatureName.parse(concept.meaning).key
        if private_code_value(key) == concept.value:
            return key
    if concept.scheme_designator == IBSI_SCHEME:
        found = _ibsi_features().get(concept.value)
        if found is not None:
            return FeatureName(ORIGINAL_IMAGE_TYPE, *found).key
    raise ValueError(
        f"concept ({concept.value}, {concept.scheme_designator}, {concept.meaning!r}) "
        "is not a pyradiomics feature"
    )


def intensity_unit(modality: str | None, normalized: bool = False) -> Code:
    """The unit of the image's values: HU for CT unless pyradiomics normalised them."""
    if modality == "CT" and not normalized:
        return HOUNSFIELD_UNIT
    return NO_UNITS


def feature_unit(key: str, intensity: Code = NO_UNITS) -> Code:
    """UCUM unit of a feature; ``intensity`` is the original image's intensity unit."""
    name = FeatureName.parse(key)
    if name.feature_class in _SHAPE_CLASSES:
        return _shape_unit(name.feature)
    if name.feature_class != "firstorder":
        return NO_UNITS
    if name.image_type != ORIGINAL_IMAGE_TYPE:
        intensity = NO_UNITS  # a filter's response is not in the image's unit
    if name.feature in _INTENSITIES:
        return intensity
    if name.feature in _SQUARED_INTENSITIES:
        return _squared(intensity)
    if name.feature == "TotalEnergy":  # energy times the voxel volume
        if intensity == NO_UNITS:
            return CUBIC_MILLIMETER
        return Code(f"{_squared(intensity).value}.mm3", UCUM, f"{intensity.meaning} squared mm3")
    return NO_UNITS


def private_coding_scheme() -> CodingSchemeIdentificationItem:
    """The Coding Scheme Identification Sequence item that declares ``99PACSFLOW``."""
    return CodingSchemeIdentificationItem(
        designator=PRIVATE_SCHEME,
        name=PRIVATE_SCHEME_NAME,
        responsible_organization=PRIVATE_SCHEME_ORGANIZATION,
    )


def _shape_unit(feature: str) -> Code:
    if feature in _LENGTHS:
        return MILLIMETER
    if feature in _AREAS:
        return SQUARE_MILLIMETER
    if feature in _VOLUMES:
        return CUBIC_MILLIMETER
    if feature in _INVERSE_LENGTHS:
        return PER_MILLIMETER
    return NO_UNITS


def _squared(unit: Code) -> Code:
    if unit == NO_UNITS:
        return NO_UNITS
    return Code(f"{unit.value}2", UCUM, f"{unit.meaning} squared")
