"""Helpers shared by the web tests (a plain module: conftest is for fixtures)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ADMIN_PASSWORD = "admin-test-password"

# Each worker imports, waits at a file barrier until all have, then builds the app at once,
# like gunicorn workers starting together.
WORKER_SCRIPT = """
import os, sys, time
from pacsflow.web.app import create_app
barrier, count = sys.argv[1], int(sys.argv[2])
open(os.path.join(barrier, str(os.getpid())), "w").close()
deadline = time.monotonic() + 60
while len(os.listdir(barrier)) < count and time.monotonic() < deadline:
    time.sleep(0.005)
create_app()
"""


def basic(username: str, password: str) -> dict[str, str]:
    """Headers for HTTP Basic authentication."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer(token: str) -> dict[str, str]:
    """Headers for a Bearer token."""
    return {"Authorization": f"Bearer {token}"}


def start_workers(
    env: Mapping[str, str], barrier: Path, count: int = 4
) -> list[subprocess.CompletedProcess[str]]:
    """Start ``count`` processes that call create_app at the same moment; wait for all."""
    barrier.mkdir()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PACSFLOW_")}
    full_env.update(env)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, str(barrier), str(count)],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return results


def people(app: Any) -> list[dict[str, Any]]:
    """The users, without the service account every start creates for Airflow's tasks."""
    from pacsflow.web.users import list_users
    from pacsflow.workflows.airflow_env import SERVICE_USER

    return [u for u in list_users(app) if u["username"] != SERVICE_USER]
