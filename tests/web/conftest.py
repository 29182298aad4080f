"""Fixtures for the web tests: a real app on a fresh $PACSFLOW_HOME."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import ADMIN_PASSWORD

from pacsflow.archive.archive import Archive
from pacsflow.settings import load_settings
from pacsflow.web.dicomweb.common import ARCHIVE_EXTENSION
from tests.conftest import opened_app


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings from the developer's shell must not leak into tests."""
    for name in list(os.environ):
        if name.startswith("PACSFLOW_"):
            monkeypatch.delenv(name)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """An app on a migrated archive (the audit trail needs its table)."""
    with opened_app(load_settings(home=tmp_path, admin_password=ADMIN_PASSWORD)) as app:
        archive: Archive = app.extensions[ARCHIVE_EXTENSION]
        archive.migrate()
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
