"""The dashboard: search, study pages, overview charts and upload in the browser.

Pages are server-rendered shells (Flask-AppBuilder's layout, so its navigation, login and
admin pages frame them) filled in by small ES modules that call the REST API and DICOMweb
with the login session. No build step and nothing fetched from elsewhere: it runs offline.
Admins also get Flask-AppBuilder views of users and roles (FAB's own), of projects, of
DICOM AEs and of the audit trail.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, abort
from flask_appbuilder import BaseView, IndexView, ModelView, expose
from flask_appbuilder.models.sqla.interface import SQLAInterface
from wtforms import BooleanField
from wtforms.validators import ValidationError

from pacsflow.archive.access import Action
from pacsflow.archive.models import AuditEvent, Project, RemoteAE
from pacsflow.archive.projects import check_project_name
from pacsflow.dicom.uid import check_uid
from pacsflow.settings import check_ae_title
from pacsflow.web.access import StudyVerdict, study_verdict

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
        if study_verdict(Action.READ, study) is not StudyVerdict.ALLOWED:
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
    list_columns = ["ae_title", "host", "port", "may_connect", "all_projects", "projects"]
    add_columns = edit_columns = [*list_columns, "description"]
    label_columns = {
        "ae_title": "AE title",
        "may_connect": "May connect",
        "all_projects": "Queries all projects",
        "projects": "Projects it may query",
    }
    description_columns = {
        "projects": "Otherwise it queries and retrieves only these projects' studies",
    }
    # FAB would make a non-null boolean a required field, i.e. one that must be ticked.
    add_form_extra_fields = edit_form_extra_fields = {
        "may_connect": BooleanField(
            "May connect", default=True, description="Off: only a C-MOVE destination"
        ),
        "all_projects": BooleanField(
            "Queries all projects",
            description="A trusted node of the lab: C-FIND, C-MOVE and C-GET reach every study",
        ),
    }
    list_title = "DICOM AEs"
    add_title = "Add a DICOM AE"
    edit_title = "Edit a DICOM AE"
    show_title = "DICOM AE"
    validators_columns = {"ae_title": [_ae_title]}


def _project_name(_form: Any, field: Any) -> None:
    try:
        check_project_name(field.data or "")
    except ValueError as error:
        raise ValidationError(str(error)) from None


def _optional_ae_title(_form: Any, field: Any) -> None:
    if field.data:
        _ae_title(_form, field)
    else:
        field.data = None  # no AE title: C-STOREs never land here by AE


class ProjectView(ModelView):
    """Projects, and the called AE title whose C-STOREs join each (Admin only, as above);
    members are managed at /api/v1/projects/{name}/members.

    Search documents carry their projects' names, so a name never changes here and a
    project is deleted through DELETE /api/v1/projects/{name}, which updates them.
    """

    datamodel = SQLAInterface(Project)
    base_permissions = ["can_list", "can_show", "can_add", "can_edit"]
    list_columns = ["name", "ae_title", "description", "created_at"]
    add_columns = ["name", "ae_title", "description"]
    edit_columns = ["ae_title", "description"]
    label_columns = {"ae_title": "Called AE title", "created_at": "Created (UTC)"}
    description_columns = {
        "name": "Lower-case letters, digits, '-' and '_'; it appears in /dicomweb/projects/{name}",
        "ae_title": "C-STOREs to this AE title put their studies in the project",
    }
    validators_columns = {"name": [_project_name], "ae_title": [_optional_ae_title]}
    list_title = "Projects"
    add_title = "Add a project"
    edit_title = "Edit a project"
    show_title = "Project"


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
    appbuilder.add_view(ProjectView, "Projects", category="Admin", icon="fa-folder")
    appbuilder.add_view(RemoteAEView, "DICOM AEs", category="Admin", icon="fa-network-wired")
    appbuilder.add_view(AuditEventView, "Audit trail", category="Admin", icon="fa-list")
