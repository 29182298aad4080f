"""users.py: the functions behind ``pacsflow users create|list|delete``."""

from __future__ import annotations

import pytest
from flask import Flask
from web_helpers import basic, people

from pacsflow.web.users import create_user, delete_user, list_users


def test_create_list_delete(app: Flask) -> None:
    created = create_user(app, "rita", "research-pw", "researcher", email="rita@example.org")

    assert created == {
        "username": "rita",
        "email": "rita@example.org",
        "roles": ["Researcher"],
        "active": True,
        "last_login": None,
    }
    assert [u["username"] for u in people(app)] == ["admin", "rita"]
    assert app.test_client().get("/", headers=basic("rita", "research-pw")).status_code == 200

    delete_user(app, "rita")

    assert [u["username"] for u in people(app)] == ["admin"]
    assert app.test_client().get("/", headers=basic("rita", "research-pw")).status_code == 401


def test_list_users_never_shows_password_hashes(app: Flask) -> None:
    create_user(app, "vera", "viewer-pw", "Viewer")

    for info in list_users(app):
        assert set(info) == {"username", "email", "roles", "active", "last_login"}


def test_email_defaults_to_a_placeholder(app: Flask) -> None:
    assert create_user(app, "olaf", "operator-pw", "Operator")["email"] == "olaf@localhost"


def test_unknown_role_names_the_known_ones(app: Flask) -> None:
    with pytest.raises(
        ValueError, match=r"unknown role 'Boss'.*Admin.*Operator.*Researcher.*Viewer"
    ):
        create_user(app, "bob", "pw-123456", "Boss")


def test_existing_user_is_refused(app: Flask) -> None:
    create_user(app, "vera", "viewer-pw", "Viewer")

    with pytest.raises(ValueError, match="user 'vera' already exists"):
        create_user(app, "vera", "other-pw", "Viewer")


def test_email_used_twice_is_refused(app: Flask) -> None:
    create_user(app, "vera", "viewer-pw", "Viewer", email="lab@example.org")

    with pytest.raises(ValueError, match="email 'lab@example.org' is already used"):
        create_user(app, "vic", "viewer-pw", "Viewer", email="lab@example.org")


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("", "must not be empty"),
        (" padded", "must not be empty or start or end with spaces"),
        ("a:b", "must not contain ':'"),
        ("x" * 129, "at most 128 characters"),
    ],
)
def test_bad_usernames_are_refused(app: Flask, username: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_user(app, username, "pw-123456", "Viewer")


@pytest.mark.parametrize("password", ["", "   "])
def test_empty_password_is_refused(app: Flask, password: str) -> None:
    with pytest.raises(ValueError, match="password must not be empty"):
        create_user(app, "vera", password, "Viewer")


def test_deleting_a_missing_user_is_refused(app: Flask) -> None:
    with pytest.raises(ValueError, match="no user named 'ghost'"):
        delete_user(app, "ghost")


def test_the_last_admin_cannot_be_deleted(app: Flask) -> None:
    with pytest.raises(ValueError, match="last active Admin"):
        delete_user(app, "admin")

    create_user(app, "root2", "admin-pw-2", "Admin")
    delete_user(app, "admin")

    assert [u["username"] for u in people(app)] == ["root2"]
