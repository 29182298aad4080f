"""HTTP access to patient data in the audit trail: one record per request to DICOMweb,
search, downloads and results, whatever came of it (refused and failed requests too)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from flask import Flask, Response, g, request
from flask_login import current_user

from pacsflow.audit import AuditKind, AuditRecord, http_outcome
from pacsflow.web.dicomweb.common import archive

# Endpoint name prefixes of the audited routes: what each access is, through which interface.
AUDITED: Final[tuple[tuple[str, AuditKind, str], ...]] = (
    ("dicomweb.qido_", AuditKind.QUERY, "dicomweb"),
    ("dicomweb.wado:", AuditKind.RETRIEVE, "dicomweb"),
    ("dicomweb.render:", AuditKind.RETRIEVE, "dicomweb"),
    ("dicomweb.store_", AuditKind.STORE, "dicomweb"),
    ("dicomweb.delete:", AuditKind.DELETE, "dicomweb"),
    ("api.search_", AuditKind.SEARCH, "rest"),
    ("api.download_", AuditKind.EXPORT, "rest"),
    ("api.series_radiomics", AuditKind.RETRIEVE, "rest"),
)
_STUDIES = "pacsflow_audit_studies"  # flask.g: studies a view names beyond its URL


def note_studies(studies: Iterable[str]) -> None:
    """Name studies the request touched that its URL does not (STOW's stored studies)."""
    g.setdefault(_STUDIES, set()).update(studies)


def audit_request(response: Response) -> Response:
    # A project-scoped DICOMweb root serves the same views as /dicomweb.
    endpoint = (request.endpoint or "").replace("dicomweb_project.", "dicomweb.", 1)
    audited = next((a for a in AUDITED if endpoint.startswith(a[0])), None)
    if audited is None:
        return response
    _, kind, interface = audited
    studies = set(g.get(_STUDIES, ()))
    if request.view_args and request.view_args.get("study"):
        studies.add(str(request.view_args["study"]))
    archive().audit.record(
        AuditRecord(
            kind=kind,
            user=current_user.username if current_user.is_authenticated else "",
            source=request.remote_addr or "",
            interface=interface,
            status=response.status_code,
            outcome=http_outcome(response.status_code),
            studies=tuple(studies),
            detail=f"{request.method} {request.full_path.rstrip('?')}",
        )
    )
    return response


def init_audit(app: Flask) -> None:
    app.after_request(audit_request)
