"""Fixtures shared by all tests: settings on a fresh home, and a database per test.

``database_url`` runs a test on SQLite and on the machine's PostgreSQL; each PostgreSQL
test creates its own database and drops it afterwards.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from flask import Flask

from pacsflow.archive.archive import Archive
from pacsflow.archive.projects import create_project, find_project, set_member
from pacsflow.settings import Settings, load_settings
from pacsflow.web.app import close_app, create_app
from pacsflow.web.dicomweb.common import ARCHIVE_EXTENSION
from pacsflow.web.security import security_manager

pytest.register_assert_rewrite("tests.live_server", "tests.browser_support")
from tests.live_server import ADMIN_PASSWORD  # noqa: E402

pytest_plugins = ["tests.live_server", "tests.browser_support"]

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True, scope="module")
def archives_are_closed() -> Iterator[None]:
    """Every test module closes the archives (and apps) it opens.

    An open archive's audit thread retries its writes for the rest of the run once the test's
    database is gone; on Python 3.11 its logged tracebacks race pytest's own use of ``ast``
    (CPython gh-106905) and can crash the run.
    """
    before = set(audit_threads())
    yield
    left = [thread for thread in audit_threads() if thread not in before]
    assert not left, f"{len(left)} archive(s) left open: close them (close_app for apps)"


def audit_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "audit-trail" and t.is_alive()]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"test data not found at {SHARED_DATA}: ../shared must sit beside the repo")
    return SHARED_DATA


def create_postgres_database() -> tuple[str, str]:
    name = f"pacsflow_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_postgres_database(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """A database URL: an SQLite file in ``folder``, or a PostgreSQL database made and dropped."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'index.db'}"
        return
    name, url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(name)


@contextmanager
def migrated_archive(kind: str, folder: Path) -> Iterator[Archive]:
    """A fresh archive on a ``kind`` database (sqlite, postgresql) under ``folder``, migrated
    and closed afterwards; for module-scoped fixtures that load data once."""
    with database(kind, folder) as url:
        settings = load_settings(
            home=folder / "home", database_url=url, admin_password=ADMIN_PASSWORD
        )
        archive = Archive(settings)
        try:
            archive.migrate()
            yield archive
        finally:
            archive.close()


@contextmanager
def opened_app(settings: Settings) -> Iterator[Flask]:
    """The web app on ``settings``, closed afterwards (its archive and audit trail)."""
    app = create_app(settings)
    try:
        yield app
    finally:
        close_app(app)


def join_project(app: Flask, username: str, role: str = "Researcher", project: str = "lab") -> None:
    """Give ``username`` ``role`` in ``project`` (made if needed): without a project a user
    other than an admin sees no study."""
    archive: Archive = app.extensions[ARCHIVE_EXTENSION]
    with app.app_context():
        user_id = security_manager(app).find_user(username=username).id
    with archive.write_connection() as conn:
        project_id = find_project(conn, project) or create_project(conn, project).id
        set_member(conn, project_id, user_id, role)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return load_settings(
        home=tmp_path / "home", database_url=database_url, admin_password=ADMIN_PASSWORD
    )


@pytest.fixture
def archive(settings: Settings) -> Iterator[Archive]:
    archive = Archive(settings)
    archive.migrate()
    yield archive
    archive.close()
