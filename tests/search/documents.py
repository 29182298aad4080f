"""Synthetic series documents for the search backend suite, as pacsflow.search.document
writes them: dates ``YYYY-MM-DD``, date-times ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, person names
as objects of their non-empty components, lists sorted and distinct, empty fields left out,
``tags`` typed by VR (one value a scalar, several a list, sequences lists of objects) and
``radiomics`` a feature name to its values, one per region.

Five patients (accents, an apostrophe, a letter Unicode does not decompose, a family name of
several words, upper case) with six studies across 2024 and 2025: CT and MR images, SEG and
RTSTRUCT annotations of them, and SR radiomics reports. Each document has a short name
(``S1_CT``...) and its SeriesInstanceUID is ``UID[name]``.
"""

from __future__ import annotations

import copy
from typing import Any

ROOT = "1.2.826.0.1.3680043.10.1234"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
SEG = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"
SOP_CLASSES = {"CT": CT_IMAGE, "MR": MR_IMAGE, "SEG": SEG, "RTSTRUCT": RTSTRUCT, "SR": ENHANCED_SR}

MESH_VOLUME = "original_shape_MeshVolume"
MEAN = "original_firstorder_Mean"


def person(family: str, given: str = "", middle: str = "", prefix: str = "") -> dict[str, str]:
    parts = [family, given, middle, prefix]
    while parts and not parts[-1]:
        parts.pop()
    name = {"Alphabetic": "^".join(parts), "FamilyName": family}
    for key, value in (("GivenName", given), ("MiddleName", middle), ("NamePrefix", prefix)):
        if value:
            name[key] = value
    return name


PATIENTS: dict[str, dict[str, Any]] = {
    "PAT-001": {
        "PatientName": person("Müller", "Hans"),
        "PatientBirthDate": "1958-04-02",
        "PatientSex": "M",
    },
    "PAT-002": {
        "PatientName": person("O'Brien", "Siobhán", "Mary", "Dr."),
        "PatientBirthDate": "1971-11-23",
        "PatientSex": "F",
    },
    "PAT-003": {
        "PatientName": person("DOE", "JOHN"),
        "PatientBirthDate": "1980-01-01",
        "PatientSex": "M",
    },
    "PAT-004": {
        "PatientName": person("Łukasiewicz", "Zoë"),
        "PatientBirthDate": "1990-07-15",
        "PatientSex": "F",
    },
    "PAT-005": {
        "PatientName": person("van der Berg", "Anna"),
        "PatientBirthDate": "1965-02-28",
        "PatientSex": "F",
    },
}

# study: patient, date, time (UTC), description, accession, modalities, referring physician
STUDIES: dict[str, tuple[str, str, str, str, str, list[str], dict[str, str] | None]] = {
    "S1": (
        "PAT-001",
        "2024-01-15",
        "10:15:00",
        "CT Thorax mit KM",
        "A1001",
        ["CT", "RTSTRUCT", "SEG", "SR"],
        person("Schmidt", "Eva"),
    ),
    "S2": (
        "PAT-001",
        "2025-03-10",
        "08:05:30",
        "Follow-up CT Thorax",
        "A2002",
        ["CT", "SEG", "SR"],
        person("Schmidt", "Eva"),
    ),
    "S3": ("PAT-002", "2024-06-30", "14:45:00", "MRI Liver", "A1003", ["MR", "SEG", "SR"], None),
    "S4": (
        "PAT-003",
        "2024-12-31",
        "22:10:00",
        "CT Abdomen",
        "A1004",
        ["CT", "SEG"],
        person("Nowak", "Piotr"),
    ),
    "S5": ("PAT-004", "2025-01-01", "23:30:00", "MR Brain", "A2005", ["MR"], None),
    "S6": ("PAT-005", "2025-11-20", "09:00:00", "CT whole body", "A2006", ["CT"], None),
}

UID: dict[str, str] = {}
STUDY_UID = {study: f"{ROOT}.1.{n}" for n, study in enumerate(STUDIES, start=1)}


