"""Runs that users start on chosen series, through pacsflow rather than Airflow.

Users never need Airflow credentials: pacsflow checks who they are and what they may do,
then starts the runs with its own Airflow account. Only DAGs tagged ``user-runnable`` are
offered; each series gets a run of its own, with the same conf as a dispatched run (so a
DAG cannot tell a manual run from an automatic one, except by ``source.kind``) plus the
user's ``params``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pacsflow.archive.archive import Archive
from pacsflow.archive.dispatcher import stored_series_conf
from pacsflow.archive.ingest import SourceKind
from pacsflow.workflows.airflow_api import AirflowClient

USER_RUNNABLE_TAG = "user-runnable"


class ManualRunError(LookupError):
    """The request names something that cannot be run; the message says what."""


@dataclass(frozen=True)
class Workflow:
    dag_id: str
    name: str
    description: str

    @classmethod
    def from_airflow(cls, dag: dict[str, Any]) -> Workflow:
        return cls(
            dag["dag_id"],
            dag.get("dag_display_name") or dag["dag_id"],
            dag.get("description") or "",
        )


@dataclass(frozen=True)
class StartedRun:
    dag_id: str
    run_id: str
    series_instance_uid: str


def user_runnable(airflow: AirflowClient) -> list[Workflow]:
    """The DAGs users may start, in order of their ids."""
    return [Workflow.from_airflow(dag) for dag in airflow.dags(USER_RUNNABLE_TAG)]


def is_user_runnable(dag: dict[str, Any] | None) -> bool:
    return dag is not None and any(tag["name"] == USER_RUNNABLE_TAG for tag in dag["tags"])


def start_runs(
    archive: Archive,
    airflow: AirflowClient,
    dag_id: str,
    series_instance_uids: list[str],
    username: str,
    params: dict[str, Any],
) -> list[StartedRun]:
    """One run of ``dag_id`` per series; nothing starts unless every series is stored."""
    if not is_user_runnable(airflow.dag(dag_id)):
        raise ManualRunError(f"no workflow {dag_id!r} that users may run")
    source = {"kind": SourceKind.MANUAL.value, "username": username}
    confs = {uid: stored_series_conf(archive, uid, source) for uid in series_instance_uids}
    missing = sorted(uid for uid, conf in confs.items() if conf is None)
    if missing:
        raise ManualRunError(f"series not in the archive: {', '.join(missing)}")
    started = []
    for uid, conf in confs.items():
        run_id = f"manual__{uid}__{uuid.uuid4().hex[:12]}"
        airflow.trigger(dag_id, run_id, {**(conf or {}), "params": params})
        started.append(StartedRun(dag_id, run_id, uid))
    return started
