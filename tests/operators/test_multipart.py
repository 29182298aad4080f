"""Streaming multipart: parts read back whatever the chunking, bodies as long as they say."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacsflow.operators.multipart import (
    MultipartBody,
    MultipartError,
    boundary_of,
    copy_single_part,
)
from pacsflow.web.dicomweb.multipart import Part, multipart_body
from tests.multipart import split_multipart

# Bytes that look like delimiters without being one, and a payload longer than a chunk.
PAYLOAD = b"\r\n--bound\r\n--boundarx" + random.Random(0).randbytes(3000) + b"\r\n"


def server_body(*payloads: bytes) -> bytes:
    """A body as pacsflow's WADO-RS builds it."""
    parts = [Part("application/dicom", lambda p=p: [p]) for p in payloads]
    return b"".join(multipart_body(parts, "boundary"))


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize("size", [1, 7, 16, 1000, 1 << 20])
def test_part_read_back_whatever_the_chunks(size: int) -> None:
    out = io.BytesIO()
    headers = copy_single_part(chunked(server_body(PAYLOAD), size), "boundary", out)
    assert out.getvalue() == PAYLOAD
    assert headers == {"content-type": "application/dicom"}


def test_preamble_and_epilogue_are_ignored() -> None:
    body = b"preamble\r\n" + server_body(b"x") + b"epilogue"
    out = io.BytesIO()
    copy_single_part([body], "boundary", out)
    assert out.getvalue() == b"x"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (server_body(b"a", b"b"), "more than one part"),
        (server_body(b"a")[:-10], "ends before the closing boundary"),
        (b"--boundary\r\nContent-Type: application/dicom\r\n", "ends before the part headers"),
        (b"no boundary at all", "ends before the first boundary"),
    ],
)
def test_malformed_body(body: bytes, problem: str) -> None:
    with pytest.raises(MultipartError, match=problem):
        copy_single_part([body], "boundary", io.BytesIO())


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ('multipart/related; type="application/dicom"; boundary=abc', "abc"),
        ('Multipart/Related; boundary="a b:c"; type="application/dicom"', "a b:c"),
    ],
)
def test_boundary_of(content_type: str, boundary: str) -> None:
    assert boundary_of(content_type) == boundary


@pytest.mark.parametrize(
    ("content_type", "problem"),
    [("application/dicom", "not multipart/related"), ("multipart/related", "no boundary")],
)
def test_boundary_of_refuses(content_type: str, problem: str) -> None:
    with pytest.raises(MultipartError, match=problem):
        boundary_of(content_type)


def test_body_from_files(tmp_path: Path) -> None:
    payloads = [PAYLOAD, b"", b"odd"]
    paths = []
    for index, payload in enumerate(payloads):
        paths.append(tmp_path / f"{index}.dcm")
        paths[-1].write_bytes(payload)
    body = MultipartBody(paths)
    data = b"".join(body)
    assert len(body) == len(data)
    assert b"".join(body) == data, "a body can be sent again"
    parts = split_multipart(body.content_type, data)
    assert [payload for _, payload in parts] == payloads
    assert all(headers == {"Content-Type": "application/dicom"} for headers, _ in parts)
