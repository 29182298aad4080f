"""Parameter sets as a task sees them: shipped with pacsflow, or uploaded to its REST API.

Tasks may run on another machine than pacsflow, so an uploaded set is fetched over HTTP
(``GET /api/v1/radiomics/parameters/<name>``) into the task's own folder and checked there;
pacsflow's folders are never read. Shipped sets come with the package and need no request.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from pathlib import Path

from pacsflow.operators.client import PacsflowClient, PacsflowError
from pacsflow.operators.radiomics.model import RadiomicsError
from pacsflow.operators.radiomics.parameters import SHIPPED_PARAMETER_SETS, parameter_file

# A name is also a file name on both sides: no separators, no leading dot, at most 64 chars.
PARAMETER_SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
PARAMETERS_PATH = "/api/v1/radiomics/parameters"


def check_parameter_set_name(name: str) -> str:
    """``name`` if it may name an uploaded set, else RadiomicsError saying what is allowed."""
    if not PARAMETER_SET_NAME.fullmatch(name):
        raise RadiomicsError(
            f"parameter set name {name!r} is not allowed: use 1 to 64 letters, digits, "
            "'_', '.' or '-', starting with a letter or digit"
        )
    return name


def unknown_parameter_set(name: str) -> str:
    """The message for a name that is neither shipped nor uploaded, with what to do."""
    return (
        f"no parameter set {name!r}: shipped are {', '.join(SHIPPED_PARAMETER_SETS)}; "
        f"upload others with PUT {PARAMETERS_PATH}/{name}"
    )


def resolve_parameters(client: PacsflowClient, name: str, folder: Path) -> Path:
    """The checked parameter file for the set ``name``; an uploaded one is saved in ``folder``.

    Raises RadiomicsError for an unknown name or an invalid file, PacsflowError when pacsflow
    cannot be asked (a task retry may then succeed).
    """
    if name in SHIPPED_PARAMETER_SETS:
        return parameter_file(name)
    check_parameter_set_name(name)
    try:
        text = client.radiomics_parameters(name)
    except PacsflowError as error:
        if error.status == HTTPStatus.NOT_FOUND:
            raise RadiomicsError(unknown_parameter_set(name)) from None
        raise
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return parameter_file(str(path))


__all__ = [
    "PARAMETERS_PATH",
    "PARAMETER_SET_NAME",
    "check_parameter_set_name",
    "resolve_parameters",
    "unknown_parameter_set",
]
