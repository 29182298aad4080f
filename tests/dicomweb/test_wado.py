"""WADO-RS over HTTP: instances byte for byte, metadata, frames and bulk data.

One app per database for the module, holding a catalogue of real files: the dcmqi CT/SEG
study as it is, and pydicom test files under fresh UIDs (several share theirs).
"""

from __future__ import annotations

import base64
import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from flask import Flask
from flask.testing import FlaskClient
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import pixel_array
from pydicom.uid import MPEG2MPML, ExplicitVRBigEndian, ExplicitVRLittleEndian, generate_uid
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from pacsflow.archive.archive import Archive
from pacsflow.archive.frames import little_endian_bytes, swap_words
from pacsflow.archive.ingest import Source, SourceKind
from pacsflow.settings import load_settings
from pacsflow.web.app import create_app
from pacsflow.web.dicomweb.common import ARCHIVE_EXTENSION
from pacsflow.web.dicomweb.multipart import parse_accept
from tests.archive.test_frames import single_frame_dataset, with_jpeg_icon
from tests.conftest import ADMIN_PASSWORD, SHARED_DATA, database
from tests.multipart import split_multipart

ROOT = "/dicomweb"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
DICOM = 'multipart/related; type="application/dicom"'
DICOM_PART = "application/dicom"
OCTETS = 'multipart/related; type="application/octet-stream"'
DCMQI = SHARED_DATA / "dcmqi-seg"

# catalogue key -> pydicom test file stored under new UIDs
PYDICOM_FILES = {
    "ct_small": "CT_small.dcm",
    "mr_big_endian": "MR_small_bigendian.dcm",
    "mr_multiframe": "emri_small.dcm",
    "rgb_multiframe": "SC_rgb_2frame.dcm",
    "ybr_422": "SC_ybr_full_422_uncompressed.dcm",
    "palette": "OBXXXX1A.dcm",
    "deflated": "image_dfl.dcm",
    "jpeg_baseline": "examples_ybr_color.dcm",
    "jpeg_lossless": "SC_rgb_jpeg_gdcm.dcm",
    "jpeg_nm": "JPEG-LL.dcm",
    "j2k": "emri_small_jpeg_2k_lossless.dcm",
    "jpeg_ls": "emri_small_jpeg_ls_lossless.dcm",
    "rle": "SC_rgb_rle_2frame.dcm",
    "enhanced_ct": "eCT_Supplemental.dcm",
    "sr": "reportsi.dcm",
}
# catalogue key -> file of the dcmqi study, stored unchanged (series 1 SEG, 2 CT, 100 SEG)
DCMQI_FILES = {
    "seg_liver": DCMQI / "liver.dcm",
    "ct_1": DCMQI / "ct-3slice" / "01.dcm",
    "ct_2": DCMQI / "ct-3slice" / "02.dcm",
    "ct_3": DCMQI / "ct-3slice" / "03.dcm",
    "seg_overlaps": DCMQI / "partial_overlaps.dcm",
}
NATIVE_KEYS = [
    "ct_1",
    "seg_liver",
    "mr_big_endian",
    "mr_multiframe",
    "rgb_multiframe",
    "ybr_422",
    "deflated",
]
COMPRESSED_KEYS = ["jpeg_baseline", "jpeg_lossless", "j2k", "jpeg_ls", "rle"]


