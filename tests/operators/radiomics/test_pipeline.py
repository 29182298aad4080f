"""The radiomics pipeline against a live pacsflow (DICOMweb only, no Airflow), and the REST
results it leaves: JSON and CSV per series."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pydicom
import pytest

from pacsflow.operators.client import PacsflowClient
from pacsflow.operators.radiomics.model import RadiomicsError
from pacsflow.operators.radiomics.parameters import parameter_file
from pacsflow.operators.radiomics.pipeline import (
    RadiomicsRequest,
    compute_and_store,
    wait_for_images,
)
from tests.conftest import SHARED_DATA
from tests.live_server import LiveServer
from tests.operators.helpers import stow

DCMQI = SHARED_DATA / "dcmqi-seg"
CT = sorted((DCMQI / "ct-3slice").glob("*.dcm"))


def request_for(segmentation: Path, **options: object) -> RadiomicsRequest:
    ds = pydicom.dcmread(segmentation, stop_before_pixels=True)
    conf = {
        "study_instance_uid": ds.StudyInstanceUID,
        "series_instance_uid": ds.SeriesInstanceUID,
        "params": options,
    }
    return RadiomicsRequest.from_conf(conf)


def test_a_seg_gives_a_stored_sr_readable_as_json_and_csv(
    live_server: LiveServer, archive_client: PacsflowClient, tmp_path: Path
) -> None:
    segmentation = DCMQI / "partial_overlaps.dcm"
    stow(live_server, [*CT, segmentation])
    request = request_for(segmentation)
    wait_for_images(archive_client, request, tmp_path / "wait")
    (stored,) = compute_and_store(archive_client, request, tmp_path / "first")
    assert stored["stored"] is True

    image_series = pydicom.dcmread(CT[0], stop_before_pixels=True).SeriesInstanceUID
    url = f"{live_server.url}/api/v1/series/{image_series}/radiomics"
    answer = live_server.session().get(url, timeout=60)
    assert answer.status_code == 200, answer.text
    features = answer.json()["features"]
    assert {row["region_number"] for row in features} == {1, 2, 3, 4, 5}
    assert {row["sr_sop_instance_uid"] for row in features} == {stored["sop_instance_uid"]}
    volumes = [row for row in features if row["feature"] == "original_shape_VoxelVolume"]
    assert len(volumes) == 5 and all(row["value"] > 0 and row["unit"] for row in volumes)

    as_csv = live_server.session().get(url, params={"format": "csv"}, timeout=60)
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(as_csv.text)))) == len(features)
    # The segmentation series finds the same results.
    seg_url = f"{live_server.url}/api/v1/series/{request.series_instance_uid}/radiomics"
    assert live_server.session().get(seg_url, timeout=60).json()["features"] == features

    # The same inputs and parameters again: the same SR, not stored twice.
    (again,) = compute_and_store(archive_client, request, tmp_path / "again")
    assert again == {**stored, "stored": False}


def test_missing_images_are_named_after_the_wait(
    live_server: LiveServer, archive_client: PacsflowClient, tmp_path: Path
) -> None:
    segmentation = DCMQI / "liver.dcm"
    stow(live_server, [segmentation])
    request = request_for(segmentation, wait_seconds=0.5)
    with pytest.raises(RadiomicsError, match=r"still missing after 0.5 s: series [\d.]+: no"):
        wait_for_images(archive_client, request, tmp_path, sleep=lambda _: None)


def test_a_series_without_segmentation_is_refused(
    live_server: LiveServer, archive_client: PacsflowClient, tmp_path: Path
) -> None:
    stow(live_server, CT)
    request = request_for(CT[0])
    with pytest.raises(RadiomicsError, match="holds no SEG or RTSTRUCT instance"):
        compute_and_store(archive_client, request, tmp_path)


def test_radiomics_of_an_unknown_series_is_404(live_server: LiveServer) -> None:
    url = f"{live_server.url}/api/v1/series/1.2.3.404/radiomics"
    answer = live_server.session().get(url, timeout=30)
    assert answer.status_code == 404
    assert "no series 1.2.3.404" in answer.json()["error"]


def test_options_come_from_a_rule_or_a_manual_run() -> None:
    series = {"study_instance_uid": "1.2", "series_instance_uid": "1.2.3"}
    assert RadiomicsRequest.from_conf(series) == RadiomicsRequest("1.2", "1.2.3")
    by_rule = RadiomicsRequest.from_conf({**series, "parameters": "ibsi", "rule": "r"})
    assert by_rule.parameters == "ibsi"
    by_hand = RadiomicsRequest.from_conf(
        {**series, "params": {"parameters": "mine", "wait_seconds": 5, "resample": True}}
    )
    assert (by_hand.parameters, by_hand.wait_seconds, by_hand.resample) == ("mine", 5.0, True)


def test_an_uploaded_parameter_set_is_used_by_name(
    live_server: LiveServer, archive_client: PacsflowClient, tmp_path: Path
) -> None:
    shipped = parameter_file("default").read_text()
    upload = live_server.session().put(
        f"{live_server.url}/api/v1/radiomics/parameters/coarse",
        data=shipped.replace("binWidth: 25", "binWidth: 50"),
        timeout=30,
    )
    assert upload.status_code == 201, upload.text
    segmentation = DCMQI / "liver.dcm"
    stow(live_server, [*CT, segmentation])
    default = compute_and_store(archive_client, request_for(segmentation), tmp_path / "a")
    coarse = compute_and_store(
        archive_client, request_for(segmentation, parameters="coarse"), tmp_path / "b"
    )
    assert default[0]["sop_instance_uid"] != coarse[0]["sop_instance_uid"]
    assert default[0]["series_instance_uid"] == coarse[0]["series_instance_uid"]
    assert coarse[0]["stored"] is True
