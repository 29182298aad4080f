"""dicomweb-client, a real client, against a running pacsflow: every storable file of the
corpus is stored, found at all three QIDO levels, and retrieved byte for byte."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.dataset import Dataset

from tests.archive.test_frames import single_frame_dataset
from tests.dicomweb.corpus import Sample, storable_rounds
from tests.live_server import LiveServer

STOW_BATCH = 25


@pytest.fixture
def client(live_server: LiveServer) -> DICOMwebClient:
    return DICOMwebClient(url=live_server.dicomweb, session=live_server.session())


def batches(samples: list[Sample]) -> Iterator[list[Sample]]:
    for start in range(0, len(samples), STOW_BATCH):
        yield samples[start : start + STOW_BATCH]


def strip_bulk(ours: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """pydicom's JSON with the elements we serve as bulk data taken out, recursively."""
    result = {}
    for tag, element in reference.items():
        mine = ours.get(tag, {})
        if "BulkDataURI" in mine:
            continue
        if element.get("vr") == "SQ" and "Value" in element and "Value" in mine:
            element = {
                **element,
                "Value": [
                    strip_bulk(a, b) for a, b in zip(mine["Value"], element["Value"], strict=True)
                ],
            }
        result[tag] = element
    return result


def drop_bulk(ours: dict[str, Any]) -> dict[str, Any]:
    """Our JSON without its BulkDataURI elements, recursively."""
    result = {}
    for tag, element in ours.items():
        if "BulkDataURI" in element:
            continue
        if element.get("vr") == "SQ" and "Value" in element:
            element = {**element, "Value": [drop_bulk(item) for item in element["Value"]]}
        result[tag] = element
    return result


def test_store_query_retrieve_corpus(client: DICOMwebClient, live_server: LiveServer) -> None:
    rounds = storable_rounds()
    assert sum(len(r) for r in rounds) > 100, "the corpus should hold the whole test data"
    for samples in rounds:
        for batch in batches(samples):
            response = client.store_instances([s.dataset for s in batch])
            stored = {str(item.ReferencedSOPInstanceUID) for item in response.ReferencedSOPSequence}
            assert "FailedSOPSequence" not in response, [s.name for s in batch]
            assert stored == {str(s.dataset.SOPInstanceUID) for s in batch}
        for sample in samples:
            check_qido(client, sample)
            check_wado(client, sample)
        for study in {str(s.dataset.StudyInstanceUID) for s in samples}:
            client.delete_study(study)
        assert client.search_for_studies() == []


def check_qido(client: DICOMwebClient, sample: Sample) -> None:
    ds = sample.dataset
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    studies = client.search_for_studies(search_filters={"StudyInstanceUID": study})
    assert [s["0020000D"]["Value"][0] for s in studies] == [study], sample.name
    found = client.search_for_series(study, search_filters={"SeriesInstanceUID": series})
    assert [s["0020000E"]["Value"][0] for s in found] == [series], sample.name
    uid_list = f"{sop},1.2.3.4.5.6.7.8.9"
    instances = client.search_for_instances(
        study, series, search_filters={"SOPInstanceUID": uid_list}
    )
    assert [i["00080018"]["Value"][0] for i in instances] == [sop], sample.name
    patient_id = str(ds.get("PatientID", "") or "")
    if patient_id:
        wildcard = patient_id[:-1] + "?" if len(patient_id) > 1 else "*"
        hits = client.search_for_studies(search_filters={"PatientID": wildcard})
        assert study in {h["0020000D"]["Value"][0] for h in hits}, sample.name
    study_date = str(ds.get("StudyDate", "") or "")
    if len(study_date) == 8:
        hits = client.search_for_studies(search_filters={"StudyDate": f"{study_date}-{study_date}"})
        assert study in {h["0020000D"]["Value"][0] for h in hits}, sample.name
    family = str(ds.get("PatientName", "") or "").split("^")[0]
    if family:
        hits = client.search_for_studies(
            search_filters={"PatientName": family.lower()[:3]}, fuzzymatching=True
        )
        assert study in {h["0020000D"]["Value"][0] for h in hits}, sample.name


def check_wado(client: DICOMwebClient, sample: Sample) -> None:
    ds = sample.dataset
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    url = f"{client.base_url}/studies/{study}/series/{series}/instances/{sop}"
    response = client._http_get(  # the client's own multipart handling, for the raw bytes
        url, headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    )
    parts = list(client._decode_multipart_message(response, stream=False))
    assert parts == [sample.encoded], f"{sample.name}: retrieved bytes differ from stored"

    metadata = client.retrieve_instance_metadata(study, series, sop)
    reference = sample.sent.to_json_dict()
    assert drop_bulk(metadata) == strip_bulk(metadata, reference), sample.name
    if "PixelData" in ds:
        check_frame(client, sample)
        check_rendered(client, sample)


def check_frame(client: DICOMwebClient, sample: Sample) -> None:
    ds = sample.dataset
    expected = first_frame_pixels(ds)
    if expected is None:
        return  # pydicom cannot decode it either; bitstreams are checked in test_wado
    frames = client.retrieve_instance_frames(
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        ds.SOPInstanceUID,
        frame_numbers=[1],
        media_types=("*/*",),
    )
    assert len(frames) == 1, sample.name
    compressed = ds.file_meta.TransferSyntaxUID.is_compressed
    decoded = single_frame_dataset(ds, bytes(frames[0]), compressed).pixel_array
    np.testing.assert_array_equal(decoded, expected, err_msg=sample.name)


def first_frame_pixels(ds: Dataset) -> np.ndarray | None:
    try:
        pixels = ds.pixel_array
    except Exception:
        return None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return pixels[0] if frames > 1 else pixels


def check_rendered(client: DICOMwebClient, sample: Sample) -> None:
    ds = sample.dataset
    if first_frame_pixels(ds) is None:
        return
    image_bytes = client.retrieve_instance_rendered(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, media_types=("image/jpeg",)
    )
    image = Image.open(io.BytesIO(image_bytes))
    assert image.format == "JPEG", sample.name
    assert image.size == (ds.Columns, ds.Rows), sample.name
