"""What `process_series` does in its tasks, apart from Airflow: route a series, forward it.

Kept free of Airflow imports so that it is tested without a scheduler; the DAG passes in
the pacsflow client it built from the ``pacsflow_default`` connection.
"""

from __future__ import annotations

import uuid
from typing import Any

from pacsflow.archive.ingest import SourceKind
from pacsflow.operators.client import PacsflowClient
from pacsflow.operators.cstore import Destination
from pacsflow.operators.forward import forward_to_ae, forward_to_dicomweb
from pacsflow.routing import RuleSet, SeriesFacts, matching_actions

SERIES_KEYS = ("study_instance_uid", "series_instance_uid", "modality", "sop_class_uids")


def route_series(client: PacsflowClient, conf: dict[str, Any], rules: RuleSet) -> dict[str, Any]:
    """The actions the rules give for the series in ``conf``, split by kind for mapping.

    ``triggers`` are keyword arguments of TriggerDagRunOperator; the triggered run's conf
    holds the series' identity and the rule's own conf, its run id the series' UID.
    ``projects`` are done here, before any trigger: the study joins them at once.
    """
    metadata = client.series_metadata(conf["study_instance_uid"], conf["series_instance_uid"])
    source = conf.get("source", {})
    facts = SeriesFacts.from_dicom_json(
        metadata,
        SourceKind(source.get("kind", SourceKind.STOW.value)),
        calling_ae=source.get("calling_ae", ""),
        called_ae=source.get("called_ae", ""),
    )
    series = {key: conf[key] for key in SERIES_KEYS if key in conf}
    triggers: list[dict[str, Any]] = []
    forwards: list[dict[str, Any]] = []
    projects: list[str] = []
    for rule, action in matching_actions(rules, facts):
        if action.trigger is not None:
            run_conf = {**series, **action.trigger.conf, "rule": rule.name}
            dag_id = action.trigger.dag_id
            triggers.append(
                {
                    "trigger_dag_id": dag_id,
                    "trigger_run_id": series_run_id(dag_id, conf["series_instance_uid"]),
                    "conf": run_conf,
                }
            )
        if action.forward is not None:
            forwards.append({"rule": rule.name, **action.forward.model_dump(exclude_none=True)})
        if action.project is not None:
            client.add_study_to_project(action.project, conf["study_instance_uid"])
            projects.append(action.project)
    return {"triggers": triggers, "forwards": forwards, "projects": projects}


def series_run_id(dag_id: str, series_uid: str) -> str:
    """A new run id naming the series, so the runs that touched a series can be found."""
    return f"{dag_id}__{series_uid}__{uuid.uuid4().hex[:12]}"


def remote_ae(client: PacsflowClient, ae_title: str) -> Destination:
    """A known peer's address, from pacsflow's REST API (tasks have no database access)."""
    peer = client.remote_ae(ae_title)
    if not peer["host"] or not peer["port"]:
        raise LookupError(f"DICOM peer {ae_title!r} has no host and port to send to")
    return Destination(peer["ae_title"], peer["host"], int(peer["port"]))


def forward_series(
    client: PacsflowClient, conf: dict[str, Any], forward: dict[str, Any], calling_ae: str
) -> dict[str, Any]:
    """Send the series to the forward action's destination; the per-instance report."""
    study, series = conf["study_instance_uid"], conf["series_instance_uid"]
    retries = int(forward.get("retries", 3))
    if "dicom_ae" in forward:
        destination = remote_ae(client, forward["dicom_ae"])
        report = forward_to_ae(client, study, series, destination, calling_ae, retries)
    else:
        report = forward_to_dicomweb(client, study, series, forward["dicomweb"], None, retries)
    return report.as_dict()
