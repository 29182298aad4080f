"""pacsflow in Airflow's UI: the dashboard and the viewer in the navigation, and an
"Open in viewer" link on every task of a run that was started for a study.

Airflow loads this file from the plugins folder pacsflow gives it. The views open pacsflow's
own pages in a new tab rather than in a frame: they are another site, with its own login.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

VIEWER_LINK = "Open in viewer"


@functools.cache
def web_url() -> str:
    """pacsflow's web app, from the PACSFLOW_* settings Airflow's processes are given."""
    from pacsflow.settings import load_settings

    return load_settings().web_url


def viewer_url(base_url: str, conf: Mapping[str, Any] | None) -> str:
    """The viewer on the run's study; "" (no link) for runs not started for a study."""
    study = (conf or {}).get("study_instance_uid")
    if not study:
        return ""
    return f"{base_url}/viewer?{urlencode({'StudyInstanceUIDs': study})}"


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
        return viewer_url(web_url(), run_conf(ti_key.dag_id, ti_key.run_id))


class PacsflowPlugin(AirflowPlugin):
    name = "pacsflow"
    external_views = [
        {"name": "pacsflow dashboard", "href": f"{web_url()}/", "nav_top_level": True},
        {"name": "pacsflow viewer", "href": f"{web_url()}/viewer", "nav_top_level": True},
    ]
    global_operator_extra_links = [ViewerLink()]
