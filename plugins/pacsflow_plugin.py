"""pacsflow in Airflow's UI: the dashboard and the viewer in the navigation, and links to
the study's dashboard page and to the viewer on every task of a run started for a study.

Airflow loads this file from the plugins folder pacsflow gives it. The views open pacsflow's
own pages in a new tab rather than in a frame: they are another site, with its own login.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

VIEWER_LINK = "Open in viewer"
STUDY_LINK = "Open study page"


@functools.cache
def public_url() -> str:
    """Where browsers reach pacsflow, from the PACSFLOW_* settings Airflow is given."""
    from pacsflow.settings import load_settings

    return load_settings().public_url


def viewer_url(base_url: str, conf: Mapping[str, Any] | None) -> str:
    """The viewer on the run's study; "" (no link) for runs not started for a study."""
    study = (conf or {}).get("study_instance_uid")
    if not study:
        return ""
    return f"{base_url}/viewer?{urlencode({'StudyInstanceUIDs': study})}"


def study_url(base_url: str, conf: Mapping[str, Any] | None) -> str:
    """The dashboard's page of the run's study; "" for runs not started for a study."""
    study = (conf or {}).get("study_instance_uid")
    return f"{base_url}/studies/{quote(study)}" if study else ""


def run_conf(dag_id: str, run_id: str) -> dict[str, Any] | None:
    """The conf of a DAG run, read where links are built: in Airflow's API server."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(
            select(DagRun.conf).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
        )


class ViewerLink(BaseOperatorLink):
    """A global link: Airflow asks for it on every task, and pacsflow's runs carry the study."""

    name = VIEWER_LINK

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return viewer_url(public_url(), run_conf(ti_key.dag_id, ti_key.run_id))


class StudyLink(BaseOperatorLink):
    """The run's study in the dashboard: its series, runs and results."""

    name = STUDY_LINK

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return study_url(public_url(), run_conf(ti_key.dag_id, ti_key.run_id))


class PacsflowPlugin(AirflowPlugin):
    name = "pacsflow"
    external_views = [
        {"name": "pacsflow dashboard", "href": f"{public_url()}/", "nav_top_level": True},
        {"name": "pacsflow viewer", "href": f"{public_url()}/viewer", "nav_top_level": True},
    ]
    global_operator_extra_links = [StudyLink(), ViewerLink()]
