"""End to end on a running Airflow: arrivals are dispatched to process_series, which routes."""

from __future__ import annotations

import time
from io import BytesIO
from typing import Any

import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from pacsflow.archive.models import Arrival
from tests.conftest import SHARED_DATA
from tests.multipart import multipart_body
from tests.receiver.helpers import dataset_bytes
from tests.workflows.conftest import CT_PROJECT, PLATFORM_KINDS, QUIET_SECONDS, Platform

CT_SERIES = sorted((SHARED_DATA / "dcmqi-seg" / "ct-3slice").glob("*"))
BOUNDARY = "workflow-test"
RUN_SECONDS = 120

# Every test here runs on the one-machine default and on the scale-out path.
pytestmark = pytest.mark.parametrize("platform", PLATFORM_KINDS, indirect=True)


def stow(platform: Platform, parts: list[bytes]) -> None:
    response = platform.web.session().post(
        f"{platform.web.dicomweb}/studies",
        data=multipart_body(*parts, boundary=BOUNDARY),
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text[:500]


def arrivals(platform: Platform, series_uid: str) -> list[Arrival]:
    with platform.archive.sessions() as session:
        return list(
            session.execute(
                select(Arrival).where(Arrival.series_instance_uid == series_uid)
            ).scalars()
        )


def wait_dispatched(platform: Platform, series_uid: str, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows = arrivals(platform, series_uid)
        if rows and all(row.dag_run_id for row in rows):
            (run_id,) = {row.dag_run_id for row in rows}
            assert run_id is not None
            return run_id
        time.sleep(0.2)
    raise AssertionError(f"series {series_uid} was not dispatched in {seconds} s")


def wait_finished(platform: Platform, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        run = platform.airflow.run("process_series", run_id)
        assert run is not None, f"no run {run_id}"
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(1)
    raise AssertionError(f"run {run_id} not finished in {RUN_SECONDS} s:\n{platform.stack.tail()}")


def new_series(count: int) -> tuple[str, list[bytes]]:
    """``count`` CT slices of a new series (new UIDs), as Part-10 bytes."""
    series_uid = generate_uid()
    parts = []
    for path in CT_SERIES[:count]:
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        buffer = BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        parts.append(buffer.getvalue())
    return series_uid, parts


def test_a_stowed_series_is_processed_and_forwarded(platform: Platform) -> None:
    originals = [path.read_bytes() for path in CT_SERIES]
    first = pydicom.dcmread(CT_SERIES[0], stop_before_pixels=True)
    stored_at = time.monotonic()
    stow(platform, originals)
    run_id = wait_dispatched(platform, first.SeriesInstanceUID)
    dispatched_after = time.monotonic() - stored_at
    assert dispatched_after >= QUIET_SECONDS
    run = wait_finished(platform, run_id)
    assert run["state"] == "success", platform.stack.tail()
    conf = run["conf"]
    assert conf["study_instance_uid"] == first.StudyInstanceUID
    assert conf["series_instance_uid"] == first.SeriesInstanceUID
    assert conf["modality"] == "CT"
    assert conf["sop_class_uids"] == [first.SOPClassUID]
    assert conf["instances"] == len(CT_SERIES) == conf["series_instances"]
    assert conf["source"]["kind"] == "stow" and conf["source"]["username"] == "admin"
    searched = platform.web.session().get(
        f"{platform.web.url}/api/v1/search",
        params={"SeriesInstanceUID": first.SeriesInstanceUID},
        timeout=30,
    )
    (hit,) = searched.json()["hits"]  # indexed by the run's first task
    assert hit["NumberOfInstances"] == len(CT_SERIES) and hit["SourceKind"] == "stow"
    assert hit["Project"] == [CT_PROJECT]  # the rule's project action, re-indexed at once
    for original in originals:
        uid = pydicom.dcmread(BytesIO(original)).SOPInstanceUID
        (received,) = platform.received.glob(f"*.{uid}")
        assert dataset_bytes(received.read_bytes()) == dataset_bytes(original)


def test_arrivals_wait_while_airflow_is_down_and_are_dispatched_once(
    platform: Platform,
) -> None:
    platform.stack.stop("airflow-api-server")
    try:
        series = [new_series(2) for _ in range(2)]
        for _, parts in series:
            stow(platform, parts)
        time.sleep(QUIET_SECONDS + 3)
        for series_uid, _ in series:
            assert all(row.dispatched_at is None for row in arrivals(platform, series_uid))
    finally:
        platform.stack.start("airflow-api-server")
    run_ids = [wait_dispatched(platform, uid, seconds=90) for uid, _ in series]
    for run_id in run_ids:
        assert wait_finished(platform, run_id)["state"] == "success", platform.stack.tail()
    for series_uid, _ in series:
        assert len({row.dag_run_id for row in arrivals(platform, series_uid)}) == 1
    # A trigger retried with the same run id (a dispatcher that crashed before marking
    # the rows) is refused by Airflow, so a series never runs twice.
    assert platform.airflow.trigger("process_series", run_ids[0], {}) is False
