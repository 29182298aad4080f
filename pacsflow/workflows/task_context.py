"""What a running task of pacsflow's DAGs needs from Airflow: its run's conf, and pacsflow.

pacsflow is reached through the ``pacsflow_default`` connection that `up` sets up, as the
service account; call these inside a running task only.
"""

from __future__ import annotations

from typing import Any

from pacsflow.operators.client import PacsflowClient
from pacsflow.workflows.airflow_env import PACSFLOW_CONNECTION


def pacsflow_client() -> PacsflowClient:
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(PACSFLOW_CONNECTION)
    base_url = f"{conn.schema or 'http'}://{conn.host}:{conn.port}"
    return PacsflowClient(base_url, conn.login, conn.password)


def run_conf() -> dict[str, Any]:
    from airflow.sdk import get_current_context

    dag_run = get_current_context()["dag_run"]
    return dict(dag_run.conf or {})
