"""The measurement reports (SRs) that concern a series, read from the archive.

A report concerns a series when it names it as evidence (the image series or the
segmentation it measured) or is itself that series. Radiomics results are read from these
reports, for REST and for search: no second copy of the numbers is kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pydicom
from pydicom import Dataset
from pydicom.uid import Comprehensive3DSRStorage, ComprehensiveSRStorage, EnhancedSRStorage
from sqlalchemy import Select, select

from pacsflow.archive.archive import Archive
from pacsflow.archive.models import Instance, Series

EVIDENCE_SEQUENCES = ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence")
# The SR classes that can hold a TID 1500 measurement report.
REPORT_CLASSES = (Comprehensive3DSRStorage, ComprehensiveSRStorage, EnhancedSRStorage)


def series_reports(archive: Archive, series_uid: str) -> list[Dataset] | None:
    """The study's measurement reports that concern the series; None if it is not stored."""
    with archive.engine.connect() as conn:
        study_fk = conn.scalar(
            select(Series.study_fk).where(Series.series_instance_uid == series_uid)
        )
        if study_fk is None:
            return None
        keys = conn.scalars(_report_keys().where(Series.study_fk == study_fk)).all()
    return [report for report in _read(archive, keys) if concerns(report, series_uid)]


def own_reports(archive: Archive, series_uid: str) -> list[Dataset]:
    """The measurement reports stored in the series itself (none for an image series, which
    is told from the index without opening a file)."""
    with archive.engine.connect() as conn:
        keys = conn.scalars(_report_keys().where(Series.series_instance_uid == series_uid)).all()
    return _read(archive, keys)


def _report_keys() -> Select[str]:
    return (
        select(Instance.storage_key)
        .join(Series, Instance.series_fk == Series.id)
        .where(Instance.sop_class_uid.in_(REPORT_CLASSES))
        .order_by(Instance.id)
    )


def _read(archive: Archive, keys: Sequence[str]) -> list[Dataset]:
    reports: list[Dataset] = []
    for key in keys:
        with archive.storage.open(key) as fp:
            reports.append(pydicom.dcmread(fp))
    return reports


def evidence_series(sr: Dataset) -> Iterator[str]:
    """The series an SR names as evidence."""
    for keyword in EVIDENCE_SEQUENCES:
        for study in sr.get(keyword, []):
            for series in study.get("ReferencedSeriesSequence", []):
                yield str(series.SeriesInstanceUID)


def concerns(sr: Dataset, series_uid: str) -> bool:
    return sr.SeriesInstanceUID == series_uid or series_uid in set(evidence_series(sr))
