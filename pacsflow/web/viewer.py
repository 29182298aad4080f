"""The OHIF viewer at /viewer: the prebuilt app ``make viewer`` fetched, behind pacsflow's login.

OHIF is a single-page app whose router owns every path under /viewer, so a path that is not a
file of the build gets index.html. Build files named by their content hash are cached for a
year; everything else is revalidated on each use, so a new build or config shows at once.
The build holds pacsflow's viewer/app-config.js in place of OHIF's (fetch.sh copies it in), so
a build fetched elsewhere and named by PACSFLOW_VIEWER_DIST carries its configuration along.
The routes are ordinary, non-static endpoints: the global login guard covers them all, and the
viewer reaches DICOMweb with the same session cookie.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path, PurePosixPath

from flask import Blueprint, Flask, Response, abort, redirect, request, send_file, url_for
from flask.typing import ResponseReturnValue
from markupsafe import escape
from werkzeug.security import safe_join

logger = logging.getLogger(__name__)

URL_PREFIX = "/viewer"  # also PUBLIC_URL in viewer/fetch.sh and routerBasename in app-config.js
# The fetched build: viewer/dist of the source tree, or wherever PACSFLOW_VIEWER_DIST says
# (an installed pacsflow has no source tree).
DIST_ENV = "PACSFLOW_VIEWER_DIST"
DEFAULT_DIST = Path(__file__).resolve().parents[2] / "viewer" / "dist"
# OHIF's route of its basic viewer mode, where ?StudyInstanceUIDs=... opens studies.
STUDY_ROUTE = "viewer"
HASHED_NAME = re.compile(r"(?:^|\.)[0-9a-f]{16}\.\w+$")
CACHE_FOREVER = "private, max-age=31536000, immutable"
REVALIDATE = "no-cache"

__all__ = ["DEFAULT_DIST", "DIST_ENV", "URL_PREFIX", "register_viewer", "viewer_dist"]


def viewer_dist() -> Path:
    """Where the fetched build is; read at each request so ``make viewer`` needs no restart."""
    return Path(os.environ.get(DIST_ENV) or DEFAULT_DIST)


def register_viewer(app: Flask) -> None:
    """Mount the viewer at /viewer; warn at start when it has not been fetched yet."""
    dist = viewer_dist()
    if not (dist / "index.html").is_file():
        logger.warning("OHIF viewer not found in %s: run `make viewer` or set %s", dist, DIST_ENV)
    blueprint = Blueprint("viewer", __name__, url_prefix=URL_PREFIX)
    for rule in ("", "/", "/<path:path>"):
        blueprint.add_url_rule(rule, "page", page, methods=["GET"])
    app.register_blueprint(blueprint)


def page(path: str = "") -> ResponseReturnValue:
    """A file of the build, or index.html for OHIF's own routes."""
    dist = viewer_dist()
    index = dist / "index.html"
    if not index.is_file():
        return not_fetched(dist)
    if not path and "StudyInstanceUIDs" in request.args:
        # pacsflow's study links are /viewer?StudyInstanceUIDs=...; OHIF opens studies in a mode.
        query = request.query_string.decode()
        return redirect(f"{url_for('viewer.page', path=STUDY_ROUTE)}?{query}")
    found = safe_join(str(dist), path) if path else None
    if found is not None and os.path.isfile(found):
        cache = CACHE_FOREVER if HASHED_NAME.search(PurePosixPath(path).name) else REVALIDATE
        return send(Path(found), cache)
    if PurePosixPath(path).suffix:
        abort(404)  # a missing script or image must fail as such, not as index.html
    return send(index, REVALIDATE)


def send(file: Path, cache_control: str) -> Response:
    response = send_file(file, conditional=True, etag=True)
    response.headers["Cache-Control"] = cache_control
    return response


def not_fetched(dist: Path) -> Response:
    """A page saying how to get the viewer, instead of a bare 404."""
    body = (
        "<!doctype html><title>Viewer not installed</title>"
        "<h1>The OHIF viewer has not been fetched</h1>"
        f"<p>pacsflow looked for it in <code>{escape(dist)}</code>. Run <code>make viewer</code> "
        f"in the pacsflow source tree (<code>make up</code> does it too), or set "
        f"<code>{DIST_ENV}</code> to a fetched viewer's <code>dist</code> folder.</p>"
    )
    return Response(body, status=503, mimetype="text/html", headers={"Cache-Control": "no-store"})
