"""A study or series as one zip of its Part-10 files, exactly as stored, for the browser.

Scripts use WADO-RS; people want a file they can unpack. The zip is streamed while it is
written (entries stored, not compressed: pixel data rarely shrinks and the bytes stay the
archive's own), so a large study starts downloading at once and never sits in memory.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence

from flask import Blueprint, Response, jsonify, stream_with_context
from flask.typing import ResponseReturnValue

from pacsflow.archive.models import Instance, Series
from pacsflow.archive.storage import Storage
from pacsflow.web.dicomweb.common import archive
from pacsflow.web.dicomweb.wado import run_scoped
from pacsflow.web.security import Permission, require

CHUNK = 1 << 20
ZIP_COLUMNS = (Series.series_instance_uid, Instance.sop_instance_uid, Instance.storage_key)


class _Sink:
    """A write-only file for ZipFile whose bytes are taken out as they come."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered beyond what take() hands out."""

    def close(self) -> None:
        """Nothing to release."""

    def take(self) -> bytes:
        taken, self._chunks = b"".join(self._chunks), []
        return taken


def zip_chunks(storage: Storage, members: Sequence[tuple[str, str]]) -> Iterator[bytes]:
    """The zip of ``members`` (name in the zip, storage key), in chunks as it is written."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive_zip:
        for name, key in members:
            with storage.open(key) as source, archive_zip.open(name, "w", force_zip64=True) as out:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()


def _download(study: str, series: str | None) -> ResponseReturnValue:
    rows = run_scoped(ZIP_COLUMNS, study, series, None)
    if not rows:
        scope = f"series {series}" if series else f"study {study}"
        return jsonify({"error": f"no {scope} in the archive"}), 404
    members = [
        (f"{row.series_instance_uid}/{row.sop_instance_uid}.dcm", row.storage_key) for row in rows
    ]
    return Response(
        stream_with_context(zip_chunks(archive().storage, members)),
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{series or study}.zip"'},
    )


@require(Permission.READ)
def download_study(study: str) -> ResponseReturnValue:
    return _download(study, None)


@require(Permission.READ)
def download_series(study: str, series: str) -> ResponseReturnValue:
    return _download(study, series)


def register(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/studies/<study>/archive", view_func=download_study)
    blueprint.add_url_rule("/studies/<study>/series/<series>/archive", view_func=download_series)
