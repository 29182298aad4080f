"""docker-compose.yml: valid by the compose specification's schema and by docker-compose
1.29 (`config`), and what it gives pacsflow's containers is what pacsflow expects.

No Docker engine runs on the test machine: nothing here builds or starts a container.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pacsflow.cli import main as pacsflow_cli
from tests.deploy.conftest import REPO, VENV_BIN, settings_from, tool

COMPOSE_FILE = REPO / "docker-compose.yml"
PACSFLOW_SERVICES = {
    "init",
    "web",
    "receiver",
    "dispatcher",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}


def docker_compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """docker-compose with only ``env_file`` as its .env, whatever the developer's .env holds."""
    return subprocess.run(
        [str(tool("docker-compose")), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text("POSTGRES_PASSWORD=s3cret\n")
    return path


def test_the_compose_file_follows_the_compose_specification() -> None:
    done = subprocess.run(
        [
            str(tool("check-jsonschema", VENV_BIN)),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_docker_compose_accepts_it(env_file: Path) -> None:
    done = docker_compose(env_file, "config", "--quiet")
    assert done.returncode == 0, done.stderr


def test_the_database_password_must_be_set(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.touch()
    done = docker_compose(empty, "config", "--quiet")
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD in .env (see .env.example)" in done.stderr


@pytest.fixture
def services(env_file: Path) -> dict[str, Any]:
    done = docker_compose(env_file, "config")
    assert done.returncode == 0, done.stderr
    services: dict[str, Any] = yaml.safe_load(done.stdout)["services"]
    return services


def test_pacsflow_containers_get_valid_settings(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pacsflow = {name for name, s in services.items() if s["image"] == "pacsflow:0.1.0"}
    assert pacsflow == PACSFLOW_SERVICES
    for name in pacsflow:
        settings = settings_from(services[name]["environment"], monkeypatch)
        assert settings.web_url == "http://web:8000", name
        assert settings.airflow_url == "http://airflow-api-server:8080", name
        assert settings.airflow_executor == "celery", name
        assert settings.sqlalchemy_url.endswith("@postgres:5432/pacsflow"), name
        # One home for all: the secrets they must agree on are generated there once.
        assert services[name]["volumes"] == ["pacsflow-home:/var/lib/pacsflow:rw"], name


def test_services_run_commands_that_exist(services: dict[str, Any]) -> None:
    for name in PACSFLOW_SERVICES - {"init"}:
        command = services[name]["command"]
        assert command[0] in ("pacsflow", "airflow"), name
        if command[0] == "pacsflow":
            assert command[1] in pacsflow_cli.commands, name
    assert services["init"]["command"] == ["sh", "-c", "pacsflow migrate && airflow db migrate"]


def host_and_port(port: str | dict[str, Any]) -> tuple[str, int]:
    """A published port as `config` writes it: "IP:PUBLISHED:TARGET/tcp", or long syntax."""
    if isinstance(port, str):
        *host, _published, target = port.split("/")[0].split(":")
        return (host[0] if host else "0.0.0.0", int(target))
    return port.get("host_ip", "0.0.0.0"), port["target"]


def test_only_the_entry_points_are_published(services: dict[str, Any]) -> None:
    published = {
        name: [host_and_port(port) for port in service["ports"]]
        for name, service in services.items()
        if service.get("ports")
    }
    assert published == {
        "web": [("0.0.0.0", 8000)],
        "receiver": [("0.0.0.0", 11112)],
        "airflow-api-server": [("0.0.0.0", 8080)],
        "opensearch-dashboards": [("127.0.0.1", 5601)],
    }


def test_long_running_services_have_health_checks(services: dict[str, Any]) -> None:
    one_shot = {"init", "dashboards-init"}
    unchecked = {name for name, s in services.items() if "healthcheck" not in s} - one_shot
    assert unchecked == {"dispatcher"}  # no port; it retries until Airflow answers
