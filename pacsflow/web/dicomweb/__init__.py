"""DICOMweb (PS3.18) at ``/dicomweb``: QIDO-RS, WADO-RS, STOW-RS and DELETE.

Each service lives in its own module and adds its routes to the one blueprint here. The
same services answer under ``/dicomweb/projects/{name}``, limited to that project's
studies; what is stored there joins the project.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, g

from pacsflow.archive.archive import Archive
from pacsflow.web.dicomweb import common

URL_PREFIX = "/dicomweb"
PROJECT_URL_PREFIX = "/dicomweb/projects/<project>"
PROJECT_BLUEPRINT = "dicomweb_project"


def register_dicomweb(app: Flask) -> None:
    """Mount DICOMweb on ``app``, sharing one Archive between its requests."""
    from pacsflow.web.access import enter_project  # it needs the security module, which needs us
    from pacsflow.web.dicomweb import delete, qido, render, stow, wado

    blueprint = Blueprint("dicomweb", __name__, url_prefix=URL_PREFIX)
    for service in (qido, wado, render, stow, delete):
        service.register(blueprint)
    blueprint.register_error_handler(common.DicomwebError, common.error_response)
    blueprint.url_value_preprocessor(_take_project_name)
    blueprint.before_request(enter_project)
    archive = Archive(app.config["PACSFLOW_SETTINGS"])
    archive.recover()
    app.extensions[common.ARCHIVE_EXTENSION] = archive
    app.register_blueprint(blueprint)
    app.register_blueprint(blueprint, url_prefix=PROJECT_URL_PREFIX, name=PROJECT_BLUEPRINT)


def _take_project_name(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Keep the project of a project-scoped URL for ``access.enter_project``; views never
    see it. (The login guard has not run yet here, so nothing is checked.)"""
    if values is not None and "project" in values:
        g.project_name = values.pop("project")


__all__ = ["PROJECT_BLUEPRINT", "PROJECT_URL_PREFIX", "URL_PREFIX", "register_dicomweb"]
