"""Airflow as pacsflow runs it: one environment for its four processes and their tasks.

Everything Airflow needs is derived from pacsflow's settings, so `pacsflow up` works on a
fresh machine: its metadata database, secrets and users live in ``$PACSFLOW_HOME/airflow``.
Two accounts link the systems: the dispatcher signs in to Airflow as ``pacsflow``, and
Airflow's tasks reach pacsflow's DICOMweb as the pacsflow user ``airflow`` through the
Airflow connection ``pacsflow_default``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

from pacsflow.settings import Settings
from pacsflow.supervisor import Service

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPOSITORY / "dags"
AIRFLOW_USER = "pacsflow"  # the dispatcher's account in Airflow
SERVICE_USER = "airflow"  # Airflow's account in pacsflow
PACSFLOW_CONNECTION = "pacsflow_default"
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)


def airflow_password(settings: Settings) -> str:
    return settings.persistent_secret("airflow/pacsflow_password")


def service_password(settings: Settings) -> str:
    return settings.persistent_secret("service_password")


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _jwt_secret() -> str:
    return secrets.token_hex(64)  # HS512 wants at least 64 bytes


def airflow_environment(settings: Settings) -> dict[str, str]:
    """The AIRFLOW_* variables for every Airflow process pacsflow starts."""
    home = settings.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    _write_private(passwords, json.dumps({AIRFLOW_USER: airflow_password(settings)}))
    database_url = settings.airflow_sqlalchemy_url
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # LocalExecutor forks this many workers (~140 MB each) at the first task.
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow_parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__FERNET_KEY": settings.persistent_secret("airflow/fernet_key", _fernet_key),
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.airflow_url}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        "AIRFLOW__API__HOST": settings.bind,
        "AIRFLOW__API__PORT": str(settings.airflow_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": f"http://{settings.bind}:{settings.airflow_port}",
        "AIRFLOW__API__SECRET_KEY": settings.persistent_secret("airflow/secret_key"),
        "AIRFLOW__API_AUTH__JWT_SECRET": settings.persistent_secret(
            "airflow/jwt_secret", _jwt_secret
        ),
        "AIRFLOW__API_AUTH__JWT_ISSUER": "pacsflow",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "0",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        f"AIRFLOW_CONN_{PACSFLOW_CONNECTION.upper()}": json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": settings.http_port,
                "schema": "http",
                "login": SERVICE_USER,
                "password": service_password(settings),
            }
        ),
    }
    # What tasks read of pacsflow's settings, however the starting process was given them.
    env["PACSFLOW_AE_TITLE"] = settings.ae_title
    if settings.routing is not None:
        env["PACSFLOW_ROUTING"] = str(settings.routing.resolve())
    if database_url.startswith("postgresql"):
        # Airflow's async engine would otherwise ask for asyncpg.
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = database_url
    return env


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _airflow_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "airflow", *args]


def migrate_airflow(settings: Settings) -> None:
    """Create or upgrade Airflow's metadata database (idempotent; ~5 s)."""
    logger.info("preparing Airflow's metadata database")
    done = subprocess.run(
        _airflow_command("db", "migrate"),
        env={**os.environ, **airflow_environment(settings)},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"`airflow db migrate` failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        )


def airflow_services(settings: Settings) -> list[Service]:
    """Airflow's four processes; logs are served through its API, not extra ports."""
    env = airflow_environment(settings)
    return [
        Service(
            "airflow-api-server",
            _airflow_command(
                "api-server",
                "--host",
                settings.bind,
                "--port",
                str(settings.airflow_port),
                "--workers",
                "1",
            ),
            env,
        ),
        Service("airflow-scheduler", _airflow_command("scheduler", "--skip-serve-logs"), env),
        Service("airflow-dag-processor", _airflow_command("dag-processor"), env),
        Service("airflow-triggerer", _airflow_command("triggerer", "--skip-serve-logs"), env),
    ]
