"""Helpers shared by the sign-in tests (a plain module: conftest is for fixtures)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from flask import Flask

from pacsflow.archive.archive import Archive
from pacsflow.archive.projects import create_project
from pacsflow.settings import Settings
from pacsflow.web.dicomweb.common import ARCHIVE_EXTENSION
from pacsflow.web.security import security_manager
from tests.conftest import opened_app


@contextmanager
def running(
    name: str,
    command: list[Any],
    log: Path,
    answers: Callable[[], bool],
    seconds: float,
    **popen: Any,
) -> Iterator[None]:
    """A server started by a test, its output in ``log``: once ``answers()``, until the
    block ends; it fails the test with the log when it exits early or never answers."""
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, **popen)
    try:
        deadline = time.monotonic() + seconds
        while not answers():
            if process.poll() is not None:
                pytest.fail(f"{name} exited early:\n{log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not answer within {seconds} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(timeout=20)


@contextmanager
def migrated_app(settings: Settings) -> Iterator[Flask]:
    """The web app on a migrated archive (the audit trail needs its table), closed afterwards."""
    with opened_app(settings) as app:
        archive: Archive = app.extensions[ARCHIVE_EXTENSION]
        archive.migrate()
        yield app


def roles_of(app: Flask, username: str) -> list[str] | None:
    """The FAB roles of ``username`` as stored, or None if there is no such user."""
    with app.app_context():
        user = security_manager(app).find_user(username=username)
        return None if user is None else sorted(role.name for role in user.roles)


def create_projects(app: Flask, *names: str) -> None:
    archive: Archive = app.extensions[ARCHIVE_EXTENSION]
    with archive.write_connection() as conn:
        for name in names:
            create_project(conn, name)


def project_roles(listing: Any) -> dict[str, str | None]:
    """The user's role in each project of a GET /api/v1/projects answer, by name."""
    return {project["name"]: project["role"] for project in listing["projects"]}


@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        name = attributes.get("name")
        if tag == "form":
            self.forms.append(Form(urljoin(self.url, attributes.get("action") or "")))
        elif tag == "input" and self.forms and name:
            self.forms[-1].fields[name] = attributes.get("value") or ""


def form_with(html: str, url: str, field_name: str) -> Form:
    """The page's form that has ``field_name``, as a browser would submit it from ``url``."""
    parser = _FormParser(url)
    parser.feed(html)
    for form in parser.forms:
        if field_name in form.fields:
            return form
    raise AssertionError(f"no form with a {field_name!r} field at {url}:\n{html[:2000]}")
