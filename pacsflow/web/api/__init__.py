"""pacsflow's REST API under /api/v1 (DICOM data itself is served by DICOMweb)."""

from __future__ import annotations

from flask import Blueprint, Flask

URL_PREFIX = "/api/v1"


def register_api(app: Flask) -> None:
    from pacsflow.web.api import (
        audit,
        downloads,
        me,
        overview,
        projects,
        radiomics,
        radiomics_parameters,
        remote_aes,
        search,
        tokens,
        workflows,
    )

    blueprint = Blueprint("api", __name__, url_prefix=URL_PREFIX)
    audit.register(blueprint)
    downloads.register(blueprint)
    me.register(blueprint)
    overview.register(blueprint)
    projects.register(blueprint)
    radiomics.register(blueprint)
    radiomics_parameters.register(blueprint)
    remote_aes.register(blueprint)
    search.register(blueprint)
    tokens.register(blueprint)
    workflows.register(blueprint)
    app.register_blueprint(blueprint)


__all__ = ["URL_PREFIX", "register_api"]
