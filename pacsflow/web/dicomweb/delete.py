"""Deleting a study, series or instance (not in PS3.18's core; as dcm4chee and Orthanc do)."""

from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Blueprint, Response, jsonify

from pacsflow.archive.access import Action
from pacsflow.search.indexing import refresh, study_series
from pacsflow.web.access import StudyVerdict, study_verdict
from pacsflow.web.api.search import backend as search_backend
from pacsflow.web.dicomweb.common import DicomwebError, archive
from pacsflow.web.security import Permission, require

logger = logging.getLogger(__name__)


@require(Permission.DELETE)
def delete_resource(study: str, series: str | None = None, instance: str | None = None) -> Response:
    verdict = study_verdict(Action.DELETE, study)
    if verdict is StudyVerdict.HIDDEN:
        raise DicomwebError(HTTPStatus.NOT_FOUND, "no such study, series or instance")
    if verdict is StudyVerdict.FORBIDDEN:
        raise DicomwebError(
            HTTPStatus.FORBIDDEN,
            f"deleting from study {study} takes the Manager role in each of its projects",
        )
    touched = [series] if series is not None else study_series(archive(), study)
    deleted = archive().delete(study, series, instance)
    if not deleted:
        raise DicomwebError(HTTPStatus.NOT_FOUND, "no such study, series or instance")
    logger.info("deleted %d instances of study %s", deleted, study)
    refresh(archive(), search_backend(), touched)  # documents of series gone are removed
    return jsonify({"deleted_instances": deleted})


def register(blueprint: Blueprint) -> None:
    for rule in (
        "/studies/<study>",
        "/studies/<study>/series/<series>",
        "/studies/<study>/series/<series>/instances/<instance>",
    ):
        blueprint.add_url_rule(
            rule, view_func=delete_resource, methods=["DELETE"], endpoint=f"delete:{rule}"
        )
