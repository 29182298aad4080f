"""multipart/related bodies in tests: reading WADO-RS responses, writing STOW-RS requests."""

from __future__ import annotations


def split_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """(headers, payload) of each part of a multipart/related body."""
    media_type, _, params = content_type.partition(";")
    assert media_type == "multipart/related", content_type
    boundary = params.split("boundary=")[1].split(";")[0].strip('"').encode()
    assert body.startswith(b"--" + boundary + b"\r\n") and body.endswith(b"--\r\n")
    result = []
    for chunk in body.split(b"\r\n--" + boundary)[:-1]:
        head, _, payload = chunk.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines if ": " in line)
        result.append((headers, payload))
    return result


def multipart_body(*parts: bytes, boundary: str, part_type: str = "application/dicom") -> bytes:
    """A multipart/related body of ``parts`` (a STOW-RS request)."""
    body = b"".join(
        f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n"
        for part in parts
    )
    return body + f"--{boundary}--\r\n".encode()
