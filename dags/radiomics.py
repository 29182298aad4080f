"""radiomics: features of every segment or ROI of a SEG or RTSTRUCT series, as a TID 1500 SR.

Started by the default routing rule when a segmentation arrives, or by a user on chosen
series (conf ``params``: ``parameters``, a shipped parameter set such as ``default`` or
``ibsi``; ``wait_seconds``, how long to wait for referenced images; ``resample``, to resample
non-uniform slice spacing instead of refusing it). The SR is stored in pacsflow beside the
images, in a results series of the segmentation's study.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from airflow.sdk import dag, task

from pacsflow.workflows.task_context import pacsflow_client, run_conf


def _request() -> Any:
    from pacsflow.operators.radiomics.pipeline import RadiomicsRequest

    return RadiomicsRequest.from_conf(run_conf())


@task
def wait_for_images() -> None:
    from pacsflow.operators.radiomics.pipeline import wait_for_images as wait

    with pacsflow_client() as client, tempfile.TemporaryDirectory() as workdir:
        wait(client, _request(), Path(workdir))


@task
def compute_and_store() -> list[dict[str, Any]]:
    from pacsflow.operators.radiomics.pipeline import compute_and_store as compute

    with pacsflow_client() as client, tempfile.TemporaryDirectory() as workdir:
        return compute(client, _request(), Path(workdir))


@dag(
    dag_id="radiomics",
    description="pyradiomics features of each segment or ROI, stored as a DICOM SR (TID 1500)",
    schedule=None,
    catchup=False,
    max_active_runs=8,
    tags=["pacsflow", "user-runnable"],
    doc_md=__doc__,
)
def radiomics() -> None:
    wait_for_images() >> compute_and_store()


radiomics()
