"""process_series: what happens to every series once it has arrived (started by the dispatcher).

The series is indexed for search first; then the routing rules (PACSFLOW_ROUTING) decide:
trigger other DAGs with the series in their conf, forward the series to DICOM peers or
DICOMweb servers. Each action is a mapped task, so it shows, fails and re-runs on its own in
the Airflow UI.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task

from pacsflow.workflows.task_context import pacsflow_client, run_conf


@task
def index() -> int:
    with pacsflow_client() as client:
        return client.index_series(run_conf()["series_instance_uid"])


@task
def route() -> dict[str, Any]:
    from pacsflow.routing import load_rules
    from pacsflow.settings import load_settings
    from pacsflow.workflows.tasks import route_series

    rules = load_rules(load_settings().routing)
    with pacsflow_client() as client:
        return route_series(client, run_conf(), rules)


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

    with pacsflow_client() as client:
        return forward_series(client, run_conf(), action, load_settings().ae_title)


@dag(
    dag_id="process_series",
    description="Apply the routing rules to a series: forward it, start workflows on it",
    schedule=None,
    catchup=False,
    max_active_runs=32,
    tags=["pacsflow", "user-runnable"],  # users may re-run it on stored series
    doc_md=__doc__,
)
def process_series() -> None:
    routed: Any = route()  # an XComArg while the DAG is built, a dict in the tasks
    index() >> routed
    # a retried trigger finds its run started already
    TriggerDagRunOperator.partial(task_id="trigger", skip_when_already_exists=True).expand_kwargs(
        triggers(routed)
    )
    forward.expand(action=forwards(routed))


process_series()
