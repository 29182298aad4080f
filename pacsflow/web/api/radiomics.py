"""Radiomics results of a series as JSON or CSV, read from the TID 1500 SRs that hold them.

The SRs are the record: no second copy of the numbers is kept. A series' results are those of
every measurement report in its study that names the series as evidence (the image series or
the segmentation) or is itself that series.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

import pydicom
from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from pydicom import Dataset
from pydicom.uid import Comprehensive3DSRStorage
from sqlalchemy import select

from pacsflow.archive.archive import Archive
from pacsflow.archive.models import Instance, Series
from pacsflow.operators.radiomics.report import read_measurement_report, rows_to_csv
from pacsflow.web.dicomweb.common import archive
from pacsflow.web.security import Permission, require

CSV = "text/csv"
JSON = "application/json"
EVIDENCE_SEQUENCES = ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence")


def study_reports(store: Archive, series_uid: str) -> list[Dataset] | None:
    """The study's 3-D SRs, headers and content; None if the series is not stored."""
    with store.engine.connect() as conn:
        study_fk = conn.scalar(
            select(Series.study_fk).where(Series.series_instance_uid == series_uid)
        )
        if study_fk is None:
            return None
        keys = conn.scalars(
            select(Instance.storage_key)
            .join(Series, Instance.series_fk == Series.id)
            .where(Series.study_fk == study_fk, Instance.sop_class_uid == Comprehensive3DSRStorage)
            .order_by(Instance.id)
        ).all()
    reports: list[Dataset] = []
    for key in keys:
        with store.storage.open(key) as fp:
            reports.append(pydicom.dcmread(fp, defer_size=None))
    return reports


def evidence_series(sr: Dataset) -> Iterator[str]:
    for keyword in EVIDENCE_SEQUENCES:
        for study in sr.get(keyword, []):
            for series in study.get("ReferencedSeriesSequence", []):
                yield str(series.SeriesInstanceUID)


def concerns(sr: Dataset, series_uid: str) -> bool:
    return sr.SeriesInstanceUID == series_uid or series_uid in set(evidence_series(sr))


@require(Permission.READ)
def series_radiomics(series_uid: str) -> ResponseReturnValue:
    reports = study_reports(archive(), series_uid)
    if reports is None:
        return jsonify({"error": f"no series {series_uid} in the archive"}), 404
    rows = [
        row for sr in reports if concerns(sr, series_uid) for row in read_measurement_report(sr)
    ]
    if _wants_csv():
        return Response(
            rows_to_csv(rows),
            mimetype=CSV,
            headers={"Content-Disposition": f'attachment; filename="radiomics-{series_uid}.csv"'},
        )
    return jsonify({"series_instance_uid": series_uid, "features": [asdict(r) for r in rows]})


def _wants_csv() -> bool:
    if request.args.get("format") == "csv":
        return True
    return request.accept_mimetypes.best_match([JSON, CSV]) == CSV


def register(blueprint: Blueprint) -> None:
    blueprint.add_url_rule(
        "/series/<series_uid>/radiomics", view_func=series_radiomics, methods=["GET"]
    )
