"""The container image: what can be checked without a Docker engine (none runs here).

The Dockerfile copies only files the repository has and its .dockerignore lets through, and
names only stages it builds; the entrypoint gives every process the environment `pacsflow up`
gives Airflow, with explicitly set variables winning.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import subprocess
import sys
from pathlib import Path

from tests.deploy.conftest import REPO

DOCKERFILE = REPO / "docker" / "Dockerfile"
ENTRYPOINT = REPO / "docker" / "entrypoint.py"


def instructions() -> list[tuple[str, list[str]]]:
    """(instruction, arguments) of each Dockerfile line, continuations joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (words[0].upper(), words[1:])
        for line in lines
        if line and not line.startswith("#")
        for words in [shlex.split(line)]
    ]


def context_sources() -> list[str]:
    """What COPY takes from the build context (not from another stage)."""
    sources = []
    for instruction, args in instructions():
        if instruction == "COPY" and not any(a.startswith("--from=") for a in args):
            sources += [a for a in args if not a.startswith("--")][:-1]
    return sources


def let_through(path: str) -> bool:
    """Whether docker/Dockerfile.dockerignore (an allow-list: '*' then '!path') keeps it."""
    rules = (REPO / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    kept = True
    for rule in (r.strip() for r in rules if r.strip() and not r.startswith("#")):
        pattern = rule.removeprefix("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            kept = rule.startswith("!")
    return kept


def test_copied_files_exist_and_reach_the_build() -> None:
    sources = context_sources()
    assert {"pacsflow", "dags", "plugins", "uv.lock", "docker/entrypoint.py"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), source
        assert let_through(source), f"{source} is excluded by docker/Dockerfile.dockerignore"
    assert not let_through(".venv") and not let_through("viewer/dist")


def test_stages_copied_from_are_built() -> None:
    stages = {args[-1] for instruction, args in instructions() if instruction == "FROM"}
    used = {
        arg.removeprefix("--from=")
        for instruction, args in instructions()
        if instruction == "COPY"
        for arg in args
        if arg.startswith("--from=")
    }
    assert used == {"python", "viewer"} and used <= stages


def run_entrypoint(
    tmp_path: Path, environment: dict[str, str], *command: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ENTRYPOINT), *command],
        env={"PATH": str(Path(sys.executable).parent), "PACSFLOW_HOME": str(tmp_path)}
        | environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_entrypoint_configures_airflow_from_pacsflow_settings(tmp_path: Path) -> None:
    done = run_entrypoint(
        tmp_path,
        {
            "PACSFLOW_WEB_URL": "http://web:8000",
            "PACSFLOW_AIRFLOW_URL": "http://airflow-api-server:8080",
            "PACSFLOW_AIRFLOW_EXECUTOR": "celery",
            "PACSFLOW_AIRFLOW_DATABASE_URL": "postgresql://pacsflow:pw@postgres/airflow",
            "PACSFLOW_CELERY_BROKER_URL": "redis://redis:6379/0",
            "AIRFLOW__API__BASE_URL": "https://airflow.example.org",
        },
        "python",
        "-c",
        "import json, os; print(json.dumps(dict(os.environ)))",
    )
    assert done.returncode == 0, done.stderr
    env = json.loads(done.stdout)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    assert (
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
        == "http://airflow-api-server:8080/execution/"
    )
    assert env["AIRFLOW__API__BASE_URL"] == "https://airflow.example.org"  # given: it wins
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "dags")
    connection = json.loads(env["AIRFLOW_CONN_PACSFLOW_DEFAULT"])
    assert (connection["schema"], connection["host"], connection["port"]) == ("http", "web", 8000)
    assert connection["password"] == (tmp_path / "service_password").read_text().strip()


def test_the_entrypoint_refuses_wrong_settings(tmp_path: Path) -> None:
    done = run_entrypoint(tmp_path, {"PACSFLOW_WEB_URL": "web:8000"}, "true")
    assert done.returncode != 0
    assert "PACSFLOW_WEB_URL: must be an http:// or https:// URL" in done.stderr
    done = run_entrypoint(tmp_path, {})
    assert done.returncode != 0 and "usage: pacsflow-env COMMAND" in done.stderr
