"""STOW-RS (PS3.18 10.5): multipart/related application/dicom, stored part by part.

The request body is parsed as it streams in; each part goes straight into a staging file
and through the archive's ingest when it ends, so the body is never held in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, BinaryIO

from flask import Blueprint, Response, request
from flask_login import current_user
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser
from werkzeug.http import parse_options_header

from pacsflow.archive.archive import Archive
from pacsflow.archive.dicomjson import dumps, instance_path
from pacsflow.archive.ingest import IngestError, Source, SourceKind, StudyCheck
from pacsflow.dicom.status import StoreStatus
from pacsflow.web.access import store_target, writable_projects
from pacsflow.web.audit import note_studies
from pacsflow.web.dicomweb.common import DicomwebError, MediaType, archive, dicomweb_root
from pacsflow.web.security import Permission, require

logger = logging.getLogger(__name__)

READ_CHUNK = 1024 * 1024
# Parts ingested together: one flush and one transaction per batch, and a bound on how
# many received parts wait in staging.
INGEST_BATCH = 32


@dataclass
class PartOutcome:
    """What became of one part: stored, or failed with a DICOM status and a reason."""

    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    failure: StoreStatus | None = None
    reason: str = ""


@dataclass
class _Part:
    staged: Path
    file: BinaryIO
    headers: dict[str, str] = field(default_factory=dict)
    size: int = 0
    too_large: bool = False


class StowReceiver:
    """Feeds a multipart body through a streaming parser into the archive, part by part."""

    def __init__(
        self,
        archive: Archive,
        source: Source,
        boundary: str,
        study_uid: str,
        may_store: StudyCheck | None = None,
    ) -> None:
        self.archive = archive
        self.source = source
        self.study_uid = study_uid
        self.may_store = may_store
        self.limit = int(archive.settings.max_object_size)
        self.outcomes: list[PartOutcome] = []
        self._pending: list[tuple[int, Path]] = []  # (outcome slot, staged file)
        self._part: _Part | None = None
        self._header_field = b""
        self._header_value = b""
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_part_data": self._on_data,
                "on_part_end": self._end,
            },
        )

    def feed(self, stream: BinaryIO) -> None:
        """Consume the whole body; a malformed or cut body fails only the part it cut."""
        try:
            while chunk := stream.read(READ_CHUNK):
                self._parser.write(chunk)
            self._parser.finalize()
        except MultipartParseError as exc:
            self._abandon(f"the multipart body is malformed: {exc}")
        else:
            self._abandon("the request body ended inside a part")
        finally:
            self._flush()

    def _begin(self) -> None:
        staged = self.archive.storage.staging_file()
        self._part = _Part(staged, open(staged, "wb"))  # noqa: SIM115 - closed in _end

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        assert self._part is not None
        name = self._header_field.decode("latin-1").strip().lower()
        self._part.headers[name] = self._header_value.decode("latin-1").strip()
        self._header_field = self._header_value = b""

    def _on_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        assert part is not None
        part.size += end - start
        if part.too_large:
            return
        if part.size > self.limit:
            part.too_large = True  # keep reading the body, stop keeping this part
            return
        part.file.write(data[start:end])

    def _end(self) -> None:
        part, self._part = self._part, None
        assert part is not None
        part.file.close()
        refusal = self._refusal(part)
        self.outcomes.append(refusal or PartOutcome())
        if refusal is None:
            self._pending.append((len(self.outcomes) - 1, part.staged))
            if len(self._pending) >= INGEST_BATCH:
                self._flush()

    def _refusal(self, part: _Part) -> PartOutcome | None:
        """Why a part cannot even be offered to ingest, if it cannot."""
        content_type, _ = parse_options_header(part.headers.get("content-type", MediaType.DICOM))
        if part.too_large:
            part.staged.unlink(missing_ok=True)
            return PartOutcome(
                failure=StoreStatus.OUT_OF_RESOURCES,
                reason=f"part exceeds PACSFLOW_MAX_OBJECT_SIZE ({self.limit} bytes)",
            )
        if content_type != MediaType.DICOM:
            part.staged.unlink(missing_ok=True)
            return PartOutcome(
                failure=StoreStatus.CANNOT_UNDERSTAND,
                reason=f"part has Content-Type {content_type!r}; only application/dicom is stored",
            )
        return None

    def _flush(self) -> None:
        if not self._pending:
            return
        slots, staged = zip(*self._pending, strict=True)
        self._pending = []
        results = self.archive.ingest_many(
            list(staged), self.source, self.study_uid, self.may_store
        )
        for slot, result in zip(slots, results, strict=True):
            if isinstance(result, IngestError):
                self.outcomes[slot] = PartOutcome(
                    result.sop_class_uid,
                    result.sop_instance_uid,
                    failure=result.status,
                    reason=str(result),
                )
            else:
                self.outcomes[slot] = PartOutcome(
                    result.sop_class_uid,
                    result.sop_instance_uid,
                    result.study_instance_uid,
                    result.series_instance_uid,
                )

    def _abandon(self, reason: str) -> None:
        """Drop a part that never ended: nothing partial is kept."""
        part, self._part = self._part, None
        if part is None:
            return
        part.file.close()
        part.staged.unlink(missing_ok=True)
        self.outcomes.append(PartOutcome(failure=StoreStatus.CANNOT_UNDERSTAND, reason=reason))


def response_body(outcomes: list[PartOutcome], root: str) -> dict[str, Any]:
    """The Store Instances Response Module (PS3.18 Annex I) as DICOM JSON."""
    stored, failed = [], []
    for outcome in outcomes:
        item: dict[str, Any] = {}
        if outcome.sop_class_uid:
            item["00081150"] = {"vr": "UI", "Value": [outcome.sop_class_uid]}
        if outcome.sop_instance_uid:
            item["00081155"] = {"vr": "UI", "Value": [outcome.sop_instance_uid]}
        if outcome.failure is None:
            path = instance_path(
                outcome.study_instance_uid,
                outcome.series_instance_uid,
                outcome.sop_instance_uid,
            )
            item["00081190"] = {"vr": "UR", "Value": [f"{root}/{path}"]}
            stored.append(item)
        else:
            item["00081197"] = {"vr": "US", "Value": [int(outcome.failure)]}
            failed.append(item)
    body: dict[str, Any] = {}
    studies = {o.study_instance_uid for o in outcomes if o.failure is None}
    if len(studies) == 1:
        body["00081190"] = {"vr": "UR", "Value": [f"{root}/studies/{studies.pop()}"]}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": stored}
    return body


def http_status(outcomes: list[PartOutcome]) -> HTTPStatus:
    stored = sum(1 for o in outcomes if o.failure is None)
    if stored == len(outcomes) and stored:
        return HTTPStatus.OK
    if stored:
        return HTTPStatus.ACCEPTED
    if all(o.failure == StoreStatus.CANNOT_UNDERSTAND and not o.sop_instance_uid for o in outcomes):
        return HTTPStatus.BAD_REQUEST  # nothing in the body could be read as DICOM
    return HTTPStatus.CONFLICT


def _boundary() -> str:
    media_type, params = parse_options_header(request.headers.get("Content-Type", ""))
    if media_type != MediaType.MULTIPART_RELATED:
        raise DicomwebError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {media_type or '(none)'!r} is not supported; send "
            'multipart/related; type="application/dicom"',
        )
    part_type = params.get("type", MediaType.DICOM)
    if part_type != MediaType.DICOM:
        raise DicomwebError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"multipart/related type {part_type!r} is not supported; only application/dicom",
        )
    boundary = params.get("boundary")
    if not boundary:
        raise DicomwebError(HTTPStatus.BAD_REQUEST, "multipart/related needs a boundary")
    return boundary


@require(Permission.WRITE)
def store_instances(study: str = "") -> Response:
    if writable_projects() == frozenset():
        raise DicomwebError(
            HTTPStatus.FORBIDDEN,
            "storing takes the Researcher or Manager role in a project; ask its Manager",
        )
    project, may_store = store_target()
    source = Source(
        SourceKind.STOW,
        username=current_user.username,
        peer=request.remote_addr or "",
        project=project,
    )
    receiver = StowReceiver(archive(), source, _boundary(), study, may_store)
    receiver.feed(request.stream)  # type: ignore[arg-type]
    outcomes = receiver.outcomes
    note_studies(o.study_instance_uid for o in outcomes if o.failure is None)
    if not outcomes:
        raise DicomwebError(HTTPStatus.BAD_REQUEST, "the request body holds no parts")
    response = Response(
        dumps(response_body(outcomes, dicomweb_root())),
        status=http_status(outcomes),
        mimetype=MediaType.DICOM_JSON,
    )
    for outcome in outcomes:
        if outcome.failure is not None:
            uid = outcome.sop_instance_uid or "unidentified part"
            response.headers.add("Warning", f'299 pacsflow "{uid}: {outcome.reason}"')
    stored = sum(1 for o in outcomes if o.failure is None)
    logger.info("STOW: %d of %d instances stored", stored, len(outcomes))
    return response


def register(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/studies", view_func=store_instances, methods=["POST"])
    blueprint.add_url_rule(
        "/studies/<study>", view_func=store_instances, methods=["POST"], endpoint="store_study"
    )