@dataclass(frozen=True)
class Stored:
    """One stored instance and the exact bytes that were sent to the archive."""

    key: str
    data: bytes

    @cached_property
    def dataset(self) -> Dataset:
        return pydicom.dcmread(io.BytesIO(self.data))

    @property
    def study(self) -> str:
        return str(self.dataset.StudyInstanceUID)

    @property
    def series(self) -> str:
        return str(self.dataset.SeriesInstanceUID)

    @property
    def sop(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    @property
    def url(self) -> str:
        return f"{ROOT}/studies/{self.study}/series/{self.series}/instances/{self.sop}"

    @property
    def frames(self) -> int:
        return int(self.dataset.get("NumberOfFrames") or 1)


@dataclass(frozen=True)
class Wado:
    app: Flask
    client: FlaskClient
    stored: dict[str, Stored]

    def get(self, url: str, accept: str | None = None, **kwargs: Any) -> TestResponse:
        headers = dict(AUTH)
        if accept is not None:
            headers["Accept"] = accept
        return self.client.get(url, headers=headers, **kwargs)


def pydicom_file(name: str) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Path(get_testdata_file(name))  # type: ignore[arg-type]


def with_new_uids(path: Path, key: str) -> bytes:
    """The file rewritten by pydicom under UIDs of its own (pydicom's files share some)."""
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[key, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[key, "series"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[key, "instance"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds)
    return out.getvalue()


def monochrome1_copy() -> bytes:
    """CT_small as MONOCHROME1, to show inverted grey levels."""
    ds = pydicom.dcmread(io.BytesIO(with_new_uids(pydicom_file("CT_small.dcm"), "mono1")))
    ds.PhotometricInterpretation = "MONOCHROME1"
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


VIDEO_STREAM = [b"\x00\x00\x01\xb3" + bytes(range(200)), b"\x00\x00\x01\xb8" + bytes(100)]


def video_copy() -> bytes:
    """An MPEG-2 'video' of 30 frames: a bitstream in two fragments, no decoder here."""
    ds = pydicom.dcmread(io.BytesIO(with_new_uids(pydicom_file("SC_rgb.dcm"), "video")))
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.NumberOfFrames = 30
    ds.PixelData = encapsulate(VIDEO_STREAM, has_bot=False)
    ds["PixelData"].VR = "OB"
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def catalogue() -> dict[str, Stored]:
    entries = {key: Stored(key, path.read_bytes()) for key, path in DCMQI_FILES.items()}
    for key, name in PYDICOM_FILES.items():
        entries[key] = Stored(key, with_new_uids(pydicom_file(name), key))
    entries["ct_small_monochrome1"] = Stored("ct_small_monochrome1", monochrome1_copy())
    entries["video"] = Stored("video", video_copy())
    return entries


@contextmanager
def running_wado(kind: str, home: Path) -> Iterator[Wado]:
    """An app on a fresh archive in a ``kind`` (sqlite, postgresql) database with the catalogue."""
    with database(kind, home) as url:
        settings = load_settings(home=home, database_url=url, admin_password=ADMIN_PASSWORD)
        app = create_app(settings)
        archive: Archive = app.extensions[ARCHIVE_EXTENSION]
        archive.migrate()
        stored = catalogue()
        for entry in stored.values():
            archive.ingest_stream(io.BytesIO(entry.data), Source(SourceKind.IMPORT))
        yield Wado(app, app.test_client(), stored)
        archive.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def wado(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Wado]:
    with running_wado(request.param, tmp_path_factory.mktemp("wado")) as running:
        yield running


def multipart(response: TestResponse) -> list[tuple[dict[str, str], bytes]]:
    """(headers, payload) of each part of a multipart/related response."""
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return split_multipart(response.headers["Content-Type"], response.get_data())


def payloads(response: TestResponse) -> list[bytes]:
    return [payload for _, payload in multipart(response)]


def content_types(response: TestResponse) -> set[str]:
    return {headers["Content-Type"] for headers, _ in multipart(response)}


def error(response: TestResponse, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    message: str = response.get_json()["error"]
    return message


# -- Accept ------------------------------------------------------------------------------


def test_accept_ranges_are_parsed_in_preference_order() -> None:
    ranges = parse_accept(
        'multipart/related; type="image/jls";q=0.5, multipart/related; '
        'type="application/octet-stream"; transfer-syntax=*, text/plain;q=0, */*;q=0.1'
    )
    assert [(r.media_type, r.part_type, r.transfer_syntax, r.quality) for r in ranges] == [
        ("multipart/related", "application/octet-stream", "*", 1.0),
        ("multipart/related", "image/jls", None, 0.5),
        ("*/*", None, None, 0.1),
    ]
    assert parse_accept('multipart/related; type="a,b"')[0].part_type == "a,b"
    assert [r.media_type for r in parse_accept(None)] == [r.media_type for r in parse_accept("")]
    assert [r.media_type for r in parse_accept("")] == ["*/*"]


# -- retrieve ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept",
    [None, "*/*", DICOM, f"{DICOM}; transfer-syntax=*", 'multipart/related; type="*/*"'],
)
def test_every_instance_comes_back_byte_identical(wado: Wado, accept: str | None) -> None:
    for entry in wado.stored.values():
        response = wado.get(entry.url, accept)
        assert payloads(response) == [entry.data], entry.key
        syntax = entry.dataset.file_meta.TransferSyntaxUID
        assert content_types(response) == {f"application/dicom; transfer-syntax={syntax}"}
        assert 'type="application/dicom"' in response.headers["Content-Type"]


def test_series_and_study_come_back_in_series_and_instance_order(wado: Wado) -> None:
    s = wado.stored
    ct = s["ct_1"]
    series = wado.get(f"{ROOT}/studies/{ct.study}/series/{ct.series}", DICOM)
    assert payloads(series) == [s["ct_1"].data, s["ct_2"].data, s["ct_3"].data]
    study = wado.get(f"{ROOT}/studies/{ct.study}", f"{DICOM}; transfer-syntax=*")
    order = ["seg_liver", "ct_1", "ct_2", "ct_3", "seg_overlaps"]
    assert payloads(study) == [s[key].data for key in order]


@pytest.mark.parametrize("key", ["mr_big_endian", "ct_1", "deflated", "j2k", "rle", "sr"])
def test_explicit_little_endian_on_request(wado: Wado, key: str) -> None:
    entry = wado.stored[key]
    response = wado.get(entry.url, f"{DICOM}; transfer-syntax={ExplicitVRLittleEndian}")
    (part,) = payloads(response)
    assert content_types(response) == {f"{DICOM_PART}; transfer-syntax={ExplicitVRLittleEndian}"}
    converted = pydicom.dcmread(io.BytesIO(part))
    assert converted.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert converted.SOPInstanceUID == entry.sop
    if "PixelData" in entry.dataset:
        np.testing.assert_array_equal(converted.pixel_array, entry.dataset.pixel_array)


def test_explicit_little_endian_as_stored_is_not_rewritten(wado: Wado) -> None:
    entry = wado.stored["mr_multiframe"]
    response = wado.get(entry.url, f"{DICOM}; transfer-syntax={ExplicitVRLittleEndian}")
    assert payloads(response) == [entry.data]


@pytest.mark.parametrize(
    ("accept", "message"),
    [
        (f"{DICOM}; transfer-syntax=1.2.840.10008.1.2.4.50", "cannot send Implicit VR"),
        ("application/dicom", "multipart/related"),
        ("application/dicom+json", "multipart/related"),
        (f'{DICOM}; transfer-syntax="1.2.840.10008.1.2.4.50"; q=0', "multipart/related"),
    ],
)
def test_unsupported_accept_is_406(wado: Wado, accept: str, message: str) -> None:
    assert message in error(wado.get(wado.stored["ct_1"].url, accept), 406)


def test_preferred_acceptable_range_is_chosen(wado: Wado) -> None:
    entry = wado.stored["ct_1"]
    accept = f"{DICOM}; transfer-syntax=1.2.840.10008.1.2.4.50, {DICOM}; transfer-syntax=*; q=0.5"
    assert payloads(wado.get(entry.url, accept)) == [entry.data]


def test_unknown_uids_are_404(wado: Wado) -> None:
    ct = wado.stored["ct_1"]
    for url in (
        f"{ROOT}/studies/1.2.3",
        f"{ROOT}/studies/{ct.study}/series/1.2.3",
        f"{ROOT}/studies/{ct.study}/series/{ct.series}/instances/1.2.3",
        f"{ROOT}/studies/1.2.3/series/{ct.series}/instances/{ct.sop}",
        f"{ROOT}/studies/1.2.3/metadata",
    ):
        assert "nothing is stored at studies/" in error(wado.get(url), 404)


def test_retrieve_needs_a_login(wado: Wado) -> None:
    assert wado.client.get(wado.stored["ct_1"].url).status_code == 401


# -- metadata ------------------------------------------------------------------------------


def comparable(ours: dict[str, Any], reference: dict[str, Any]) -> None:
    """Our DICOM JSON against pydicom's: same elements, same values unless bulk data.

    Group lengths (gggg,0000; retired) are not compared; an empty sequence may have no Value.
    """
    ours = {k: v for k, v in ours.items() if not k.endswith("0000")}
    assert set(ours) == {k for k in reference if not k.endswith("0000")}
    for tag, element in ours.items():
        wanted = reference[tag]
        assert element["vr"] == wanted["vr"], tag
        if "BulkDataURI" in element:
            continue
        if element["vr"] == "SQ":
            items, wanted_items = element.get("Value", []), wanted.get("Value", [])
            assert len(items) == len(wanted_items), tag
            for mine, theirs in zip(items, wanted_items, strict=True):
                comparable(mine, theirs)
        else:
            assert element == wanted, tag


@pytest.mark.parametrize("accept", [None, "application/dicom+json", "application/json", "*/*"])
def test_metadata_is_pydicom_json_with_bulk_data_uris(wado: Wado, accept: str | None) -> None:
    for entry in wado.stored.values():
        response = wado.get(entry.url + "/metadata", accept)
        assert response.status_code == 200
        assert response.mimetype == "application/dicom+json"
        (metadata,) = response.get_json()
        comparable(metadata, entry.dataset.to_json_dict())
        if "PixelData" in entry.dataset:
            uri = metadata["7FE00010"]["BulkDataURI"]
            assert uri == f"http://localhost{entry.url}/bulkdata/7FE00010"


def test_series_and_study_metadata_are_in_order(wado: Wado) -> None:
    s = wado.stored
    ct = s["ct_1"]
    series = wado.get(f"{ROOT}/studies/{ct.study}/series/{ct.series}/metadata").get_json()
    assert [m["00080018"]["Value"][0] for m in series] == [s[f"ct_{i}"].sop for i in (1, 2, 3)]
    study = wado.get(f"{ROOT}/studies/{ct.study}/metadata").get_json()
    order = ["seg_liver", "ct_1", "ct_2", "ct_3", "seg_overlaps"]
    assert [m["00080018"]["Value"][0] for m in study] == [s[k].sop for k in order]


def test_metadata_in_xml_is_406(wado: Wado) -> None:
    url = wado.stored["ct_1"].url + "/metadata"
    accept = 'multipart/related; type="application/dicom+xml"'
    assert "application/dicom+json" in error(wado.get(url, accept), 406)


# -- frames --------------------------------------------------------------------------------


def expected_native(entry: Stored, index: int) -> np.ndarray:
    return pixel_array(entry.dataset, index=index, raw=True)


def decode_native(entry: Stored, frame: bytes) -> np.ndarray:
    return pixel_array(single_frame_dataset(entry.dataset, frame, compressed=False), raw=True)


def decode_compressed(entry: Stored, frame: bytes) -> np.ndarray:
    return pixel_array(single_frame_dataset(entry.dataset, frame, compressed=True))


NATIVE_FRAME = f"application/octet-stream; transfer-syntax={ExplicitVRLittleEndian}"


@pytest.mark.parametrize(
    "accept", [None, "*/*", OCTETS, f"{OCTETS}; transfer-syntax=*", 'multipart/related; type="*/*"']
)
@pytest.mark.parametrize("key", NATIVE_KEYS)
def test_native_frames_decode_to_pydicom_frames(wado: Wado, key: str, accept: str | None) -> None:
    entry = wado.stored[key]
    numbers = [n for n in (1, 3, 2) if n <= entry.frames]
    response = wado.get(f"{entry.url}/frames/{','.join(map(str, numbers))}", accept)
    assert content_types(response) == {NATIVE_FRAME}
    assert 'type="application/octet-stream"' in response.headers["Content-Type"]
    for number, frame in zip(numbers, payloads(response), strict=True):
        np.testing.assert_array_equal(
            decode_native(entry, frame), expected_native(entry, number - 1), err_msg=key
        )


def test_one_bit_frames_are_unpacked_from_bit_zero(wado: Wado) -> None:
    entry = wado.stored["seg_overlaps"]
    response = wado.get(f"{entry.url}/frames/7,2", OCTETS)
    for number, frame in zip((7, 2), payloads(response), strict=True):
        bits = np.unpackbits(np.frombuffer(frame, np.uint8), bitorder="little")
        expected = expected_native(entry, number - 1)
        np.testing.assert_array_equal(bits[: expected.size].reshape(expected.shape), expected)


def test_big_endian_frames_are_little_endian(wado: Wado) -> None:
    entry = wado.stored["mr_big_endian"]
    assert entry.dataset.file_meta.TransferSyntaxUID == ExplicitVRBigEndian
    (frame,) = payloads(wado.get(f"{entry.url}/frames/1", OCTETS))
    assert frame == little_endian_bytes(entry.dataset.pixel_array)


@pytest.mark.parametrize("key", COMPRESSED_KEYS)
def test_compressed_frames_come_in_their_stored_syntax(wado: Wado, key: str) -> None:
    entry = wado.stored[key]
    syntax = entry.dataset.file_meta.TransferSyntaxUID
    numbers = [n for n in (2, 1) if n <= entry.frames]
    url = f"{entry.url}/frames/{','.join(map(str, numbers))}"
    stored = list(generate_frames(entry.dataset.PixelData, number_of_frames=entry.frames))
    default = wado.get(url)
    (part_type,) = content_types(default)
    media_type = part_type.split(";")[0]
    assert part_type == f"{media_type}; transfer-syntax={syntax}"
    assert media_type in {"image/jpeg", "image/jls", "image/jp2", "image/dicom-rle"}
    assert payloads(default) == [stored[n - 1] for n in numbers]
    for accept in (
        f'multipart/related; type="{media_type}"',
        f'multipart/related; type="{media_type}"; transfer-syntax={syntax}',
        'multipart/related; type="image/*"',
        "*/*",
    ):
        assert payloads(wado.get(url, accept)) == [stored[n - 1] for n in numbers], accept
    for number, frame in zip(numbers, payloads(default), strict=True):
        expected = pixel_array(entry.dataset, index=number - 1)
        np.testing.assert_array_equal(decode_compressed(entry, frame), expected, err_msg=key)


@pytest.mark.parametrize("key", COMPRESSED_KEYS)
def test_compressed_frames_as_octets(wado: Wado, key: str) -> None:
    entry = wado.stored[key]
    syntax = entry.dataset.file_meta.TransferSyntaxUID
    stored = list(generate_frames(entry.dataset.PixelData, number_of_frames=entry.frames))
    as_stored = wado.get(f"{entry.url}/frames/1", f"{OCTETS}; transfer-syntax=*")
    assert content_types(as_stored) == {f"application/octet-stream; transfer-syntax={syntax}"}
    assert payloads(as_stored) == [stored[0]]
    for accept in (OCTETS, f"{OCTETS}; transfer-syntax={ExplicitVRLittleEndian}"):
        decoded = wado.get(f"{entry.url}/frames/1", accept)
        assert content_types(decoded) == {NATIVE_FRAME}
        expected = pixel_array(entry.dataset, index=0)
        assert payloads(decoded) == [little_endian_bytes(expected)], key


def test_a_video_is_sent_whole_as_one_part(wado: Wado) -> None:
    entry = wado.stored["video"]
    for url in (f"{entry.url}/frames/1,2", f"{entry.url}/bulkdata/7FE00010"):
        response = wado.get(url)
        assert content_types(response) == {f"video/mpeg; transfer-syntax={MPEG2MPML}"}
        assert payloads(response) == [b"".join(VIDEO_STREAM)]
    decoded = wado.get(f"{entry.url}/frames/1", OCTETS)
    assert "no decoder is installed" in error(decoded, 406)
    converted = wado.get(entry.url, f"{DICOM}; transfer-syntax={ExplicitVRLittleEndian}")
    assert "cannot send MPEG2" in error(converted, 406)


def test_rle_is_also_accepted_under_its_older_name(wado: Wado) -> None:
    entry = wado.stored["rle"]
    response = wado.get(f"{entry.url}/frames/1", 'multipart/related; type="image/x-dicom-rle"')
    assert content_types(response) == {"image/dicom-rle; transfer-syntax=1.2.840.10008.1.2.5"}


@pytest.mark.parametrize(
    ("key", "frames", "accept", "status", "message"),
    [
        ("mr_multiframe", "11", None, 404, "frame 11 does not exist"),
        ("j2k", "1,11", None, 404, "frame 11 does not exist"),
        ("mr_multiframe", "0", None, 400, "start at 1"),
        ("mr_multiframe", "1,a", None, 400, "frame list"),
        ("mr_multiframe", "1-3", None, 400, "frame list"),
        ("sr", "1", None, 404, "no pixel data"),
        ("ct_1", "1", 'multipart/related; type="image/jpeg"', 406, "uncompressed"),
        ("ct_1", "1", f"{OCTETS}; transfer-syntax=1.2.840.10008.1.2.4.50", 406, "uncompressed"),
        ("jpeg_baseline", "1", 'multipart/related; type="image/jp2"', 406, "JPEG Baseline"),
        ("j2k", "1", f"{OCTETS}; transfer-syntax=1.2.840.10008.1.2.4.80", 406, "image/jp2"),
        ("ct_1", "1", "application/octet-stream", 406, "octet-stream"),
    ],
)
def test_frame_errors(
    wado: Wado, key: str, frames: str, accept: str | None, status: int, message: str
) -> None:
    entry = wado.stored[key]
    assert message in error(wado.get(f"{entry.url}/frames/{frames}", accept), status)


# -- bulk data -----------------------------------------------------------------------------


def bulk_uris(metadata: dict[str, Any]) -> Iterator[str]:
    for element in metadata.values():
        if "BulkDataURI" in element:
            yield element["BulkDataURI"]
        for item in element.get("Value", []) if element["vr"] == "SQ" else []:
            yield from bulk_uris(item)


@pytest.mark.parametrize("key", [*NATIVE_KEYS, "palette", "enhanced_ct", "jpeg_lossless"])
def test_every_bulk_data_uri_of_the_metadata_answers(wado: Wado, key: str) -> None:
    entry = wado.stored[key]
    (metadata,) = wado.get(entry.url + "/metadata").get_json()
    uris = list(bulk_uris(metadata))
    assert uris
    for uri in uris:
        response = wado.get(uri.removeprefix("http://localhost"))
        assert response.status_code == 200, (uri, response.get_data()[:300])
        assert payloads(response)


@pytest.mark.parametrize("key", ["ct_1", "mr_big_endian", "seg_liver", "deflated", "palette"])
def test_native_pixel_data_is_its_whole_value_in_little_endian(wado: Wado, key: str) -> None:
    entry = wado.stored[key]
    (part,) = payloads(wado.get(f"{entry.url}/bulkdata/7FE00010"))
    expected = entry.dataset.PixelData
    if entry.dataset.file_meta.TransferSyntaxUID == ExplicitVRBigEndian:
        expected = swap_words(expected, entry.dataset.BitsAllocated // 8)
    assert part == expected


def test_big_endian_lut_data_is_little_endian(wado: Wado) -> None:
    entry = wado.stored["palette"]
    (part,) = payloads(wado.get(f"{entry.url}/bulkdata/00281201"))
    assert part == entry.dataset.RedPaletteColorLookupTableData


def test_encapsulated_pixel_data_is_its_frames(wado: Wado) -> None:
    entry = wado.stored["jpeg_baseline"]
    response = wado.get(f"{entry.url}/bulkdata/7FE00010")
    stored = list(generate_frames(entry.dataset.PixelData, number_of_frames=entry.frames))
    assert payloads(response) == stored
    assert content_types(response) == {"image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50"}


@pytest.mark.parametrize(
    ("path", "message"),
    [("00281201", "no element"), ("7FE0001", "8-digit hex"), ("00081140/0/00081155", "no item")],
)
def test_missing_bulk_data_is_404(wado: Wado, path: str, message: str) -> None:
    url = f"{wado.stored['ct_1'].url}/bulkdata/{path}"
    assert message in error(wado.get(url), 404)


def test_nested_compressed_bulk_data_comes_as_its_frames(wado: Wado) -> None:
    data, frame = with_jpeg_icon()
    archive: Archive = wado.app.extensions[ARCHIVE_EXTENSION]
    archive.ingest_stream(io.BytesIO(data), Source(SourceKind.IMPORT))
    icon = Stored("icon", data)
    (metadata,) = wado.get(icon.url + "/metadata").get_json()
    uri = metadata["00880200"]["Value"][0]["7FE00010"]["BulkDataURI"]
    assert uri.endswith("/bulkdata/00880200/0/7FE00010")
    response = wado.get(uri.removeprefix("http://localhost"))
    assert payloads(response) == [frame]
    assert content_types(response) == {"image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50"}
    decoded = wado.get(uri.removeprefix("http://localhost"), OCTETS)
    assert "only sent as it is stored" in error(decoded, 406)


def test_bulk_data_as_jpeg_is_406(wado: Wado) -> None:
    url = f"{wado.stored['palette'].url}/bulkdata/00281201"
    assert "octet-stream" in error(wado.get(url, 'multipart/related; type="image/jpeg"'), 406)


# -- a real client -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dicomweb_client(wado: Wado) -> Iterator[DICOMwebClient]:
    server = make_server("127.0.0.1", 0, wado.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = DICOMwebClient(url=f"http://127.0.0.1:{server.server_port}{ROOT}")
        client._session.auth = ("admin", ADMIN_PASSWORD)
        yield client
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.mark.parametrize("key", ["jpeg_baseline", "j2k", "mr_multiframe", "seg_liver"])
def test_dicomweb_client_retrieves_frames_with_its_defaults(
    dicomweb_client: DICOMwebClient, wado: Wado, key: str
) -> None:
    entry = wado.stored[key]
    frames = dicomweb_client.retrieve_instance_frames(entry.study, entry.series, entry.sop, [1, 2])
    compressed = entry.dataset.file_meta.TransferSyntaxUID.is_compressed
    for index, frame in enumerate(frames):
        if compressed:
            decoded = decode_compressed(entry, bytes(frame))
        else:
            decoded = decode_native(entry, bytes(frame))
        expected = pixel_array(entry.dataset, index=index, raw=not compressed)
        np.testing.assert_array_equal(decoded, expected)


def test_dicomweb_client_retrieves_instances_and_metadata(
    dicomweb_client: DICOMwebClient, wado: Wado
) -> None:
    ct = wado.stored["ct_1"]
    instance = dicomweb_client.retrieve_instance(ct.study, ct.series, ct.sop)
    assert instance.SOPInstanceUID == ct.sop
    np.testing.assert_array_equal(instance.pixel_array, ct.dataset.pixel_array)
    series = dicomweb_client.retrieve_series(ct.study, ct.series)
    assert [ds.SOPInstanceUID for ds in series] == [wado.stored[f"ct_{i}"].sop for i in (1, 2, 3)]
    metadata = dicomweb_client.retrieve_series_metadata(ct.study, ct.series)
    assert len(metadata) == 3
    uri = metadata[0]["7FE00010"]["BulkDataURI"]
    # dicomweb-client sends "Host: 127.0.0.1" without the port, so the server's absolute
    # URIs lack it too; follow the path under the client's own base URL.
    path = uri.split(ROOT, 1)[1]
    (value,) = dicomweb_client.retrieve_bulkdata(dicomweb_client.base_url + path)
    assert value == ct.dataset.PixelData
