"""QIDO-RS (PS3.18 10.6): search for studies, series and instances.

The views only negotiate the media type and translate errors; parsing, matching and the
DICOM JSON of each result live in :mod:`pacsflow.archive.query`. A search that matches
nothing answers 200 with ``[]`` (PS3.18 2026a, 11.9.3.1, permits it; it spares clients the
204 special case).
"""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, Response, request

from pacsflow.archive.dicomjson import dumps
from pacsflow.archive.query import Level, QueryError, parse_query, search
from pacsflow.web.access import visible_studies
from pacsflow.web.dicomweb import common
from pacsflow.web.dicomweb.common import DicomwebError, MediaType
from pacsflow.web.security import Permission, require

RESPONSE_TYPES = (MediaType.DICOM_JSON, MediaType.JSON)


def register(blueprint: Blueprint) -> None:
    """Add the QIDO-RS routes."""
    routes = (
        ("/studies", "qido_studies", search_studies),
        ("/studies/<study>/series", "qido_study_series", search_study_series),
        ("/series", "qido_series", search_series),
        (
            "/studies/<study>/series/<series>/instances",
            "qido_series_instances",
            search_series_instances,
        ),
        ("/studies/<study>/instances", "qido_study_instances", search_study_instances),
        ("/instances", "qido_instances", search_instances),
    )
    for rule, endpoint, view in routes:
        blueprint.add_url_rule(rule, endpoint, view, methods=["GET"])


@require(Permission.READ)
def search_studies() -> Response:
    """SearchForStudies: ``GET /studies``."""
    return _search(Level.STUDY)


@require(Permission.READ)
def search_study_series(study: str) -> Response:
    """SearchForSeries in one study: ``GET /studies/{study}/series``."""
    return _search(Level.SERIES, study_uid=study)


@require(Permission.READ)
def search_series() -> Response:
    """SearchForSeries in all studies: ``GET /series``; study attributes may be matched."""
    return _search(Level.SERIES)


@require(Permission.READ)
def search_series_instances(study: str, series: str) -> Response:
    """SearchForInstances in one series: ``GET /studies/{study}/series/{series}/instances``."""
    return _search(Level.INSTANCE, study_uid=study, series_uid=series)


@require(Permission.READ)
def search_study_instances(study: str) -> Response:
    """SearchForInstances in one study: ``GET /studies/{study}/instances``."""
    return _search(Level.INSTANCE, study_uid=study)


@require(Permission.READ)
def search_instances() -> Response:
    """SearchForInstances in all studies: ``GET /instances``; series and study attributes too."""
    return _search(Level.INSTANCE)


def _search(level: Level, study_uid: str | None = None, series_uid: str | None = None) -> Response:
    media_type = _response_type()
    try:
        query = parse_query(
            level, request.args.items(multi=True), study_uid=study_uid, series_uid=series_uid
        )
    except QueryError as exc:
        raise DicomwebError(400, str(exc)) from exc
    query = replace(query, visible=visible_studies())
    with common.archive().sessions() as session:
        result = search(session, query, common.dicomweb_root())
    response = Response(dumps(result.matches), mimetype=media_type)
    for warning in result.warnings:
        response.headers.add("Warning", warning)
    return response


def _response_type() -> str:
    """DICOM JSON unless the client accepts only plain JSON; 406 for anything else."""
    accept = request.headers.get("Accept", "").strip()
    if not accept:
        return MediaType.DICOM_JSON
    best = request.accept_mimetypes.best_match(RESPONSE_TYPES)
    if best is None:
        raise DicomwebError(
            406,
            f"QIDO-RS answers {MediaType.DICOM_JSON} (or {MediaType.JSON}); the Accept header "
            f"{accept[:200]!r} allows neither",
        )
    return best
