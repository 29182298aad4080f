"""Radiomics results of a series as JSON or CSV, read from the TID 1500 SRs that concern it
(see :mod:`pacsflow.archive.reports`)."""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from pacsflow.archive.access import Action
from pacsflow.archive.reports import series_reports
from pacsflow.operators.radiomics.report import read_measurement_report, rows_to_csv
from pacsflow.web.access import StudyVerdict, series_verdict
from pacsflow.web.dicomweb.common import archive
from pacsflow.web.security import Permission, require

CSV = "text/csv"
JSON = "application/json"


@require(Permission.READ)
def series_radiomics(series_uid: str) -> ResponseReturnValue:
    visible = series_verdict(Action.READ, series_uid) is StudyVerdict.ALLOWED
    reports = series_reports(archive(), series_uid) if visible else None
    if reports is None:
        return jsonify({"error": f"no series {series_uid} in the archive"}), 404
    rows = [row for sr in reports for row in read_measurement_report(sr)]
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
