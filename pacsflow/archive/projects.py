"""Projects: create and list them, put studies in them, and give users roles in them.

Studies join a project when they arrive (on the project's called AE title, through its
DICOMweb root, by a routing rule) or when an admin assigns them; see
:mod:`pacsflow.archive.access` for what membership allows.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, delete, func, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from pacsflow.archive.access import ProjectRole, member_roles
from pacsflow.archive.models import (
    Project,
    ProjectMember,
    RemoteAE,
    RemoteAEProject,
    Series,
    Study,
    StudyProject,
)
from pacsflow.settings import check_ae_title

__all__ = [
    "ProjectInfo",
    "add_studies",
    "check_project_name",
    "create_project",
    "delete_project",
    "find_project",
    "find_project_by_ae",
    "give_peer_projects",
    "list_projects",
    "members",
    "remove_member",
    "remove_studies",
    "series_of_studies",
    "set_member",
    "studies_of",
    "sync_group_memberships",
]

# Lower-case letters, digits, '-' and '_': the name appears in URLs (/dicomweb/projects/{name}).
PROJECT_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


@dataclass(frozen=True)
class ProjectInfo:
    id: int
    name: str
    description: str
    ae_title: str | None
    studies: int


def check_project_name(name: str) -> str:
    """``name`` if it can name a project; ValueError saying what a name may hold otherwise."""
    if not isinstance(name, str) or not PROJECT_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} cannot name a project: use 1 to 64 lower-case letters, digits, "
            "'-' or '_', starting with a letter or digit"
        )
    return name


def create_project(
    conn: Connection, name: str, description: str = "", ae_title: str | None = None
) -> ProjectInfo:
    """Make a project; ValueError when the name or AE title is invalid or taken."""
    check_project_name(name)
    title = check_ae_title(ae_title) if ae_title else None
    try:
        with conn.begin_nested():
            project_id = conn.execute(
                insert(Project)
                .values(name=name, description=description[:255], ae_title=title)
                .returning(Project.id)
            ).scalar_one()
    except IntegrityError:
        raise ValueError(f"a project named {name!r} or with AE title {title!r} exists") from None
    return ProjectInfo(project_id, name, description[:255], title, 0)


def list_projects(conn: Connection, ids: Collection[int] | None = None) -> list[ProjectInfo]:
    """Every project (or those with ``ids``), by name, with how many studies each holds."""
    counted = (
        select(StudyProject.project_fk, func.count().label("studies"))
        .group_by(StudyProject.project_fk)
        .subquery()
    )
    query = (
        select(
            Project.id,
            Project.name,
            Project.description,
            Project.ae_title,
            func.coalesce(counted.c.studies, 0),
        )
        .outerjoin(counted, counted.c.project_fk == Project.id)
        .order_by(Project.name)
    )
    if ids is not None:
        query = query.where(Project.id.in_(sorted(ids)))
    return [ProjectInfo(*row) for row in conn.execute(query)]


def find_project(conn: Connection, name: str) -> int | None:
    """The id of the project called ``name``."""
    return conn.execute(select(Project.id).where(Project.name == name)).scalar()


def find_project_by_ae(conn: Connection, ae_title: str) -> int | None:
    """The id of the project whose called AE title is ``ae_title``."""
    return conn.execute(select(Project.id).where(Project.ae_title == ae_title.strip())).scalar()


def delete_project(conn: Connection, project_id: int) -> None:
    """Remove a project; its studies stay in the archive and in their other projects."""
    conn.execute(delete(Project).where(Project.id == project_id))


def add_studies(
    conn: Connection,
    study_uids: Collection[str],
    *,
    project_id: int | None = None,
    project_name: str = "",
    called_ae: str = "",
) -> int:
    """Put the stored studies among ``study_uids`` in a project, named by id, by name or by
    its called AE title; return how many new memberships that made.

    Safe when several ingests of one study add it at once (ON CONFLICT DO NOTHING).
    """
    chosen = [
        condition
        for condition, given in (
            (Project.id == project_id, project_id is not None),
            (Project.name == project_name, bool(project_name)),
            (Project.ae_title == called_ae.strip(), bool(called_ae.strip())),
        )
        if given
    ]
    if not study_uids or not chosen:
        return 0
    pairs = (
        select(Study.id, Project.id)
        .join(Project, or_(*chosen))
        .where(Study.study_instance_uid.in_(sorted(study_uids)))
    )
    dialect_insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    result = conn.execute(
        dialect_insert(StudyProject)
        .from_select(["study_fk", "project_fk"], pairs)
        .on_conflict_do_nothing()
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def remove_studies(conn: Connection, project_id: int, study_uids: Collection[str]) -> int:
    """Take studies out of a project (they stay stored); return how many were in it."""
    result = conn.execute(
        delete(StudyProject).where(
            StudyProject.project_fk == project_id,
            StudyProject.study_fk.in_(
                select(Study.id).where(Study.study_instance_uid.in_(sorted(study_uids)))
            ),
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def studies_of(conn: Connection, project_id: int) -> list[str]:
    """The Study Instance UIDs of a project's studies."""
    return list(
        conn.execute(
            select(Study.study_instance_uid)
            .join(StudyProject, StudyProject.study_fk == Study.id)
            .where(StudyProject.project_fk == project_id)
        ).scalars()
    )


