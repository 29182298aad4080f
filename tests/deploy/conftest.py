"""What the deployment tests share: where things are, and a check that the settings a
deployment gives pacsflow's containers are settings pacsflow accepts."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from pacsflow.settings import ENV_PREFIX, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def tool(name: str, where: Path | None = None) -> Path:
    """A command the tests need; missing, the test fails and says how to install it."""
    found = where / name if where else shutil.which(name)
    if found is None or not Path(found).is_file():
        pytest.fail(f"{name} not found ({where or 'PATH'}): run `make test-tools`")
    return Path(found)


def settings_from(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Load pacsflow's settings from a container's environment, as its processes do."""
    for name in os.environ:
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        if name.startswith(ENV_PREFIX):
            monkeypatch.setenv(name, value)
    return load_settings()