def series(
    name: str,
    modality: str,
    *,
    number: int | None,
    description: str,
    arrived: str,
    instances: int,
    body_part: str | None = None,
    source: tuple[str, str | None] = ("dimse", "CT_SCANNER_1"),
    project: list[str] | None = None,
    labels: list[str] | None = None,
    radiomics: dict[str, list[float]] | None = None,
    slices: tuple[float, float] | None = None,
    tags: dict[str, Any] | None = None,
) -> dict[str, Any]:
    study = name.split("_")[0]
    patient_id, day, time, study_description, accession, modalities, referrer = STUDIES[study]
    uid = UID.setdefault(name, f"{ROOT}.2.{len(UID) + 1}")
    document: dict[str, Any] = {
        "SeriesInstanceUID": uid,
        "StudyInstanceUID": STUDY_UID[study],
        "PatientID": patient_id,
        **PATIENTS[patient_id],
        "StudyDate": day,
        "StudyDateTime": f"{day}T{time}.000000Z",
        "StudyDescription": study_description,
        "AccessionNumber": accession,
        "StudyID": study,
        "ReferringPhysicianName": referrer,
        "ModalitiesInStudy": modalities,
        "Modality": modality,
        "SOPClassUIDs": [SOP_CLASSES[modality]],
        "SeriesNumber": number,
        "SeriesDescription": description,
        "BodyPartExamined": body_part,
        "SeriesDate": arrived[:10],
        "Manufacturer": "ACME" if modality in ("CT", "MR") else "pacsflow",
        "NumberOfInstances": instances,
        "SlicePositionMin": slices[0] if slices else None,
        "SlicePositionMax": slices[1] if slices else None,
        "ArrivedAt": arrived,
        "SourceKind": source[0],
        "SourceAE": source[1],
        "Project": sorted(project or []),
        "AnnotationLabels": sorted(labels or []),
        "radiomics": radiomics or {},
        "tags": {"Modality": modality, "SeriesInstanceUID": uid, **(tags or {})},
    }
    return {key: value for key, value in document.items() if value not in (None, [], {})}


def ct_tags(kernel: str, thickness: float, operator: dict[str, str]) -> dict[str, Any]:
    return {
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
        "ConvolutionKernel": kernel,
        "SliceThickness": thickness,
        "PixelSpacing": [0.703125, 0.703125],
        "KVP": 120,
        "OperatorsName": operator,
        "AcquisitionTime": "10:16:02.5",
    }


def segments(referenced: str, *labels: tuple[str, str]) -> dict[str, Any]:
    """SEG tags: one SegmentSequence item per (label, SNOMED code of its category)."""
    return {
        "ReferencedSeriesSequence": [
            {"SeriesInstanceUID": UID[referenced], "StudyInstanceUID": STUDY_UID[referenced[:2]]}
        ],
        "SegmentSequence": [
            {
                "SegmentNumber": number,
                "SegmentLabel": label,
                "SegmentedPropertyCategoryCodeSequence": [
                    {"CodeValue": code, "CodingSchemeDesignator": "SCT"}
                ],
            }
            for number, (label, code) in enumerate(labels, start=1)
        ],
    }


TECH_A = person("Tech", "Anna")
TECH_B = person("Operator", "Björn")
WORKFLOW = ("workflow", None)
STOW = ("stow", None)

