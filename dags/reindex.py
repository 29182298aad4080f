"""reindex: rebuild the search index from the archive (after a restore, a change of search
backend, or a new version of the series document). Also `pacsflow reindex` on the server."""

from __future__ import annotations

from airflow.sdk import dag, task

from pacsflow.workflows.task_context import pacsflow_client

REINDEX_TIMEOUT = (10.0, 3600.0)  # the web app rebuilds the whole index in the one call


@task
def rebuild() -> int:
    with pacsflow_client() as client:
        return client.reindex(REINDEX_TIMEOUT)


@dag(
    dag_id="reindex",
    description="Rebuild the search index from every series in the archive",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["pacsflow"],
    doc_md=__doc__,
)
def reindex() -> None:
    rebuild()


reindex()
