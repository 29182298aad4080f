"""The signed-in user's access to studies, for every web interface (DICOMweb, REST, pages).

It turns the user into a :class:`pacsflow.archive.access.Access` once per request and
narrows it to the project of a project-scoped DICOMweb root (/dicomweb/projects/{name}).
Every view asks :func:`visible_studies` for lists and counts and :func:`study_verdict` for
one study; a study the user may not read answers exactly as one that is not stored.
"""

from __future__ import annotations

from enum import Enum
from http import HTTPStatus
from typing import Any

from flask import g
from flask_login import current_user
from sqlalchemy import ColumnElement, Connection, and_, select

from pacsflow.archive.access import (
    EVERYTHING,
    NOTHING,
    Access,
    Action,
    member_access,
    project_names,
    study_projects,
)
from pacsflow.archive.ingest import StudyCheck
from pacsflow.archive.models import Series, Study, StudyProject
from pacsflow.archive.projects import find_project
from pacsflow.web.dicomweb.common import DicomwebError, archive
from pacsflow.web.security import Permission, RoleName, has_permission, has_role, is_admin

__all__ = [
    "StudyVerdict",
    "current_access",
    "enter_project",
    "scope_to_project",
    "scoped_project",
    "series_verdict",
    "store_target",
    "study_verdict",
    "user_access",
    "visible_studies",
    "writable_projects",
]

# What each global permission (a FAB role's grant) lets a user do at most, in any project.
GLOBAL_ACTIONS = {
    Permission.READ: frozenset({Action.READ}),
    Permission.WRITE: frozenset({Action.WRITE, Action.MANAGE}),
    Permission.DELETE: frozenset({Action.DELETE}),
}


class StudyVerdict(Enum):
    ALLOWED = "allowed"
    HIDDEN = "hidden"  # not stored, or not readable by this user: answer 404 either way
    FORBIDDEN = "forbidden"  # readable, but the action is not allowed: 403


def user_access(user: Any) -> Access:
    """Admins reach everything; Operators (the workflows' service account) read and write
    everywhere; everyone else what their project roles allow, capped by their global role."""
    if user is None or not user.is_authenticated:
        return NOTHING
    if is_admin(user):
        return EVERYTHING
    allowed: frozenset[Action] = frozenset().union(
        *(
            actions
            for permission, actions in GLOBAL_ACTIONS.items()
            if has_permission(user, permission)
        )
    )
    if has_role(user, RoleName.OPERATOR):
        return Access(everywhere=allowed - {Action.DELETE, Action.MANAGE})
    with archive().engine.connect() as conn:
        return member_access(conn, user.id, allowed)


def current_access() -> Access:
    """The signed-in user's access, worked out once per request."""
    if "access" not in g:
        g.access = user_access(current_user)
    access: Access = g.access
    return access


def scope_to_project(project_id: int) -> None:
    """Limit this request to one project's studies (a project-scoped DICOMweb root)."""
    g.project_id = project_id


def enter_project() -> None:
    """Scope a request under /dicomweb/projects/{name} to that project, which must be one
    the user may read (a before_request hook: it runs after the login guard)."""
    name = g.get("project_name")
    if name is None:
        return
    with archive().engine.connect() as conn:
        project_id = find_project(conn, name)
    if project_id is None or not current_access().allows(Action.READ, {project_id}):
        raise DicomwebError(HTTPStatus.NOT_FOUND, f"no project named {name!r} is open to you")
    scope_to_project(project_id)


def scoped_project() -> int | None:
    project: int | None = g.get("project_id")
    return project


def visible_studies(action: Action = Action.READ) -> ColumnElement[bool] | None:
    """The studies this request may ``action``, as a condition on ``studies``; None: all."""
    condition = current_access().studies(action)
    project = scoped_project()
    if project is None:
        return condition
    in_project = Study.id.in_(
        select(StudyProject.study_fk).where(StudyProject.project_fk == project)
    )
    return in_project if condition is None else and_(condition, in_project)


def study_verdict(action: Action, study_instance_uid: str) -> StudyVerdict:
    """Whether this request may ``action`` the stored study; deleting a study shared by
    several projects takes the right in each of them. Admins are allowed without a look."""
    project = scoped_project()
    access = current_access()
    if project is None and access.anywhere(action) and access.anywhere(Action.READ):
        return StudyVerdict.ALLOWED  # stored or not, the caller finds out: no query per frame
    with archive().engine.connect() as conn:
        projects = study_projects(conn, study_instance_uid)
    if projects is None or (project is not None and project not in projects):
        return StudyVerdict.HIDDEN
    if not access.allows(Action.READ, projects):
        return StudyVerdict.HIDDEN
    allowed = (
        access.allows_in_all(action, projects)
        if action is Action.DELETE
        else access.allows(action, projects)
    )
    return StudyVerdict.ALLOWED if allowed else StudyVerdict.FORBIDDEN


def series_verdict(action: Action, series_instance_uid: str) -> StudyVerdict:
    """:func:`study_verdict` for the study the series belongs to."""
    with archive().engine.connect() as conn:
        study = conn.execute(
            select(Study.study_instance_uid)
            .join(Series, Series.study_fk == Study.id)
            .where(Series.series_instance_uid == series_instance_uid)
        ).scalar()
    return StudyVerdict.HIDDEN if study is None else study_verdict(action, study)


def store_target() -> tuple[str, StudyCheck]:
    """Where this request's new studies go (a project name, or "" for none) and the check
    that refuses objects of studies it may not add to.

    Under a project root, new studies join that project. Elsewhere they join the user's
    one writable project; a user who writes in several must pick one through its root.
    Existing studies take objects from anyone who may write in one of their projects.
    """
    access = current_access()
    targets = writable_projects()
    named = g.get("project_name")
    if named is not None or targets is None or len(targets) != 1:
        project_name = named or ""
    else:
        with archive().engine.connect() as conn:
            project_name = project_names(conn, targets)[0]

    def refusal(conn: Connection, study_instance_uid: str) -> str | None:
        projects = study_projects(conn, study_instance_uid)
        if projects is None:
            if targets is None or project_name:
                return None
            return (
                f"study {study_instance_uid} is new and you write in several projects: "
                "store it through one project's root, /dicomweb/projects/{name}/studies"
            )
        if access.allows(Action.WRITE, projects):
            return None
        return (
            f"study {study_instance_uid} belongs to projects where you cannot write; "
            "ask their Manager for the Researcher role"
        )

    return project_name, refusal


def writable_projects() -> frozenset[int] | None:
    """The projects this request may store new studies into; None: any (or none at all)."""
    access = current_access()
    project = scoped_project()
    if access.anywhere(Action.WRITE):
        return None if project is None else frozenset({project})
    writable = access.project_ids(Action.WRITE)
    return writable if project is None else writable & {project}
