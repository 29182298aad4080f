"""REST for projects: admins create them and put studies in them; admins and each project's
Managers give users roles in it. Projects a user is not in do not exist for them (404)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from pacsflow.archive.access import Action, ProjectRole, member_roles
from pacsflow.archive.projects import (
    ProjectInfo,
    add_studies,
    create_project,
    delete_project,
    find_project,
    list_projects,
    members,
    remove_member,
    remove_studies,
    series_of_studies,
    set_member,
    studies_of,
)
from pacsflow.search.indexing import refresh
from pacsflow.web.access import current_access
from pacsflow.web.api.search import backend as search_backend
from pacsflow.web.dicomweb.common import archive
from pacsflow.web.security import Permission, is_admin, require, security_manager

ROLES = ", ".join(role.value for role in ProjectRole)


def _error(status: int, message: str) -> ResponseReturnValue:
    return jsonify({"error": message}), status


def _info(info: ProjectInfo, role: str | None) -> dict[str, Any]:
    return {
        "name": info.name,
        "description": info.description,
        "ae_title": info.ae_title,
        "studies": info.studies,
        "role": role,  # the user's role in it; None for admins who are not members
    }


def _project(name: str, action: Action) -> int | ResponseReturnValue:
    """The id of project ``name`` if this user may ``action`` in it; else the error."""
    with archive().engine.connect() as conn:
        project_id = find_project(conn, name)
    access = current_access()
    if project_id is None or not access.allows(Action.READ, {project_id}):
        return _error(404, f"no project named {name!r} is open to you")
    if not access.allows(action, {project_id}):
        return _error(403, f"this takes the {ProjectRole.MANAGER.value} role in {name!r}")
    return project_id


@require(Permission.READ)
def projects() -> ResponseReturnValue:
    access = current_access()
    ids = None if access.anywhere(Action.READ) else access.project_ids(Action.READ)
    with archive().engine.connect() as conn:
        found = list_projects(conn, ids)
        roles = member_roles(conn, current_user.id)
    return jsonify({"projects": [_info(info, roles.get(info.id)) for info in found]})


def add_project() -> ResponseReturnValue:
    if not is_admin(current_user):
        return _error(403, "creating projects takes the Admin role")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        return _error(400, 'send a JSON object: {"name": "...", "ae_title": "...", ...}')
    description, ae_title = body.get("description", ""), body.get("ae_title")
    if not isinstance(description, str) or not isinstance(ae_title, str | None):
        return _error(400, '"description" and "ae_title" must be text')
    try:
        with archive().write_connection() as conn:
            info = create_project(conn, body["name"], description, ae_title)
    except ValueError as error:
        return _error(400, str(error))
    return jsonify(_info(info, None)), 201


def remove_project(name: str) -> ResponseReturnValue:
    if not is_admin(current_user):
        return _error(403, "deleting projects takes the Admin role")
    with archive().write_connection() as conn:
        project_id = find_project(conn, name)
        if project_id is None:
            return _error(404, f"no project named {name!r}")
        series = series_of_studies(conn, studies_of(conn, project_id))
        delete_project(conn, project_id)
    refresh(archive(), search_backend(), series)
    return "", 204


def project_members(name: str) -> ResponseReturnValue:
    project_id = _project(name, Action.MANAGE)
    if not isinstance(project_id, int):
        return project_id
    with archive().engine.connect() as conn:
        rows = members(conn, project_id)
    sm = security_manager()
    listed = []
    for user_id, role in rows:
        user = sm.get_user_by_id(user_id)
        if user is not None:
            listed.append({"username": user.username, "role": role})
    return jsonify({"members": listed})


def put_member(name: str, username: str) -> ResponseReturnValue:
    project_id = _project(name, Action.MANAGE)
    if not isinstance(project_id, int):
        return project_id
    body = request.get_json(silent=True)
    role = body.get("role") if isinstance(body, dict) else None
    if role not in {r.value for r in ProjectRole}:
        return _error(400, f'send a JSON object: {{"role": "..."}} with one of {ROLES}')
    user = security_manager().find_user(username=username)
    if user is None:
        return _error(404, f"no user named {username!r}")
    with archive().write_connection() as conn:
        set_member(conn, project_id, user.id, role)
    return jsonify({"username": user.username, "role": role})


def delete_member(name: str, username: str) -> ResponseReturnValue:
    project_id = _project(name, Action.MANAGE)
    if not isinstance(project_id, int):
        return project_id
    user = security_manager().find_user(username=username)
    with archive().write_connection() as conn:
        removed = user is not None and remove_member(conn, project_id, user.id)
    if not removed:
        return _error(404, f"{username!r} is not a member of {name!r}")
    return "", 204


def put_study(name: str, study: str) -> ResponseReturnValue:
    return _assign(name, study, add=True)


def delete_study(name: str, study: str) -> ResponseReturnValue:
    return _assign(name, study, add=False)


def _assign(name: str, study: str, *, add: bool) -> ResponseReturnValue:
    # Routing rules put studies in projects through the workflows' service account.
    allowed = current_access().anywhere(Action.WRITE) if add else is_admin(current_user)
    if not allowed:
        return _error(403, "moving studies between projects takes the Admin role")
    with archive().write_connection() as conn:
        project_id = find_project(conn, name)
        if project_id is None:
            return _error(404, f"no project named {name!r}")
        series = series_of_studies(conn, [study])
        if not series:
            return _error(404, f"no study {study} in the archive")
        if add:
            add_studies(conn, [study], project_id=project_id)
        else:
            remove_studies(conn, project_id, [study])
    refresh(archive(), search_backend(), series)  # documents name their study's projects
    return "", 204


def register(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/projects", view_func=projects, methods=["GET"])
    blueprint.add_url_rule("/projects", view_func=add_project, methods=["POST"])
    blueprint.add_url_rule("/projects/<name>", view_func=remove_project, methods=["DELETE"])
    blueprint.add_url_rule("/projects/<name>/members", view_func=project_members, methods=["GET"])
    blueprint.add_url_rule(
        "/projects/<name>/members/<username>", view_func=put_member, methods=["PUT"]
    )
    blueprint.add_url_rule(
        "/projects/<name>/members/<username>", view_func=delete_member, methods=["DELETE"]
    )
    blueprint.add_url_rule("/projects/<name>/studies/<study>", view_func=put_study, methods=["PUT"])
    blueprint.add_url_rule(
        "/projects/<name>/studies/<study>", view_func=delete_study, methods=["DELETE"]
    )
