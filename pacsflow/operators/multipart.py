"""multipart/related bodies (RFC 2387, PS3.18 8.6.1.2) streamed from and to files.

Instances can be gigabytes, so neither direction holds a body in memory: a WADO-RS part is
copied to a file as it arrives, and a STOW-RS body is read from the files as it is sent.
The standard library's ``email`` parser keeps whole payloads in memory, hence this module.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Sequence
from email.message import Message
from pathlib import Path
from typing import BinaryIO

CRLF = b"\r\n"
READ_CHUNK = 1024 * 1024
DICOM = "application/dicom"


class MultipartError(ValueError):
    """A body is not the multipart/related message it claims to be."""


def boundary_of(content_type: str) -> str:
    """The boundary of a multipart/related Content-Type, quoted or not."""
    header = Message()
    header["Content-Type"] = content_type
    if header.get_content_type() != "multipart/related":
        raise MultipartError(f"Content-Type {content_type!r} is not multipart/related")
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise MultipartError(f"Content-Type {content_type!r} has no boundary parameter")
    return boundary


def copy_single_part(chunks: Iterable[bytes], boundary: str, out: BinaryIO) -> dict[str, str]:
    """Write the payload of a body's only part to ``out``; return its headers (lower-case names).

    Memory stays at one chunk: payload bytes are written as soon as they cannot be the start
    of the closing delimiter. A body with more than one part is refused.
    """
    reader = _Reader(iter(chunks))
    delimiter = b"--" + boundary.encode("ascii")
    reader.skip_past(delimiter + CRLF, "the first boundary")
    headers = _parse_headers(reader.read_until(CRLF + CRLF, "the part headers"))
    reader.copy_until(CRLF + delimiter, out)
    if reader.read_exactly(2) != b"--":
        raise MultipartError("the body holds more than one part; expected exactly one")
    return headers


class _Reader:
    """A byte stream over chunks with just enough look-ahead to find delimiters."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()

    def _fill(self, looking_for: str) -> None:
        chunk = next(self._chunks, None)
        if chunk is None:
            raise MultipartError(f"the body ends before {looking_for}")
        self._buffer += chunk

    def skip_past(self, marker: bytes, what: str) -> None:
        while (index := self._buffer.find(marker)) < 0:
            self._fill(what)
        del self._buffer[: index + len(marker)]

    def read_until(self, marker: bytes, what: str) -> bytes:
        while (index := self._buffer.find(marker)) < 0:
            self._fill(what)
        data = bytes(self._buffer[:index])
        del self._buffer[: index + len(marker)]
        return data

    def copy_until(self, marker: bytes, out: BinaryIO) -> None:
        keep = len(marker) - 1  # a marker split across chunks must stay findable
        while (index := self._buffer.find(marker)) < 0:
            if len(self._buffer) > keep:
                out.write(self._buffer[:-keep])
                del self._buffer[:-keep]
            self._fill("the closing boundary")
        out.write(self._buffer[:index])
        del self._buffer[: index + len(marker)]

    def read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill("the end of the last boundary")
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


def _parse_headers(block: bytes) -> dict[str, str]:
    headers = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


class MultipartBody:
    """A multipart/related body of application/dicom parts, one per file, read while sent.

    Its length is known up front, so requests sends it with Content-Length rather than
    chunked transfer encoding (which some DICOMweb servers refuse); it can be iterated more
    than once, so a request can be sent again.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.boundary = f"pacsflow-{secrets.token_hex(16)}"

    @property
    def content_type(self) -> str:
        return f'multipart/related; type="{DICOM}"; boundary={self.boundary}'

    def _part_header(self) -> bytes:
        return (
            b"--"
            + self.boundary.encode("ascii")
            + CRLF
            + f"Content-Type: {DICOM}".encode()
            + CRLF
            + CRLF
        )

    def _closing(self) -> bytes:
        return b"--" + self.boundary.encode("ascii") + b"--" + CRLF

    def __len__(self) -> int:
        per_part = len(self._part_header()) + len(CRLF)
        return sum(per_part + path.stat().st_size for path in self.paths) + len(self._closing())

    def __iter__(self) -> Iterator[bytes]:
        for path in self.paths:
            yield self._part_header()
            with open(path, "rb") as f:
                while chunk := f.read(READ_CHUNK):
                    yield chunk
            yield CRLF
        yield self._closing()


__all__ = ["MultipartBody", "MultipartError", "boundary_of", "copy_single_part"]
