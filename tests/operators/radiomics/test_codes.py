"""IBSI and private codes for pyradiomics features, and their UCUM units."""

from __future__ import annotations

from typing import cast

import highdicom as hd
import pytest
from pydicom.sr._concepts_dict import concepts
from radiomics import getFeatureClasses

from pacsflow.operators.radiomics.codes import (
    CUBIC_MILLIMETER,
    HOUNSFIELD_UNIT,
    IBSI_SCHEME,
    MILLIMETER,
    NO_UNITS,
    PER_MILLIMETER,
    PRIVATE_SCHEME,
    SQUARE_MILLIMETER,
    FeatureName,
    feature_concept,
    feature_key,
    feature_unit,
    ibsi_table,
    intensity_unit,
    private_code_value,
    private_coding_scheme,
)

# The feature classes the shipped parameter sets enable.
CLASSES_3D = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
# pyradiomics features computed by default that have no IBSI counterpart with their definition.
PRIVATE = {
    ("firstorder", "Kurtosis"),  # IBSI IPH6 is excess kurtosis: pyradiomics' value - 3
    ("firstorder", "TotalEnergy"),
    ("glcm", "MCC"),
    ("shape", "Maximum2DDiameterSlice"),
    ("shape", "Maximum2DDiameterColumn"),
    ("shape", "Maximum2DDiameterRow"),
}
# DICOM PS3.16's IBSI concepts (CID 7467-7501), as pydicom ships them: code -> meaning.
_IBSI_CONCEPTS = cast(dict[str, dict[str, tuple[str, list[int]]]], concepts["IBSI"])
DICOM_IBSI = {
    code: meaning for item in _IBSI_CONCEPTS.values() for code, (meaning, _) in item.items()
}


def default_features() -> list[tuple[str, str]]:
    """(class, feature) pyradiomics computes when a class is enabled without a feature list."""
    classes = getFeatureClasses()
    return [
        (name, feature)
        for name in CLASSES_3D
        for feature, deprecated in classes[name].getFeatureNames().items()
        if not deprecated
    ]


def test_every_default_feature_is_coded_ibsi_or_private() -> None:
    for feature_class, feature in default_features():
        concept = feature_concept(f"original_{feature_class}_{feature}")
        if (feature_class, feature) in PRIVATE:
            assert concept.scheme_designator == PRIVATE_SCHEME, feature
        else:
            assert concept.scheme_designator == IBSI_SCHEME, feature
    assert len(default_features()) == 107


def test_table_names_real_pyradiomics_features_with_unique_codes() -> None:
    classes = getFeatureClasses()
    for feature_class, feature in ibsi_table():
        assert feature in classes[feature_class].getFeatureNames(), (feature_class, feature)
    codes = [concept.value for concept in ibsi_table().values()]
    assert len(codes) == len(set(codes))
    assert all(len(code) == 4 for code in codes)


def test_meanings_are_dicoms_where_dicom_defines_the_code() -> None:
    defined = {key: concept for key, concept in ibsi_table().items() if concept.value in DICOM_IBSI}
    assert len(defined) >= 90
    for concept in defined.values():
        assert concept.meaning == DICOM_IBSI[concept.value]


@pytest.mark.parametrize(
    ("key", "code"),
    [
        # pyradiomics-dcm's table maps these three wrongly (Idm->NDRX, Idmn->WF0Z, Idn->1QCO);
        # test_features checks Id, Idn and Idm against IBSI's digital phantom values.
        ("original_glcm_Id", "IB1Z"),
        ("original_glcm_Idn", "NDRX"),
        ("original_glcm_Idm", "WF0Z"),
        ("original_glcm_Idmn", "1QCO"),
        ("original_glcm_MaximumProbability", "GYBY"),
        ("original_glcm_SumSquares", "UR99"),
        ("original_glcm_JointEnergy", "8ZQL"),
        # names the source spells differently or files under the wrong class
        ("original_glszm_LowGrayLevelZoneEmphasis", "XMSY"),
        ("original_glszm_HighGrayLevelZoneEmphasis", "5GN9"),
        ("original_glszm_SmallAreaLowGrayLevelEmphasis", "5RAI"),
        ("original_glszm_ZoneEntropy", "GU8N"),
        ("original_glszm_ZoneVariance", "3NSA"),
        ("original_shape_MeshVolume", "RNU0"),
        ("original_shape_VoxelVolume", "YEKZ"),
        ("original_firstorder_Mean", "Q4LE"),
        ("original_firstorder_Entropy", "TLU2"),
        ("original_gldm_SmallDependenceEmphasis", "SODN"),
    ],
)
def test_ibsi_codes(key: str, code: str) -> None:
    concept = feature_concept(key)
    assert (concept.value, concept.scheme_designator) == (code, IBSI_SCHEME)
    assert feature_key(concept) == key


