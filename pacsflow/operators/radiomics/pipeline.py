"""Radiomics for one segmentation series, end to end, through pacsflow's DICOMweb only.

The `radiomics` DAG calls two steps: ``wait_for_images`` (the images a segmentation refers to
may still be arriving) and ``compute_and_store`` (fetch, volume, masks, features, SR, STOW).
Each fetches what it needs into its own temporary folder, so the steps can run on
different workers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom import Dataset
from pydicom.uid import RTStructureSetStorage, SegmentationStorage

from pacsflow.dicom.status import StoreStatus
from pacsflow.operators.client import PacsflowClient
from pacsflow.operators.radiomics.features import extract_features
from pacsflow.operators.radiomics.model import ImageVolume, RadiomicsError, RegionMask
from pacsflow.operators.radiomics.parameter_store import resolve_parameters
from pacsflow.operators.radiomics.parameters import parameters_digest
from pacsflow.operators.radiomics.references import References, references_of
from pacsflow.operators.radiomics.report import measurement_report
from pacsflow.operators.radiomics.rtstruct_masks import rtstruct_masks
from pacsflow.operators.radiomics.seg_masks import seg_masks
from pacsflow.operators.radiomics.volume import build_volume
from pacsflow.operators.report import describe
from pacsflow.operators.stow import post_files

logger = logging.getLogger(__name__)

SEGMENTATION_CLASSES = frozenset({SegmentationStorage, RTStructureSetStorage})
DEFAULT_PARAMETERS = "default"
DEFAULT_WAIT_SECONDS = 300.0
POLL_SECONDS = 5.0
STOW_TIMEOUT = (10.0, 300.0)


@dataclass(frozen=True)
class RadiomicsRequest:
    """What a run was asked to do: which segmentation series, with which parameters."""

    study_instance_uid: str
    series_instance_uid: str
    parameters: str = DEFAULT_PARAMETERS
    wait_seconds: float = DEFAULT_WAIT_SECONDS
    resample: bool = False

    @classmethod
    def from_conf(cls, conf: dict[str, Any]) -> RadiomicsRequest:
        """From a run's conf: a routing rule's conf at the top, a manual run's in ``params``."""
        options = {**conf, **(conf.get("params") or {})}
        return cls(
            conf["study_instance_uid"],
            conf["series_instance_uid"],
            str(options.get("parameters", DEFAULT_PARAMETERS)),
            float(options.get("wait_seconds", DEFAULT_WAIT_SECONDS)),
            bool(options.get("resample", False)),
        )


def fetch_series(client: PacsflowClient, study_uid: str, series_uid: str, into: Path) -> list[Path]:
    """Every instance of a series as stored, as files in ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    return [
        client.retrieve_instance_file(study_uid, series_uid, uid, into)
        for uid in client.series_instances(study_uid, series_uid)
    ]


def segmentations(client: PacsflowClient, request: RadiomicsRequest, into: Path) -> list[Dataset]:
    """The SEG and RTSTRUCT instances of the requested series (pixel data included)."""
    paths = fetch_series(client, request.study_instance_uid, request.series_instance_uid, into)
    found: list[Dataset] = [pydicom.dcmread(path) for path in paths]
    found = [ds for ds in found if ds.SOPClassUID in SEGMENTATION_CLASSES]
    if not found:
        raise RadiomicsError(
            f"series {request.series_instance_uid} holds no SEG or RTSTRUCT instance"
        )
    return found


def missing_images(client: PacsflowClient, references: References) -> list[str]:
    """What of the referenced images is not in pacsflow yet, as readable lines."""
    missing, stored = [], set()
    for series_uid in references.series_instance_uids:
        instances = client.series_instances(references.study_instance_uid, series_uid)
        if not instances:
            missing.append(f"series {series_uid}: no instances")
        stored.update(instances)
    absent = set(references.sop_instance_uids) - stored
    if absent and stored:  # with nothing stored, the series lines say it all
        missing.append(f"{len(absent)} of {len(references.sop_instance_uids)} referenced instances")
    return missing


def wait_for_images(
    client: PacsflowClient,
    request: RadiomicsRequest,
    workdir: Path,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once every image the segmentations refer to is stored; fail after the wait."""
    references = [references_of(ds) for ds in segmentations(client, request, workdir)]
    deadline = time.monotonic() + request.wait_seconds
    while True:
        missing = [line for refs in references for line in missing_images(client, refs)]
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise RadiomicsError(
                f"referenced images still missing after {request.wait_seconds:g} s: "
                + "; ".join(missing)
            )
        logger.info("waiting for referenced images: %s", "; ".join(missing))
        sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))


