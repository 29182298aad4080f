"""User management for the ``pacsflow users`` CLI, on FAB's user and role tables.

The CLI works without a running server, so each function takes the app and opens its own
app context. Bad input raises ValueError with a message meant for the person at the terminal.
"""

from __future__ import annotations

import logging
from typing import Any, TypedDict

from flask import Flask

from pacsflow.web.security import RoleName, credential_cache, is_admin, security_manager

logger = logging.getLogger(__name__)

MAX_USERNAME_LENGTH = 128  # FAB's ab_user.username column


class UserInfo(TypedDict):
    """What ``pacsflow users list`` shows about a user (never the password hash)."""

    username: str
    email: str
    roles: list[str]
    active: bool
    last_login: str | None


def create_user(
    app: Flask, username: str, password: str, role: str, email: str | None = None
) -> UserInfo:
    """Create a database user with one role; the role name is matched case-insensitively."""
    _check_username(username)
    if not password or not password.strip():
        raise ValueError("password must not be empty")
    with app.app_context():
        sm = security_manager(app)
        role_row = _find_role(sm, role)
        if sm.find_user(username=username) is not None:
            raise ValueError(f"user {username!r} already exists")
        email = email or default_email(username)
        if sm.find_user(email=email) is not None:
            raise ValueError(f"email {email!r} is already used by another user")
        user = insert_user(sm, username, password, role_row, email)
        if user is None:
            raise ValueError(f"user {username!r} already exists")
        logger.info("created user %s with role %s", username, role_row.name)
        return _describe(user)


def list_users(app: Flask) -> list[UserInfo]:
    """All users sorted by name, for display."""
    with app.app_context():
        users = security_manager(app).get_all_users()
        return sorted((_describe(user) for user in users), key=lambda info: info["username"])


def delete_user(app: Flask, username: str) -> None:
    """Delete a user; refuses to remove the last active Admin, which would lock everyone out."""
    with app.app_context():
        sm = security_manager(app)
        user = sm.find_user(username=username)
        if user is None:
            raise ValueError(f"no user named {username!r}")
        if is_admin(user) and user.active and _count_active_admins(sm) <= 1:
            raise ValueError(
                f"user {username!r} is the last active {RoleName.ADMIN.value}; "
                "create another admin first"
            )
        if not sm.delete_user(user):
            raise RuntimeError(f"could not delete user {username!r}; see the server log")
        credential_cache(app).clear()
        logger.info("deleted user %s", username)


def default_email(username: str) -> str:
    """FAB requires a unique e-mail; pacsflow does not use it, so derive a placeholder."""
    return f"{username}@localhost"


def insert_user(sm: Any, username: str, password: str, role: Any, email: str) -> Any | None:
    """Add a user through FAB; None if another process created that user first.

    FAB's add_user rolls back and returns False on any database error (an IntegrityError
    when two processes race), so we re-check instead of trusting the error.
    """
    user = sm.add_user(
        username=username,
        first_name=username,
        last_name="user",
        email=email,
        role=role,
        password=password,
    )
    if user:
        return user
    sm.session.rollback()
    if sm.find_user(username=username) is not None:
        return None
    raise RuntimeError(f"could not create user {username!r}; see the server log")


def _check_username(username: str) -> None:
    """Usernames travel in HTTP Basic headers, where a colon ends the name."""
    if not username or username != username.strip():
        raise ValueError("username must not be empty or start or end with spaces")
    if ":" in username:
        raise ValueError(f"username {username!r} must not contain ':' (breaks HTTP Basic)")
    if len(username) > MAX_USERNAME_LENGTH:
        raise ValueError(f"username must be at most {MAX_USERNAME_LENGTH} characters")


def _find_role(sm: Any, name: str) -> Any:
    """The role row for ``name``, or ValueError listing the roles that exist."""
    roles = {role.name.lower(): role for role in sm.get_all_roles()}
    role = roles.get(name.strip().lower())
    if role is None:
        known = ", ".join(sorted(role.name for role in roles.values()))
        raise ValueError(f"unknown role {name!r}; choose one of: {known}")
    return role


def _count_active_admins(sm: Any) -> int:
    return sum(1 for user in sm.get_all_users() if user.active and is_admin(user))


def _describe(user: Any) -> UserInfo:
    return UserInfo(
        username=user.username,
        email=user.email,
        roles=sorted(role.name for role in user.roles),
        active=bool(user.active),
        last_login=user.last_login.isoformat() if user.last_login else None,
    )
