"""What every DICOMweb service shares: the archive, the root URL, errors, media types."""

from __future__ import annotations

import json
from enum import StrEnum

from flask import Response, current_app, g, request

from pacsflow.archive.archive import Archive

ARCHIVE_EXTENSION = "pacsflow.archive"


class MediaType(StrEnum):
    DICOM = "application/dicom"
    DICOM_JSON = "application/dicom+json"
    JSON = "application/json"
    OCTET_STREAM = "application/octet-stream"
    MULTIPART_RELATED = "multipart/related"
    JPEG = "image/jpeg"
    PNG = "image/png"


class DicomwebError(Exception):
    """An HTTP error with a message that says what was wrong and what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(error: DicomwebError) -> Response:
    body = json.dumps({"error": error.message, "status": error.status})
    return Response(body, status=error.status, mimetype=MediaType.JSON)


def archive() -> Archive:
    return current_app.extensions[ARCHIVE_EXTENSION]  # type: ignore[no-any-return]


def dicomweb_root() -> str:
    """The absolute DICOMweb root URL of this request (its project's, under a project root),
    for RetrieveURL and BulkDataURI."""
    root = request.url_root.rstrip("/") + "/dicomweb"
    project = g.get("project_name")
    return root if project is None else f"{root}/projects/{project}"
