"""Fixtures for the sign-in tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings from the developer's shell must not leak into tests."""
    for name in list(os.environ):
        if name.startswith("PACSFLOW_"):
            monkeypatch.delenv(name)
