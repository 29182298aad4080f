"""The one permission check: what roles allow, in one project, in several, everywhere."""

from __future__ import annotations

import pytest

from pacsflow.archive.access import EVERYTHING, NOTHING, ROLE_ACTIONS, Access, Action, ProjectRole

VIEWER_OF_1_MANAGER_OF_2 = Access(
    projects={1: ROLE_ACTIONS[ProjectRole.VIEWER], 2: ROLE_ACTIONS[ProjectRole.MANAGER]}
)


@pytest.mark.parametrize(
    ("action", "projects", "allowed"),
    [
        (Action.READ, {1}, True),
        (Action.WRITE, {1}, False),
        (Action.WRITE, {1, 2}, True),  # writing into a shared study takes one project
        (Action.READ, {3}, False),
        (Action.READ, set(), False),  # studies in no project: everywhere only
    ],
)
def test_allows_in_any_of_the_studys_projects(
    action: Action, projects: set[int], allowed: bool
) -> None:
    assert VIEWER_OF_1_MANAGER_OF_2.allows(action, projects) is allowed


def test_deleting_a_shared_study_takes_the_right_in_each_project() -> None:
    assert VIEWER_OF_1_MANAGER_OF_2.allows_in_all(Action.DELETE, {2})
    assert not VIEWER_OF_1_MANAGER_OF_2.allows_in_all(Action.DELETE, {1, 2})
    assert not VIEWER_OF_1_MANAGER_OF_2.allows_in_all(Action.DELETE, set())
    assert EVERYTHING.allows_in_all(Action.DELETE, set())


def test_roles_grow_from_viewer_to_manager() -> None:
    viewer, researcher, manager = (ROLE_ACTIONS[role] for role in ProjectRole)
    assert viewer == {Action.READ}
    assert viewer < researcher < manager == set(Action)


def test_study_conditions() -> None:
    assert EVERYTHING.studies(Action.READ) is None
    assert str(NOTHING.studies(Action.READ)) == "false"
    condition = VIEWER_OF_1_MANAGER_OF_2.studies(Action.WRITE)
    assert condition is not None and "study_projects" in str(condition)
