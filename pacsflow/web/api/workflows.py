"""Manual runs: users start user-runnable workflows on series and follow their state.

pacsflow talks to Airflow for them with its service account, so nobody needs an Airflow
login to process data; who may start runs is decided here, by pacsflow's own permissions.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from pacsflow.archive.access import Action
from pacsflow.search.indexing import study_series
from pacsflow.web.access import StudyVerdict, current_access, series_verdict, study_verdict
from pacsflow.web.dicomweb.common import archive
from pacsflow.web.security import Permission, require
from pacsflow.workflows.airflow_api import AirflowClient, AirflowError, AirflowUnavailable
from pacsflow.workflows.manual_runs import (
    ManualRunError,
    is_user_runnable,
    start_runs,
    user_runnable,
)

AIRFLOW_EXTENSION = "pacsflow_airflow"
MAX_SERIES_PER_REQUEST = 1000
MAX_RUNS_PER_SERIES = 100
RUN_FIELDS = ("dag_id", "dag_run_id", "state", "queued_at", "start_date", "end_date")


def airflow() -> AirflowClient:
    """The app's Airflow session, signed in on first use (Airflow may start after us)."""
    client: AirflowClient | None = current_app.extensions.get(AIRFLOW_EXTENSION)
    if client is None:
        from pacsflow.workflows.airflow_env import dispatcher_client

        client = dispatcher_client(current_app.config["PACSFLOW_SETTINGS"])
        current_app.extensions[AIRFLOW_EXTENSION] = client
    return client


def _error(status: int, message: str) -> ResponseReturnValue:
    return jsonify({"error": message}), status


@require(Permission.READ)
def list_workflows() -> ResponseReturnValue:
    return jsonify({"workflows": [asdict(w) for w in user_runnable(airflow())]})


@require(Permission.WRITE)
def start(dag_id: str) -> ResponseReturnValue:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, 'send a JSON object: {"series": ["<SeriesInstanceUID>", ...]}')
    series, params = body.get("series"), body.get("params", {})
    if not (
        isinstance(series, list) and series and all(isinstance(uid, str) and uid for uid in series)
    ):
        return _error(400, '"series" must be a non-empty list of SeriesInstanceUIDs')
    if len(series) > MAX_SERIES_PER_REQUEST:
        return _error(400, f"at most {MAX_SERIES_PER_REQUEST} series per request")
    if not isinstance(params, dict):
        return _error(400, '"params" must be a JSON object')
    if not current_access().anywhere(Action.WRITE):
        verdicts = {uid: series_verdict(Action.WRITE, uid) for uid in series}
        hidden = sorted(uid for uid, v in verdicts.items() if v is StudyVerdict.HIDDEN)
        if hidden:  # answered as start_runs answers series that are not stored
            return _error(404, f"series not in the archive: {', '.join(hidden)}")
        forbidden = [uid for uid, v in verdicts.items() if v is StudyVerdict.FORBIDDEN]
        if forbidden:
            return _error(
                403, f"running workflows on series {forbidden[0]} takes the Researcher role"
            )
    runs = start_runs(
        archive(), airflow(), dag_id, list(dict.fromkeys(series)), current_user.username, params
    )
    return jsonify({"runs": [asdict(run) for run in runs]}), 201


@require(Permission.READ)
def get_run(dag_id: str, run_id: str) -> ResponseReturnValue:
    client = airflow()
    if not is_user_runnable(client.dag(dag_id)):
        raise ManualRunError(f"no workflow {dag_id!r} that users may run")
    run = client.run(dag_id, run_id)
    series = ((run or {}).get("conf") or {}).get("series_instance_uid")
    if run is None or series_verdict(Action.READ, str(series or "")) is not StudyVerdict.ALLOWED:
        return _error(404, f"no run {run_id!r} of workflow {dag_id!r}")
    return jsonify(_run_summary(run))


@require(Permission.READ)
def study_runs(study: str) -> ResponseReturnValue:
    """The runs that touched the study's series, newest first: their run ids name the
    series (dispatched, manual and rule-triggered runs alike)."""
    series = study_series(archive(), study)
    if not series or study_verdict(Action.READ, study) is not StudyVerdict.ALLOWED:
        return _error(404, f"no study {study} in the archive")
    client = airflow()
    runs = [
        _run_summary(run, uid)
        for uid in series
        for run in client.runs(limit=MAX_RUNS_PER_SERIES, run_id_pattern=uid)
    ]
    runs.sort(key=lambda run: run["queued_at"] or "", reverse=True)
    return jsonify({"runs": runs})


def _run_summary(run: dict[str, Any], series_uid: str | None = None) -> dict[str, Any]:
    summary = {field: run.get(field) for field in RUN_FIELDS}
    conf = run.get("conf") or {}
    summary["series_instance_uid"] = conf.get("series_instance_uid", series_uid)
    return summary


def _not_runnable(error: ManualRunError) -> ResponseReturnValue:
    return _error(404, str(error))


def _airflow_unavailable(error: AirflowUnavailable) -> ResponseReturnValue:
    return _error(503, f"{error}; workflows cannot be started or read until it is back")


def _airflow_error(error: AirflowError) -> ResponseReturnValue:
    return _error(502, str(error))


def register(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/workflows", view_func=list_workflows, methods=["GET"])
    blueprint.add_url_rule("/workflows/<dag_id>/runs", view_func=start, methods=["POST"])
    blueprint.add_url_rule("/workflows/<dag_id>/runs/<run_id>", view_func=get_run, methods=["GET"])
    blueprint.add_url_rule("/studies/<study>/runs", view_func=study_runs, methods=["GET"])
    blueprint.register_error_handler(ManualRunError, _not_runnable)
    blueprint.register_error_handler(AirflowUnavailable, _airflow_unavailable)
    blueprint.register_error_handler(AirflowError, _airflow_error)
