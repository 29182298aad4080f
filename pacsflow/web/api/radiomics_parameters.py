"""pyradiomics parameter sets: the shipped ones, and files users upload for rules and runs.

Uploaded sets are kept in ``$PACSFLOW_HOME/radiomics-parameters/<name>.yaml``, checked with
pyradiomics' schema before they are stored. Tasks fetch them through this API (they may run
on another machine), see ``pacsflow.operators.radiomics.parameter_store``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from http import HTTPStatus
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from pacsflow.operators.radiomics.model import RadiomicsError
from pacsflow.operators.radiomics.parameter_store import (
    PARAMETER_SET_NAME,
    check_parameter_set_name,
    unknown_parameter_set,
)
from pacsflow.operators.radiomics.parameters import (
    PARAMS_DIR,
    SHIPPED_PARAMETER_SETS,
    parameter_file,
)
from pacsflow.settings import Settings
from pacsflow.web.security import Permission, require

logger = logging.getLogger(__name__)

FOLDER = "radiomics-parameters"
SUFFIX = ".yaml"
YAML = "application/yaml"
MAX_PARAMETER_FILE_BYTES = 64 * 1024  # the shipped sets, comments and all, are under 8 KiB


def parameters_folder() -> Path:
    settings: Settings = current_app.config["PACSFLOW_SETTINGS"]
    return settings.resolved_home / FOLDER


def _error(status: HTTPStatus, message: str) -> ResponseReturnValue:
    return jsonify({"error": message}), status


def _is_shipped(name: str) -> bool:
    """Shipped names, in any case: an upload "IBSI" beside "ibsi" would only confuse."""
    return name.casefold() in {shipped.casefold() for shipped in SHIPPED_PARAMETER_SETS}


def _uploaded_names() -> list[str]:
    folder = parameters_folder()
    if not folder.is_dir():
        return []
    names = (path.name.removesuffix(SUFFIX) for path in folder.glob(f"*{SUFFIX}"))
    # Temporary files start with a dot, so the name rule leaves them out.
    return sorted(n for n in names if PARAMETER_SET_NAME.fullmatch(n) and not _is_shipped(n))


@require(Permission.READ)
def list_parameter_sets() -> ResponseReturnValue:
    shipped = [{"name": name, "shipped": True} for name in sorted(SHIPPED_PARAMETER_SETS)]
    uploaded = [{"name": name, "shipped": False} for name in _uploaded_names()]
    return jsonify({"parameter_sets": shipped + uploaded})


@require(Permission.READ)
def get_parameter_set(name: str) -> ResponseReturnValue:
    if name in SHIPPED_PARAMETER_SETS:
        path = PARAMS_DIR / f"{name}{SUFFIX}"
    else:
        try:
            check_parameter_set_name(name)
        except RadiomicsError as error:
            return _error(HTTPStatus.BAD_REQUEST, str(error))
        path = parameters_folder() / f"{name}{SUFFIX}"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _error(HTTPStatus.NOT_FOUND, unknown_parameter_set(name))
    return Response(data, content_type=f"{YAML}; charset=utf-8")


@require(Permission.WRITE)
def put_parameter_set(name: str) -> ResponseReturnValue:
    refused = _refuse_name(name)
    if refused is not None:
        return refused
    # One byte over the limit: a body without Content-Length (chunked) is cut at the maximum
    # without an error, so only reading past the limit shows that it is too big.
    request.max_content_length = MAX_PARAMETER_FILE_BYTES + 1
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        body = None
    if body is None or len(body) > MAX_PARAMETER_FILE_BYTES:
        return _error(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"a parameter file may have at most {MAX_PARAMETER_FILE_BYTES} bytes",
        )
    if not body.strip():
        return _error(HTTPStatus.BAD_REQUEST, "send the parameter file's YAML as the request body")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return _error(HTTPStatus.BAD_REQUEST, "a parameter file must be UTF-8 text")
    folder = parameters_folder()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}{SUFFIX}"
    fd, draft = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        try:
            parameter_file(draft)
        except RadiomicsError as error:
            # Name the set, not the server's temporary file.
            message = str(error).replace(f"parameter file {draft}", f"parameter set {name!r}")
            return _error(HTTPStatus.BAD_REQUEST, message.replace(draft, f"{name}{SUFFIX}"))
        existed = target.exists()
        os.replace(draft, target)
    finally:
        Path(draft).unlink(missing_ok=True)
    _fsync_folder(folder)
    action = "replaced" if existed else "uploaded"
    logger.info("parameter set %s %s by %s", name, action, current_user.username)
    status = HTTPStatus.OK if existed else HTTPStatus.CREATED
    return jsonify({"name": name, "shipped": False}), status


@require(Permission.WRITE)
def delete_parameter_set(name: str) -> ResponseReturnValue:
    refused = _refuse_name(name)
    if refused is not None:
        return refused
    try:
        (parameters_folder() / f"{name}{SUFFIX}").unlink()
    except FileNotFoundError:
        return _error(HTTPStatus.NOT_FOUND, unknown_parameter_set(name))
    logger.info("parameter set %s deleted by %s", name, current_user.username)
    return "", HTTPStatus.NO_CONTENT


def _refuse_name(name: str) -> ResponseReturnValue | None:
    """The answer to a PUT or DELETE of a name that cannot be an uploaded set, else None."""
    if _is_shipped(name):
        return _error(
            HTTPStatus.CONFLICT,
            f"parameter set {name!r} is shipped with pacsflow and cannot be changed; "
            "upload yours under another name",
        )
    try:
        check_parameter_set_name(name)
    except RadiomicsError as error:
        return _error(HTTPStatus.BAD_REQUEST, str(error))
    return None


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable, not only the file's content."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def register(blueprint: Blueprint) -> None:
    path = "/radiomics/parameters"
    blueprint.add_url_rule(path, view_func=list_parameter_sets, methods=["GET"])
    blueprint.add_url_rule(f"{path}/<name>", view_func=get_parameter_set, methods=["GET"])
    blueprint.add_url_rule(f"{path}/<name>", view_func=put_parameter_set, methods=["PUT"])
    blueprint.add_url_rule(f"{path}/<name>", view_func=delete_parameter_set, methods=["DELETE"])
