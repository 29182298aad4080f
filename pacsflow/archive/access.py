"""Who may do what with which studies: the one permission check behind every interface.

A study belongs to projects; a user has a role in some of them, a DICOM peer is given
some of them. An :class:`Access` says, for one such principal, which actions it may take
everywhere (Admin, the workflows' service account, a trusted peer) and which in each
project. Every interface asks it the same two questions: "which studies may I <action>?"
as a SQL condition on ``studies`` (QIDO, C-FIND, search, lists, counts), and "may I
<action> this study?" (WADO, STOW, DELETE, C-MOVE/C-GET, REST on one study). Studies in no
project are reachable only by principals with access everywhere.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from sqlalchemy import ColumnElement, Connection, false, select

from pacsflow.archive.models import Project, ProjectMember, RemoteAE, RemoteAEProject, Study
from pacsflow.archive.models import StudyProject as StudyProjectRow

__all__ = [
    "EVERYTHING",
    "NOTHING",
    "Access",
    "Action",
    "ProjectRole",
    "access_for_peer",
    "member_access",
    "member_roles",
    "project_names",
    "study_projects",
]


class Action(StrEnum):
    READ = "read"  # find, view, download
    WRITE = "write"  # store into, run workflows on
    DELETE = "delete"
    MANAGE = "manage"  # the project's members


class ProjectRole(StrEnum):
    """A user's role in one project."""

    VIEWER = "Viewer"
    RESEARCHER = "Researcher"
    MANAGER = "Manager"


ROLE_ACTIONS: Final[Mapping[ProjectRole, frozenset[Action]]] = {
    ProjectRole.VIEWER: frozenset({Action.READ}),
    ProjectRole.RESEARCHER: frozenset({Action.READ, Action.WRITE}),
    ProjectRole.MANAGER: frozenset(Action),
}


@dataclass(frozen=True)
class Access:
    """What one principal may do: ``everywhere``, and in each project by id."""

    everywhere: frozenset[Action] = frozenset()
    projects: Mapping[int, frozenset[Action]] = field(default_factory=dict)

    def project_ids(self, action: Action) -> frozenset[int]:
        """The projects where a role allows ``action`` (:meth:`anywhere` tells the rest)."""
        return frozenset(p for p, actions in self.projects.items() if action in actions)

    def anywhere(self, action: Action) -> bool:
        return action in self.everywhere

    def studies(self, action: Action) -> ColumnElement[bool] | None:
        """The studies where ``action`` is allowed, as a condition on ``studies``; None: all."""
        if self.anywhere(action):
            return None
        ids = self.project_ids(action)
        if not ids:
            return false()
        return Study.id.in_(
            select(StudyProjectRow.study_fk).where(StudyProjectRow.project_fk.in_(sorted(ids)))
        )

    def allows(self, action: Action, projects: Collection[int]) -> bool:
        """Whether ``action`` is allowed on a study that belongs to ``projects``."""
        return self.anywhere(action) or bool(self.project_ids(action) & set(projects))

    def allows_in_all(self, action: Action, projects: Collection[int]) -> bool:
        """Whether ``action`` is allowed in every one of ``projects`` (deleting a study shared
        by several projects takes the right in each); an unassigned study needs everywhere."""
        if self.anywhere(action):
            return True
        return bool(projects) and set(projects) <= self.project_ids(action)


EVERYTHING: Final = Access(everywhere=frozenset(Action))
NOTHING: Final = Access()


def study_projects(conn: Connection, study_instance_uid: str) -> frozenset[int] | None:
    """The ids of the projects a study belongs to; None when the study is not stored."""
    rows = conn.execute(
        select(Study.id, StudyProjectRow.project_fk)
        .outerjoin(StudyProjectRow, StudyProjectRow.study_fk == Study.id)
        .where(Study.study_instance_uid == study_instance_uid)
    ).all()
    if not rows:
        return None
    return frozenset(row.project_fk for row in rows if row.project_fk is not None)


def member_roles(conn: Connection, user_id: int) -> dict[int, str]:
    """A user's role in each project they are a member of, by project id."""
    rows = conn.execute(
        select(ProjectMember.project_fk, ProjectMember.role).where(ProjectMember.user_id == user_id)
    )
    return {row.project_fk: row.role for row in rows}


def member_access(
    conn: Connection, user_id: int, allowed: frozenset[Action] = frozenset(Action)
) -> Access:
    """A user's access from their project roles, capped by ``allowed`` (what their global
    role permits anywhere: a global Viewer stays read-only whatever their project role)."""
    roles = member_roles(conn, user_id)
    return Access(
        projects={
            project: ROLE_ACTIONS[ProjectRole(role)] & allowed for project, role in roles.items()
        }
    )


def access_for_peer(conn: Connection, ae_title: str) -> Access:
    """A DICOM peer's access for query and retrieve: all studies if it is trusted with all
    projects, otherwise those of its projects; an unregistered peer reaches none."""
    peer = conn.execute(
        select(RemoteAE.id, RemoteAE.all_projects).where(RemoteAE.ae_title == ae_title.strip())
    ).first()
    if peer is None:
        return NOTHING
    if peer.all_projects:
        return Access(everywhere=frozenset({Action.READ}))
    ids = conn.execute(
        select(RemoteAEProject.project_fk).where(RemoteAEProject.remote_ae_fk == peer.id)
    ).scalars()
    return Access(projects={project: frozenset({Action.READ}) for project in ids})


def project_names(conn: Connection, ids: Collection[int]) -> list[str]:
    """Names of the projects with these ids, sorted."""
    if not ids:
        return []
    return sorted(conn.execute(select(Project.name).where(Project.id.in_(sorted(ids)))).scalars())
