"""Resolving the DICOM names a rules file may use."""

from __future__ import annotations

import re

import pytest

from pacsflow.routing.dicom_names import check_keyword, check_modality, resolve_sop_class


@pytest.mark.parametrize(
    ("name", "uid"),
    [
        ("RT Structure Set Storage", "1.2.840.10008.5.1.4.1.1.481.3"),
        ("RTStructureSetStorage", "1.2.840.10008.5.1.4.1.1.481.3"),
        ("  rt structure set storage ", "1.2.840.10008.5.1.4.1.1.481.3"),
        ("Ultrasound Image Storage", "1.2.840.10008.5.1.4.1.1.6.1"),  # not the retired one
        ("UltrasoundImageStorageRetired", "1.2.840.10008.5.1.4.1.1.6"),
        ("1.2.840.10008.5.1.4.1.1.6", "1.2.840.10008.5.1.4.1.1.6"),
        ("1.2.826.0.1.3680043.2.1125.1.9", "1.2.826.0.1.3680043.2.1125.1.9"),
    ],
)
def test_resolve_sop_class(name: str, uid: str) -> None:
    assert resolve_sop_class(name) == uid


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Explicit VR Little Endian", 'unknown SOP class "Explicit VR Little Endian"'),
        ("1.2.840.10008.1.2", "is a Transfer Syntax UID (Implicit VR Little Endian), not a SOP"),
        ("RT Structure Storage", 'did you mean "RT Structure Set Storage"?'),
        ("1.2.840..1", 'unknown SOP class "1.2.840..1"'),
    ],
)
def test_resolve_sop_class_errors(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        resolve_sop_class(name)


def test_check_keyword() -> None:
    assert check_keyword("PatientName") == "PatientName"
    with pytest.raises(ValueError, match='did you mean "PatientName"'):
        check_keyword("patientName")
    with pytest.raises(ValueError, match="has VR OB or OW"):
        check_keyword("PixelData")


@pytest.mark.parametrize("value", ["CT", "RTSTRUCT", "SEG", " MR ", "OPT_X"])
def test_check_modality(value: str) -> None:
    assert check_modality(value) == value.strip()


@pytest.mark.parametrize("value", ["ct", "", "C-T", "A" * 17])
def test_check_modality_errors(value: str) -> None:
    with pytest.raises(ValueError, match="is not a Modality code"):
        check_modality(value)
