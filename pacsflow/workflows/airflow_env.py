"""Airflow as pacsflow runs it: one environment for its four processes and their tasks.

Everything Airflow needs is derived from pacsflow's settings, so `pacsflow up` works on a
fresh machine: its metadata database and secrets live in ``$PACSFLOW_HOME/airflow``. Airflow
has no users of its own: people and the dispatcher sign in with pacsflow accounts (see
:mod:`pacsflow.workflows.auth_manager`). The dispatcher and Airflow's tasks both use the
pacsflow service account ``airflow``; tasks reach pacsflow's DICOMweb with it through the
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
from urllib.parse import urlsplit

from pacsflow.settings import Settings
from pacsflow.supervisor import Service
from pacsflow.workflows.airflow_api import AirflowClient

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPOSITORY / "dags"
PLUGINS_FOLDER = REPOSITORY / "plugins"
SERVICE_USER = "airflow"  # the pacsflow account of Airflow's tasks and of the dispatcher
PACSFLOW_CONNECTION = "pacsflow_default"
AUTH_MANAGER = "pacsflow.workflows.auth_manager.PacsflowAuthManager"


EXECUTORS = {
    "local": "LocalExecutor",
    "celery": "CeleryExecutor",
    "kubernetes": "KubernetesExecutor",
}


def service_password(settings: Settings) -> str:
    return settings.persistent_secret("service_password")


def dispatcher_client(settings: Settings) -> AirflowClient:
    """The dispatcher's Airflow session, signed in as the service account (Operator: OP)."""
    return AirflowClient(settings.airflow_url, SERVICE_USER, service_password(settings))


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _jwt_secret() -> str:
    return secrets.token_hex(64)  # HS512 wants at least 64 bytes


def airflow_environment(settings: Settings) -> dict[str, str]:
    """The AIRFLOW_* variables for every Airflow process pacsflow starts."""
    home = settings.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    database_url = settings.airflow_sqlalchemy_url
    web = urlsplit(settings.web_url)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": EXECUTORS[settings.airflow_executor],
        # LocalExecutor forks this many workers (~140 MB each) at the first task; a Celery
        # worker runs as many tasks at once.
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow_parallelism),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(settings.airflow_parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__FERNET_KEY": settings.persistent_secret("airflow/fernet_key", _fernet_key),
        "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
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
                "host": web.hostname,
                "port": web.port or (443 if web.scheme == "https" else 80),
                "schema": web.scheme,
                "login": SERVICE_USER,
                "password": service_password(settings),
            }
        ),
    }
    # What tasks, the auth manager and the plugin read of pacsflow's settings, however the
    # starting process was given them.
    env["PACSFLOW_AE_TITLE"] = settings.ae_title
    env["PACSFLOW_HTTP_PORT"] = str(settings.http_port)
    if settings.routing is not None:
        env["PACSFLOW_ROUTING"] = str(settings.routing.resolve())
    if settings.airflow_executor == "celery":
        env["AIRFLOW__CELERY__BROKER_URL"] = settings.celery_broker_url
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = f"db+{database_url}"
    if database_url.startswith("postgresql"):
        # Airflow's async engine would otherwise ask for asyncpg.
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = database_url
    return env


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
    """Airflow's four processes (and a Celery worker); logs are read from AIRFLOW_HOME."""
    env = airflow_environment(settings)
    services = [
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
    if settings.airflow_executor == "celery":
        # One worker beside the platform; more run on other machines with the same settings.
        worker = _airflow_command("celery", "worker", "--skip-serve-logs", "--without-mingle")
        services.append(Service("airflow-celery-worker", worker, env))
    return services