def image_volume(
    client: PacsflowClient, references: References, workdir: Path, resample: bool
) -> ImageVolume:
    """The one image series a segmentation refers to, as a volume."""
    if len(references.series_instance_uids) != 1:
        raise RadiomicsError(
            f"the segmentation refers to {len(references.series_instance_uids)} image series; "
            "radiomics needs exactly one"
        )
    (series_uid,) = references.series_instance_uids
    folder = workdir / series_uid
    paths = fetch_series(client, references.study_instance_uid, series_uid, folder)
    return build_volume([pydicom.dcmread(path) for path in paths], resample=resample)


def region_masks(segmentation: Dataset, volume: ImageVolume) -> list[RegionMask]:
    if segmentation.SOPClassUID == SegmentationStorage:
        return seg_masks(segmentation, volume)
    return rtstruct_masks(segmentation, volume)


def compute_and_store(
    client: PacsflowClient, request: RadiomicsRequest, workdir: Path
) -> list[dict[str, Any]]:
    """Features of every segment or ROI, one TID 1500 SR per segmentation, stored back.

    An SR whose SOP Instance UID is already stored (same inputs, same parameters) is not
    sent again: re-running changes nothing.
    """
    parameters = resolve_parameters(client, request.parameters, workdir / "parameters")
    digest = parameters_digest(parameters)
    results = []
    volumes: dict[tuple[str, ...], ImageVolume] = {}  # segmentations of one series share it
    for segmentation in segmentations(client, request, workdir / "segmentation"):
        references = references_of(segmentation)
        series = tuple(references.series_instance_uids)
        if series not in volumes:
            volumes[series] = image_volume(client, references, workdir / "images", request.resample)
        volume = volumes[series]
        regions = region_masks(segmentation, volume)
        features = [extract_features(volume, region, parameters) for region in regions]
        sr = measurement_report(volume, regions, features, request.parameters, digest)
        results.append(_store(client, sr, workdir))
    return results


def _store(client: PacsflowClient, sr: Dataset, workdir: Path) -> dict[str, Any]:
    summary = {
        "sop_instance_uid": str(sr.SOPInstanceUID),
        "series_instance_uid": str(sr.SeriesInstanceUID),
    }
    if str(sr.SOPInstanceUID) in client.series_instances(
        str(sr.StudyInstanceUID), str(sr.SeriesInstanceUID)
    ):
        logger.info("SR %s is stored already (same inputs and parameters)", sr.SOPInstanceUID)
        return {**summary, "stored": False}
    path = workdir / f"{sr.SOPInstanceUID}.dcm"
    sr.save_as(path, enforce_file_format=True)
    outcome = post_files(
        client.session, client.dicomweb_url, [(sr.SOPInstanceUID, path)], STOW_TIMEOUT
    )
    status = outcome[str(sr.SOPInstanceUID)]
    if status != StoreStatus.SUCCESS:
        raise RadiomicsError(f"storing SR {sr.SOPInstanceUID} failed: {describe(status)}")
    logger.info("stored SR %s in series %s", sr.SOPInstanceUID, sr.SeriesInstanceUID)
    return {**summary, "stored": True}
