"""The index attributes of an instance, read from its parsed header."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from pacsflow.dicom.uid import check_uid


def _text(ds: Dataset, keyword: str, limit: int = 324) -> str:
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, MultiValue | list | tuple):
        value = "\\".join(str(v) for v in value)  # multi-valued: as DICOM writes it
    return str(value).strip()[:limit]


def _int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def name_search_key(name: str) -> str:
    """Person names match case-insensitively (PS3.4 C.2.2.2.1 leaves case to the SCP)."""
    return name.upper()


@dataclass(frozen=True)
class InstanceAttributes:
    """Everything the index keeps about one instance, validated."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient: dict[str, Any]
    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]

    @classmethod
    def from_dataset(cls, ds: Dataset) -> InstanceAttributes:
        """Read and validate; raises InvalidUIDError naming a missing or bad UID."""
        sop_class_uid = check_uid(ds.get("SOPClassUID"), "SOPClassUID")
        sop_instance_uid = check_uid(ds.get("SOPInstanceUID"), "SOPInstanceUID")
        study_uid = check_uid(ds.get("StudyInstanceUID"), "StudyInstanceUID")
        series_uid = check_uid(ds.get("SeriesInstanceUID"), "SeriesInstanceUID")
        patient_name = _text(ds, "PatientName")
        referring = _text(ds, "ReferringPhysicianName")
        patient = {
            "patient_id": _text(ds, "PatientID", 64),
            "issuer_of_patient_id": _text(ds, "IssuerOfPatientID", 64),
            "patient_name": patient_name,
            "patient_name_search": name_search_key(patient_name),
            "patient_birth_date": _text(ds, "PatientBirthDate", 8),
            "patient_sex": _text(ds, "PatientSex", 16),
        }
        tz = _text(ds, "TimezoneOffsetFromUTC", 16)
        study = {
            "study_instance_uid": study_uid,
            **{k: v for k, v in patient.items() if k != "issuer_of_patient_id"},
            "study_date": _text(ds, "StudyDate", 8),
            "study_time": _text(ds, "StudyTime", 16),
            "accession_number": _text(ds, "AccessionNumber", 16),
            "study_id": _text(ds, "StudyID", 16),
            "study_description": _text(ds, "StudyDescription", 64),
            "referring_physician_name": referring,
            "referring_physician_name_search": name_search_key(referring),
            "timezone_offset_from_utc": tz,
        }
        series = {
            "series_instance_uid": series_uid,
            "modality": _text(ds, "Modality", 16),
            "series_number": _int(ds, "SeriesNumber"),
            "series_description": _text(ds, "SeriesDescription", 64),
            "body_part_examined": _text(ds, "BodyPartExamined", 16),
            "performed_procedure_step_start_date": _text(ds, "PerformedProcedureStepStartDate", 8),
            "performed_procedure_step_start_time": _text(ds, "PerformedProcedureStepStartTime", 16),
            "timezone_offset_from_utc": tz,
        }
        instance = {
            "sop_instance_uid": sop_instance_uid,
            "sop_class_uid": sop_class_uid,
            "instance_number": _int(ds, "InstanceNumber"),
            "rows": _int(ds, "Rows"),
            "columns": _int(ds, "Columns"),
            "bits_allocated": _int(ds, "BitsAllocated"),
            "number_of_frames": _int(ds, "NumberOfFrames"),
            "timezone_offset_from_utc": tz,
        }
        return cls(
            sop_class_uid, sop_instance_uid, study_uid, series_uid, patient, study, series, instance
        )
