"""The whole platform (`pacsflow up`) for benchmarks that time workflows end to end.

It runs on its default ports inside the benchmark's private network namespace, in a fresh
home under the work dir, with the routing rules the benchmark gives; ready once the web app
answers and Airflow has registered the DAGs the benchmark needs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
from harness import (
    PACSFLOW_BIN,
    PASSWORD,
    REPO_ROOT,
    USER,
    log,
    spawn,
    stop_process,
    wait_http_ready,
    wait_until,
)

from pacsflow.settings import Settings, load_settings
from pacsflow.workflows.airflow_api import AirflowClient
from pacsflow.workflows.airflow_env import dispatcher_client


@dataclass(frozen=True)
class Platform:
    settings: Settings
    web: requests.Session  # signed in as the bench admin
    airflow: AirflowClient

    @property
    def web_url(self) -> str:
        return self.settings.web_url


def environment(settings: Settings) -> dict[str, str]:
    """`pacsflow up` reads its settings from the environment, like an operator's shell."""
    assert settings.routing is not None
    return dict(
        {k: v for k, v in os.environ.items() if not k.startswith("PACSFLOW_")},
        PACSFLOW_HOME=str(settings.home),
        PACSFLOW_SERIES_QUIET_SECONDS=str(settings.series_quiet_seconds),
        PACSFLOW_ROUTING=str(settings.routing),
        PACSFLOW_ADMIN_PASSWORD=PASSWORD,
    )


def has_dags(airflow: AirflowClient, dag_ids: tuple[str, ...]) -> bool:
    """The API answers and the dag-processor has registered every one of ``dag_ids``."""
    with contextlib.suppress(Exception):
        return all(airflow.dag(dag_id) is not None for dag_id in dag_ids)
    return False


@contextlib.contextmanager
def running_platform(
    workdir: Path, rules: str, quiet_seconds: float, dag_ids: tuple[str, ...], timeout_s: float
) -> Iterator[Platform]:
    rules_path = workdir / "rules.yaml"
    rules_path.write_text(rules)
    settings = load_settings(
        home=workdir / "home",
        series_quiet_seconds=quiet_seconds,
        routing=rules_path,
        admin_password=PASSWORD,
    )
    log_path = workdir / "pacsflow-up.log"
    log(f"starting `pacsflow up` in {settings.home}")
    proc = spawn([str(PACSFLOW_BIN), "up"], environment(settings), REPO_ROOT, log_path)
    web = requests.Session()
    web.auth = (USER, PASSWORD)
    try:
        started = time.monotonic()
        wait_http_ready(web, f"{settings.web_url}/health", proc, "pacsflow", log_path, timeout_s)
        airflow = dispatcher_client(settings)
        what = f"Airflow has {', '.join(dag_ids)}"
        ready = functools.partial(has_dags, airflow, dag_ids)
        wait_until(ready, proc, "pacsflow up", log_path, what, timeout_s)
        log(f"platform ready in {time.monotonic() - started:.1f} s")
        yield Platform(settings, web, airflow)
    finally:
        web.close()
        stop_process(proc, "pacsflow up")
