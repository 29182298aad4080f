"""Radiomics on arrival, on a running Airflow: the IBSI CT phantom and its RTSTRUCT sent by
dcmtk's storescu, the default routing rule starts `radiomics`, a TID 1500 SR is stored; its
features equal pyradiomics run directly on the phantom's NIfTI image and mask."""

from __future__ import annotations

import subprocess
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import highdicom as hd
import pydicom
import pytest
from radiomics import featureextractor

from pacsflow.operators.radiomics.parameters import parameter_file
from tests.conftest import SHARED_DATA
from tests.multipart import split_multipart
from tests.operators.radiomics.test_report import dciodvfy_errors
from tests.workflows.conftest import Platform
from tests.workflows.test_dispatch import RUN_SECONDS

PHANTOM = SHARED_DATA / "ibsi-ct-phantom"
IMAGES = sorted((PHANTOM / "image").glob("*.dcm"))
(RTSTRUCT,) = sorted((PHANTOM / "rtstruct").glob("*.dcm"))
RELATIVE_TOLERANCE = 0.01


def storescu(platform: Platform, files: list[str]) -> None:
    command = ["storescu", "-aet", "MODALITY", "-aec", platform.settings.ae_title, "-R", "-nh"]
    done = subprocess.run(
        [*command, "127.0.0.1", str(platform.settings.dicom_port), *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def stored_sr(platform: Platform, study_uid: str) -> tuple[str, str]:
    """(series, instance) of the SR that appears in the study, once it does."""
    session = platform.web.session()
    url = f"{platform.web.dicomweb}/studies/{study_uid}/instances"
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        found = session.get(url, params={"Modality": "SR"}, timeout=30).json()
        if found:
            (sr,) = found
            return sr["0020000E"]["Value"][0], sr["00080018"]["Value"][0]
        time.sleep(1)
    raise AssertionError(f"no SR in study {study_uid} after {RUN_SECONDS} s")


def pyradiomics_on_nifti() -> dict[str, float]:
    extractor = featureextractor.RadiomicsFeatureExtractor(str(parameter_file("default")))
    result = extractor.execute(str(PHANTOM / "image.nii.gz"), str(PHANTOM / "mask.nii.gz"))
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


@pytest.fixture(scope="module")
def phantom_sent(platform: Platform) -> dict[str, Any]:
    storescu(platform, [str(path) for path in IMAGES])
    storescu(platform, [str(RTSTRUCT)])
    image = pydicom.dcmread(IMAGES[0], stop_before_pixels=True)
    sr_series, sr_uid = stored_sr(platform, image.StudyInstanceUID)
    return {"image": image, "sr_series": sr_series, "sr_uid": sr_uid}


def radiomics_runs(platform: Platform, series_uid: str) -> list[dict[str, Any]]:
    """The radiomics runs of a series, once none is running any more (the SR is stored
    before its task, and so its run, is marked done)."""
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        runs = [
            run
            for run in platform.airflow.runs("radiomics")
            if run["conf"]["series_instance_uid"] == series_uid
        ]
        if runs and all(run["state"] in ("success", "failed") for run in runs):
            return runs
        time.sleep(1)
    raise AssertionError(f"radiomics of {series_uid} unfinished:\n{platform.stack.tail()}")


def test_the_radiomics_run_succeeded(platform: Platform, phantom_sent: dict[str, Any]) -> None:
    rtstruct = pydicom.dcmread(RTSTRUCT, stop_before_pixels=True)
    runs = radiomics_runs(platform, rtstruct.SeriesInstanceUID)
    assert [run["state"] for run in runs] == ["success"], platform.stack.tail()
    assert runs[0]["conf"]["rule"] == "segmentations-to-radiomics"


def test_features_equal_pyradiomics_on_the_nifti_files(
    platform: Platform, phantom_sent: dict[str, Any]
) -> None:
    series_uid = phantom_sent["image"].SeriesInstanceUID
    url = f"{platform.web.url}/api/v1/series/{series_uid}/radiomics"
    answer = platform.web.session().get(url, timeout=60)
    assert answer.status_code == 200, answer.text
    rows = answer.json()["features"]
    assert {(row["region_number"], row["region_label"]) for row in rows} == {(1, "GTV-1")}
    measured = {row["feature"]: row["value"] for row in rows}
    expected = pyradiomics_on_nifti()
    assert measured.keys() == expected.keys()
    for name, value in expected.items():
        assert measured[name] == pytest.approx(value, rel=RELATIVE_TOLERANCE, abs=1e-9), name


def test_the_sr_reads_back_and_is_valid(
    platform: Platform, phantom_sent: dict[str, Any], tmp_path: Path
) -> None:
    study = phantom_sent["image"].StudyInstanceUID
    url = (
        f"{platform.web.dicomweb}/studies/{study}/series/{phantom_sent['sr_series']}"
        f"/instances/{phantom_sent['sr_uid']}"
    )
    answer = platform.web.session().get(
        url, headers={"Accept": 'multipart/related; type="application/dicom"'}, timeout=60
    )
    assert answer.status_code == 200
    ((_, part),) = split_multipart(answer.headers["Content-Type"], answer.content)
    sr = pydicom.dcmread(BytesIO(part))
    report = hd.sr.Comprehensive3DSR.from_dataset(sr)
    assert isinstance(report.content, hd.sr.MeasurementReport)
    path = tmp_path / "sr.dcm"
    path.write_bytes(part)
    assert dciodvfy_errors(path) == []