def series_of_studies(conn: Connection, study_uids: Collection[str]) -> list[str]:
    """The Series Instance UIDs of these studies: their search documents name the projects."""
    return list(
        conn.execute(
            select(Series.series_instance_uid)
            .join(Study, Series.study_fk == Study.id)
            .where(Study.study_instance_uid.in_(sorted(study_uids)))
        ).scalars()
    )


def set_member(conn: Connection, project_id: int, user_id: int, role: str) -> None:
    """Give a user ``role`` in a project (replacing any role they had there)."""
    checked = ProjectRole(role).value
    conn.execute(
        delete(ProjectMember).where(
            ProjectMember.project_fk == project_id, ProjectMember.user_id == user_id
        )
    )
    conn.execute(insert(ProjectMember).values(project_fk=project_id, user_id=user_id, role=checked))


def remove_member(conn: Connection, project_id: int, user_id: int) -> bool:
    result = conn.execute(
        delete(ProjectMember).where(
            ProjectMember.project_fk == project_id, ProjectMember.user_id == user_id
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def sync_group_memberships(
    conn: Connection, user_id: int, roles: Mapping[str, str | None]
) -> list[str]:
    """Make a user's role in each project named in ``roles`` the one given (None: no
    membership), as their directory or provider groups say; their roles in other projects,
    given by hand, stay. Returns the names that name no project, which are skipped."""
    current = member_roles(conn, user_id)
    missing = []
    for name, role in roles.items():
        project_id = find_project(conn, name)
        if project_id is None:
            missing.append(name)
        elif role is None:
            remove_member(conn, project_id, user_id)
        elif current.get(project_id) != role:
            set_member(conn, project_id, user_id, role)
    return missing


def members(conn: Connection, project_id: int) -> list[tuple[int, str]]:
    """(user id, role) of each member of a project."""
    rows = conn.execute(
        select(ProjectMember.user_id, ProjectMember.role)
        .where(ProjectMember.project_fk == project_id)
        .order_by(ProjectMember.user_id)
    )
    return [(row.user_id, row.role) for row in rows]


def give_peer_projects(conn: Connection, ae_title: str, project_names: Sequence[str]) -> None:
    """Let a registered DICOM peer query and retrieve the studies of these projects (only);
    ValueError naming an unknown peer or project."""
    peer_id = conn.execute(
        select(RemoteAE.id).where(RemoteAE.ae_title == ae_title.strip())
    ).scalar()
    if peer_id is None:
        raise ValueError(f"no AE titled {ae_title!r} is registered")
    ids = []
    for name in project_names:
        project_id = find_project(conn, name)
        if project_id is None:
            raise ValueError(f"no project named {name!r}")
        ids.append(project_id)
    conn.execute(delete(RemoteAEProject).where(RemoteAEProject.remote_ae_fk == peer_id))
    if ids:
        conn.execute(
            insert(RemoteAEProject), [{"remote_ae_fk": peer_id, "project_fk": p} for p in ids]
        )
