"""The platform with a real Airflow: web, Airflow's processes, the dispatcher, a peer.

One per module (starting Airflow takes ~15 s): pacsflow's web server, Airflow's api-server,
scheduler, dag-processor and triggerer, the DICOM receiver (accepting any calling AE) and the
dispatcher in threads, and dcmtk's storescp registered as the DICOM peer STORESCP. The routing
rules of these tests forward every CT series to it (and put its study in project ct-studies)
and send segmentations to `radiomics`.
Two kinds: ``local`` (the default: LocalExecutor, everything on SQLite) and
``celery`` (the scale-out path: archive and Airflow on PostgreSQL, CeleryExecutor with the
machine's Redis as broker and a Celery worker); a module asks for both with
``pytest.mark.parametrize("platform", PLATFORM_KINDS, indirect=True)``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests

from pacsflow.archive.archive import Archive
from pacsflow.archive.dispatcher import Dispatcher
from pacsflow.archive.projects import create_project
from pacsflow.archive.remote_aes import add_peer
from pacsflow.receiver import start_receiver
from pacsflow.settings import Settings, load_settings
from pacsflow.supervisor import Service
from pacsflow.workflows.airflow_api import AirflowClient
from pacsflow.workflows.airflow_env import airflow_services, dispatcher_client, migrate_airflow
from tests.conftest import database
from tests.live_server import ADMIN_PASSWORD, LiveServer, free_port, running_server
from tests.receiver.helpers import running_storescp

AIRFLOW_READY_SECONDS = 180
PLATFORM_KINDS = ["local", "celery"]
REDIS = "redis://127.0.0.1:6379"
QUIET_SECONDS = 2.0
DESTINATION = "STORESCP"
CT_PROJECT = "ct-studies"
RULES = """\
version: 1
rules:
  - name: ct-to-storescp
    match:
      modality: CT
    actions:
      - forward: {dicom_ae: STORESCP, retries: 1}
      - project: ct-studies
  - name: segmentations-to-radiomics
    match:
      sop_class: [Segmentation Storage, RT Structure Set Storage]
    actions:
      - trigger: {dag_id: radiomics}
"""


@dataclass
class AirflowStack:
    """Airflow's processes, each restartable (to take Airflow away and bring it back)."""

    services: list[Service]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        service = next(s for s in self.services if s.name == name)
        with open(self.logs / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                list(service.command),
                env={**os.environ, **service.environment},
                stdout=log,
                stderr=log,
            )

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)  # the main process only, as Airflow wants
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def tail(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text()[-1500:]}" for log in self.logs.glob("*.log")
        )


@dataclass(frozen=True)
class Platform:
    settings: Settings
    archive: Archive
    web: LiveServer
    airflow: AirflowClient
    stack: AirflowStack
    received: Path  # what storescp wrote, bit for bit


def wait_airflow_ready(airflow: AirflowClient, stack: AirflowStack) -> None:
    """Until the API answers and the dag-processor has registered process_series."""
    deadline = time.monotonic() + AIRFLOW_READY_SECONDS
    while time.monotonic() < deadline:
        for name, process in stack.processes.items():
            assert process.poll() is None, f"{name} exited:\n{stack.tail()}"
        try:
            token = airflow._sign_in()
            dag = requests.get(
                f"{airflow.base_url}/api/v2/dags/process_series",
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            )
            if dag.status_code == 200:
                return
        except Exception:
            pass
        time.sleep(1)
    raise AssertionError(f"Airflow not ready in {AIRFLOW_READY_SECONDS} s:\n{stack.tail()}")


@contextmanager
def celery_databases(root: Path) -> Iterator[dict[str, object]]:
    """Settings for the scale-out kind: own PostgreSQL databases and an own Redis database,
    all dropped afterwards (Redis has 16 numbered databases; 0 is left to `make up`)."""
    broker_db = random.randint(1, 15)
    with database("postgresql", root) as archive_url, database("postgresql", root) as airflow_url:
        try:
            yield {
                "database_url": archive_url,
                "airflow_database_url": airflow_url,
                "airflow_executor": "celery",
                "celery_broker_url": f"{REDIS}/{broker_db}",
            }
        finally:
            redis.Redis.from_url(f"{REDIS}/{broker_db}").flushdb()


@pytest.fixture(scope="module")
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    kind = getattr(request, "param", "local")
    root = tmp_path_factory.mktemp(f"platform-{kind}")
    rules = root / "rules.yaml"
    rules.write_text(RULES)
    with ExitStack() as cleanup:
        scale_out = cleanup.enter_context(celery_databases(root)) if kind == "celery" else {}
        yield cleanup.enter_context(running_platform(root, rules, scale_out))


@contextmanager
def running_platform(root: Path, rules: Path, scale_out: dict[str, object]) -> Iterator[Platform]:
    settings = load_settings(
        home=root / "home",
        admin_password=ADMIN_PASSWORD,
        http_port=free_port(),
        airflow_port=free_port(),
        series_quiet_seconds=QUIET_SECONDS,
        routing=rules,
        airflow_parallelism=2,
        dicom_port=free_port(),
        dicom_accept_all_calling_aes=True,
        **scale_out,
    )
    archive = Archive(settings)
    archive.migrate()
    with archive.write_connection() as conn:
        create_project(conn, CT_PROJECT)
    received = root / "received"
    logs = root / "logs"
    logs.mkdir()
    stack = AirflowStack(airflow_services(settings), logs)
    stopping = threading.Event()
    try:
        with (
            running_storescp(received, DESTINATION, "+B", "-pm", "+xa") as scp_port,
            running_server(settings, logs / "web.log", port=settings.http_port) as web,
            ExitStack() as threads,
        ):
            add_peer(archive, DESTINATION, host="127.0.0.1", port=scp_port, may_connect=False)
            threads.callback(start_receiver(settings, archive).stop)
            migrate_airflow(settings)
            for service in stack.services:
                stack.start(service.name)
            airflow = dispatcher_client(settings)
            wait_airflow_ready(airflow, stack)
            dispatcher = Dispatcher(archive, airflow, QUIET_SECONDS)
            thread = threading.Thread(target=dispatcher.run, args=(stopping,), daemon=True)
            thread.start()
            threads.callback(thread.join, timeout=30)
            threads.callback(stopping.set)
            yield Platform(settings, archive, web, airflow, stack, received)
    finally:
        for name in list(stack.processes):
            stack.stop(name)
        archive.close()
