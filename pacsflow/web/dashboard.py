"""The dashboard: search, study pages, overview charts and upload in the browser.

Pages are server-rendered shells (Flask-AppBuilder's layout, so its navigation, login and
admin pages frame them) filled in by small ES modules that call the REST API and DICOMweb
with the login session. No build step and nothing fetched from elsewhere: it runs offline.
Admins also get Flask-AppBuilder views of users and roles (FAB's own), of DICOM AEs and of
the audit trail.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, abort
from flask_appbuilder import BaseView, IndexView, ModelView, expose
from flask_appbuilder.models.sqla.interface import SQLAInterface
from wtforms.validators import ValidationError

from pacsflow.archive.models import AuditEvent, RemoteAE
from pacsflow.dicom.uid import check_uid
from pacsflow.settings import check_ae_title

STATIC = Blueprint(
    "dashboard", __name__, static_folder="static/dashboard", static_url_path="/static/dashboard"
)


class SearchIndexView(IndexView):
    """``/``: the search page."""

    index_template = "dashboard/search.html"


class DashboardView(BaseView):
    """The dashboard's other pages; any signed-in user (the login guard sees to that)."""

    route_base = ""

    @expose("/studies/<study>")
    def study(self, study: str) -> Any:
        try:
            check_uid(study, "StudyInstanceUID")
        except ValueError:
            abort(404)
        return self.render_template("dashboard/study.html", study=study)

    @expose("/overview")
    def overview(self) -> Any:
        return self.render_template("dashboard/overview.html")

    @expose("/upload")
    def upload(self) -> Any:
        return self.render_template("dashboard/upload.html")


def _ae_title(_form: Any, field: Any) -> None:
    try:
        field.data = check_ae_title(field.data or "")
    except ValueError as error:
        raise ValidationError(str(error)) from None


class RemoteAEView(ModelView):
    """The DICOM peers that may connect, and where C-MOVE sends (Admin only: FAB grants
    a new view's permissions to the Admin role alone)."""

    datamodel = SQLAInterface(RemoteAE)
    list_columns = ["ae_title", "host", "port", "may_connect", "description"]
    add_columns = edit_columns = list_columns
    label_columns = {"ae_title": "AE title", "may_connect": "May connect"}
    list_title = "DICOM AEs"
    add_title = "Add a DICOM AE"
    edit_title = "Edit a DICOM AE"
    show_title = "DICOM AE"
    validators_columns = {"ae_title": [_ae_title]}


class AuditEventView(ModelView):
    """The audit trail, read-only, newest first, filterable (Admin only, as above); JSON
    lines of it at /api/v1/audit?format=jsonl."""

    datamodel = SQLAInterface(AuditEvent)
    base_permissions = ["can_list", "can_show"]
    list_columns = ["at", "user", "source", "event", "outcome", "status", "studies", "detail"]
    show_columns = [*list_columns, "event_code", "action", "interface"]
    search_columns = ["at", "user", "source", "event", "outcome", "interface", "detail"]
    base_order = ("at", "desc")
    label_columns = {"at": "When (UTC)", "event_code": "ATNA event", "action": "Action code"}
    list_title = "Audit trail"
    show_title = "Audit event"


def register_dashboard(app: Flask, appbuilder: Any) -> None:
    app.register_blueprint(STATIC)
    appbuilder.add_view_no_menu(DashboardView())
    appbuilder.add_view(RemoteAEView, "DICOM AEs", category="Admin", icon="fa-network-wired")
    appbuilder.add_view(AuditEventView, "Audit trail", category="Admin", icon="fa-list")