DOCUMENTS: list[dict[str, Any]] = [
    series(
        "S1_CT",
        "CT",
        number=2,
        description="Thorax 1.0 B30f",
        arrived="2024-01-15T10:31:02.000000Z",
        instances=312,
        body_part="CHEST",
        project=["LUNG-RT"],
        slices=(-412.5, -101.5),
        tags=ct_tags("B30f", 1.0, TECH_A),
    ),
    series(
        "S1_SEG",
        "SEG",
        number=300,
        description="AI segmentation",
        arrived="2024-01-15T11:02:45.250000Z",
        instances=1,
        body_part="CHEST",
        source=WORKFLOW,
        project=["LUNG-RT"],
        labels=["GTV-1", "Lung_L"],
        tags=segments("S1_CT", ("GTV-1", "49755003"), ("Lung_L", "123037004")),
    ),
    series(
        "S1_RTSTRUCT",
        "RTSTRUCT",
        number=301,
        description="Planning contours",
        arrived="2024-01-16T08:00:00.000000Z",
        instances=1,
        body_part="CHEST",
        source=("dimse", "TPS_1"),
        project=["LUNG-RT"],
        labels=["GTV-1", "Heart", "Lung_L", "Lung_R"],
    ),
    series(
        "S1_SR",
        "SR",
        number=400,
        description="Radiomics GTV-1",
        arrived="2024-01-15T11:05:00.000000Z",
        instances=1,
        source=WORKFLOW,
        project=["LUNG-RT", "RADIOMICS"],
        radiomics={MESH_VOLUME: [15230.5, 2100.25], MEAN: [-612.3, 35.1]},
    ),
    series(
        "S2_CT",
        "CT",
        number=2,
        description="Thorax 1.5 Br40",
        arrived="2025-03-10T08:30:00.000000Z",
        instances=220,
        body_part="CHEST",
        project=["LUNG-RT", "RADIOMICS"],
        slices=(-398.0, -68.0),
        tags=ct_tags("Br40", 1.5, TECH_B),
    ),
    series(
        "S2_SEG",
        "SEG",
        number=300,
        description="AI segmentation",
        arrived="2025-03-10T09:12:00.000000Z",
        instances=1,
        body_part="CHEST",
        source=WORKFLOW,
        project=["LUNG-RT", "RADIOMICS"],
        labels=["GTV-1"],
        tags=segments("S2_CT", ("GTV-1", "49755003")),
    ),
    series(
        "S2_SR",
        "SR",
        number=400,
        description="Radiomics GTV-1",
        arrived="2025-03-10T09:15:00.000000Z",
        instances=1,
        source=WORKFLOW,
        project=["LUNG-RT", "RADIOMICS"],
        radiomics={MESH_VOLUME: [9800.0], MEAN: [40.2]},
    ),
    series(
        "S3_MR_T1",
        "MR",
        number=5,
        description="T1 vibe dyn",
        arrived="2024-06-30T15:10:00.000000Z",
        instances=88,
        body_part="ABDOMEN",
        source=STOW,
        project=["LIVER-AI"],
        slices=(-220.0, 40.0),
        tags={"SliceThickness": 3.0, "ImageType": ["ORIGINAL", "PRIMARY", "M"]},
    ),
    series(
        "S3_MR_T2",
        "MR",
        number=6,
        description="T2 haste",
        arrived="2024-06-30T15:10:00.000000Z",
        instances=40,
        body_part="ABDOMEN",
        source=STOW,
        project=["LIVER-AI"],
        slices=(-230.0, 50.0),
        tags={"SliceThickness": 6.0},
    ),
    series(
        "S3_SEG",
        "SEG",
        number=300,
        description="Dose 50% [fx 1]",
        arrived="2024-07-01T07:45:00.000000Z",
        instances=1,
        body_part="ABDOMEN",
        source=WORKFLOW,
        project=["LIVER-AI"],
        labels=["Liver", "Tumor-2"],
        tags=segments("S3_MR_T1", ("Liver", "123037004"), ("Tumor-2", "49755003")),
    ),
    series(
        "S3_SR",
        "SR",
        number=400,
        description="Radiomics liver",
        arrived="2024-07-01T08:00:00.000000Z",
        instances=1,
        source=WORKFLOW,
        project=["LIVER-AI", "RADIOMICS"],
        radiomics={MESH_VOLUME: [1520000.0, 4300.75], MEAN: [110.5, 80.0]},
    ),
    series(
        "S4_CT",
        "CT",
        number=None,
        description="Abdomen portal venous",
        arrived="2024-12-31T22:40:00.000000Z",
        instances=180,
        body_part="ABDOMEN",
        project=["LIVER-AI", "RADIOMICS"],
        slices=(-350.0, 10.0),
        tags=ct_tags("B30f", 3.0, TECH_A),
    ),
    series(
        "S4_SEG",
        "SEG",
        number=300,
        description="AI segmentation",
        arrived="2025-01-01T06:00:00.000000Z",
        instances=1,
        body_part="ABDOMEN",
        source=WORKFLOW,
        project=["LIVER-AI", "RADIOMICS"],
        labels=["Liver"],
        tags=segments("S4_CT", ("Liver", "123037004")),
    ),
    series(
        "S5_MR",
        "MR",
        number=3,
        description="T1 MPRAGE sag",
        arrived="2025-01-01T23:50:00.000000Z",
        instances=176,
        body_part="HEAD",
        source=("dimse", "MR_SCANNER_2"),
        slices=(-90.0, 85.0),
        tags={"SliceThickness": 1.0, "OperatorsName": [TECH_A, TECH_B]},
    ),
    series(
        "S6_CT",
        "CT",
        number=1,
        description="Whole body low dose",
        arrived="2025-11-20T09:20:00.000000Z",
        instances=650,
        project=["RADIOMICS"],
        slices=(-1650.0, -10.0),
        tags=ct_tags("B30f", 5.0, TECH_B),
    ),
]

BY_NAME: dict[str, dict[str, Any]] = {name: doc for name, doc in zip(UID, DOCUMENTS, strict=True)}
NAME: dict[str, str] = {uid: name for name, uid in UID.items()}


def documents() -> list[dict[str, Any]]:
    """A fresh copy, for tests that change documents."""
    return copy.deepcopy(DOCUMENTS)
