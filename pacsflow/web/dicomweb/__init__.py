"""DICOMweb (PS3.18) at ``/dicomweb``: QIDO-RS, WADO-RS, STOW-RS and DELETE.

Each service lives in its own module and adds its routes to the one blueprint here.
"""

from __future__ import annotations

from flask import Blueprint, Flask

from pacsflow.archive.archive import Archive
from pacsflow.web.dicomweb import common

URL_PREFIX = "/dicomweb"


def register_dicomweb(app: Flask) -> None:
    """Mount DICOMweb on ``app``, sharing one Archive between its requests."""
    from pacsflow.web.dicomweb import delete, qido, render, stow, wado

    blueprint = Blueprint("dicomweb", __name__, url_prefix=URL_PREFIX)
    for service in (qido, wado, render, stow, delete):
        service.register(blueprint)
    blueprint.register_error_handler(common.DicomwebError, common.error_response)
    archive = Archive(app.config["PACSFLOW_SETTINGS"])
    archive.recover()
    app.extensions[common.ARCHIVE_EXTENSION] = archive
    app.register_blueprint(blueprint)


__all__ = ["URL_PREFIX", "register_dicomweb"]