@pytest.mark.parametrize(
    "key",
    [
        "original_firstorder_Kurtosis",
        "original_glcm_MCC",
        "wavelet-LLH_glcm_Idm",  # a filter's response: IBSI codes name features of the image
        "log-sigma-3-0-mm-3D_firstorder_Mean",
    ],
)
def test_private_codes_name_the_pyradiomics_key(key: str) -> None:
    concept = feature_concept(key)
    assert (concept.scheme_designator, concept.meaning) == (PRIVATE_SCHEME, key)
    assert concept.value == private_code_value(key)
    assert len(concept.CodeValue) <= 16 and "LongCodeValue" not in concept
    assert feature_key(concept) == key


def test_private_code_value_is_stable() -> None:
    # Reports already written depend on it.
    assert private_code_value("original_firstorder_Kurtosis") == "pyr-02747a6c0d41"
    assert len({private_code_value(f"original_{c}_{f}") for c, f in default_features()}) == 107


def test_every_default_feature_round_trips() -> None:
    for feature_class, feature in default_features():
        key = f"original_{feature_class}_{feature}"
        assert feature_key(feature_concept(key)) == key


def test_malformed_key_is_refused() -> None:
    with pytest.raises(ValueError, match="not a pyradiomics key"):
        feature_concept("diagnostics")
    with pytest.raises(ValueError, match="not a pyradiomics key"):
        FeatureName.parse("original__Mean")


def test_foreign_concept_is_not_a_feature() -> None:
    suv = hd.sr.CodedConcept("126401", "DCM", "SUVbw")
    with pytest.raises(ValueError, match="not a pyradiomics feature"):
        feature_key(suv)
    with pytest.raises(ValueError, match="not a pyradiomics feature"):
        feature_key(hd.sr.CodedConcept("ZZZZ", IBSI_SCHEME, "unknown"))
    tampered = hd.sr.CodedConcept("pyr-000000000000", PRIVATE_SCHEME, "original_glcm_MCC")
    with pytest.raises(ValueError, match="not a pyradiomics feature"):
        feature_key(tampered)


@pytest.mark.parametrize(
    ("key", "unit"),
    [
        ("original_shape_MeshVolume", CUBIC_MILLIMETER),
        ("original_shape_VoxelVolume", CUBIC_MILLIMETER),
        ("original_shape_SurfaceArea", SQUARE_MILLIMETER),
        ("original_shape_SurfaceVolumeRatio", PER_MILLIMETER),
        ("original_shape_Maximum3DDiameter", MILLIMETER),
        ("original_shape_LeastAxisLength", MILLIMETER),
        ("original_shape_Sphericity", NO_UNITS),
        ("original_firstorder_Mean", HOUNSFIELD_UNIT),
        ("original_firstorder_90Percentile", HOUNSFIELD_UNIT),
        ("original_firstorder_Skewness", NO_UNITS),
        ("original_firstorder_Entropy", NO_UNITS),
        ("original_glcm_JointAverage", NO_UNITS),
        ("original_ngtdm_Coarseness", NO_UNITS),
        ("wavelet-LLH_firstorder_Mean", NO_UNITS),
    ],
)
def test_units_for_ct(key: str, unit: object) -> None:
    assert feature_unit(key, intensity_unit("CT")) == unit


def test_squared_units() -> None:
    hu = intensity_unit("CT")
    assert feature_unit("original_firstorder_Variance", hu).value == "[hnsf'U]2"
    assert feature_unit("original_firstorder_Energy", hu).value == "[hnsf'U]2"
    assert feature_unit("original_firstorder_TotalEnergy", hu).value == "[hnsf'U]2.mm3"
    assert feature_unit("original_firstorder_Variance", NO_UNITS) == NO_UNITS
    assert feature_unit("original_firstorder_TotalEnergy", NO_UNITS) == CUBIC_MILLIMETER


def test_intensity_unit_is_hu_only_for_unnormalised_ct() -> None:
    assert intensity_unit("CT") == HOUNSFIELD_UNIT
    assert intensity_unit("CT", normalized=True) == NO_UNITS
    assert intensity_unit("MR") == NO_UNITS
    assert intensity_unit(None) == NO_UNITS
    assert feature_unit("original_firstorder_Mean", intensity_unit("MR")) == NO_UNITS


def test_private_scheme_is_declared() -> None:
    item = private_coding_scheme()
    assert item.CodingSchemeDesignator == PRIVATE_SCHEME
    assert item.CodingSchemeName
