"""process_series: what happens to every series once it has arrived (started by the dispatcher).

The routing rules (PACSFLOW_ROUTING) decide: trigger other DAGs with the series in their
conf, forward the series to DICOM peers or DICOMweb servers. Each action is a mapped task,
so it shows, fails and re-runs on its own in the Airflow UI.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import BaseHook, dag, get_current_context, task

PACSFLOW_CONNECTION = "pacsflow_default"


def _client() -> Any:
    from pacsflow.operators.client import PacsflowClient

    conn = BaseHook.get_connection(PACSFLOW_CONNECTION)
    base_url = f"{conn.schema or 'http'}://{conn.host}:{conn.port}"
    return PacsflowClient(base_url, conn.login, conn.password)


def _conf() -> dict[str, Any]:
    dag_run = get_current_context()["dag_run"]
    return dict(dag_run.conf or {})


@task
def route() -> dict[str, Any]:
    from pacsflow.routing import load_rules
    from pacsflow.settings import load_settings
    from pacsflow.workflows.tasks import route_series

    rules = load_rules(load_settings().routing)
    with _client() as client:
        return route_series(client, _conf(), rules)


@task
def triggers(routed: dict[str, Any]) -> list[dict[str, Any]]:
    return list(routed["triggers"])


@task
def forwards(routed: dict[str, Any]) -> list[dict[str, Any]]:
    return list(routed["forwards"])


@task
def forward(action: dict[str, Any]) -> dict[str, Any]:
    from pacsflow.settings import load_settings
    from pacsflow.workflows.tasks import forward_series

    with _client() as client:
        return forward_series(client, _conf(), action, load_settings().ae_title)


@dag(
    dag_id="process_series",
    schedule=None,
    catchup=False,
    max_active_runs=32,
    tags=["pacsflow"],
    doc_md=__doc__,
)
def process_series() -> None:
    routed: Any = route()  # an XComArg while the DAG is built, a dict in the tasks
    TriggerDagRunOperator.partial(task_id="trigger").expand_kwargs(triggers(routed))
    forward.expand(action=forwards(routed))


process_series()
