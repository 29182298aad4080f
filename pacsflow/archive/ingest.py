"""The one ingest function every way in uses: STOW, the DICOM receiver, import, workflows.

An object arrives as a staged local file. Ingest parses only the header, validates it,
dedupes by SOP Instance UID, makes the file durable, then indexes it and records an
arrival in one transaction. It returns only once the object is durable, and on any failure
leaves nothing behind.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from pacsflow.archive.attributes import InstanceAttributes
from pacsflow.archive.delete import remove_instances
from pacsflow.archive.dicomjson import dicom_json, dumps, instance_path
from pacsflow.archive.models import Arrival, Instance, Patient, Series, Study, upsert
from pacsflow.archive.storage import object_key
from pacsflow.dicom.status import StoreStatus
from pacsflow.dicom.uid import InvalidUIDError, check_uid

if TYPE_CHECKING:
    from pacsflow.archive.archive import Archive

logger = logging.getLogger(__name__)

DEFER_SIZE = 256 * 1024  # values above this stay on disk while parsing
IMPLEMENTATION_CLASS_UID = generate_uid(entropy_srcs=["pacsflow implementation"])
IMPLEMENTATION_VERSION_NAME = "PACSFLOW_010"
PIXEL_DATA = 0x7FE00010
UNDEFINED_LENGTH = 0xFFFFFFFF


class SourceKind(Enum):
    STOW = "stow"
    DIMSE = "dimse"
    IMPORT = "import"
    WORKFLOW = "workflow"


@dataclass(frozen=True)
class Source:
    """Who sent an object, kept on its arrival row for routing rules."""

    kind: SourceKind
    username: str = ""
    calling_ae: str = ""
    called_ae: str = ""
    peer: str = ""


class Outcome(Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # same data set already stored: nothing written
    REPLACED = "replaced"  # different data set, replaced under duplicate_policy=overwrite


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str


class IngestError(Exception):
    """An object was refused; ``status`` is the DICOM status to report."""

    def __init__(
        self,
        status: StoreStatus,
        message: str,
        sop_class_uid: str = "",
        sop_instance_uid: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.sop_class_uid = sop_class_uid
        self.sop_instance_uid = sop_instance_uid


@dataclass(frozen=True)
class _Parsed:
    attributes: InstanceAttributes
    transfer_syntax_uid: str
    digest: str
    size: int
    pixel_data_offset: int | None
    pixel_data_length: int | None
    metadata_json: str


def ingest(
    archive: Archive,
    staged: Path,
    source: Source,
    transfer_syntax_uid: str = "",
    study_instance_uid: str = "",
) -> IngestResult:
    """Store the staged file (consumed in every case); raise IngestError when refused.

    ``transfer_syntax_uid`` tells the encoding of a bare data set without File Meta (as
    DIMSE delivers it); without it a bare data set's encoding is detected. A non-empty
    ``study_instance_uid`` refuses objects of any other study (STOW to /studies/{uid}).
    """
    try:
        return _ingest(archive, staged, source, transfer_syntax_uid, study_instance_uid)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise IngestError(StoreStatus.OUT_OF_RESOURCES, "storage is full") from exc
        raise
    finally:
        staged.unlink(missing_ok=True)


def _ingest(
    archive: Archive,
    staged: Path,
    source: Source,
    transfer_syntax_uid: str,
    study_instance_uid: str,
) -> IngestResult:
    size = staged.stat().st_size
    limit = int(archive.settings.max_object_size)
    if size > limit:
        raise IngestError(
            StoreStatus.OUT_OF_RESOURCES,
            f"object of {size} bytes exceeds PACSFLOW_MAX_OBJECT_SIZE ({limit} bytes)",
        )
    if not _has_part10_header(staged):
        _add_file_meta(staged, transfer_syntax_uid)
        size = staged.stat().st_size
    parsed = _parse(staged, size)
    attrs = parsed.attributes
    if study_instance_uid and attrs.study_instance_uid != study_instance_uid:
        raise IngestError(
            StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS,
            f"StudyInstanceUID {attrs.study_instance_uid} differs from the study "
            f"{study_instance_uid} in the request URL",
            attrs.sop_class_uid,
            attrs.sop_instance_uid,
        )
    key = object_key(attrs.study_instance_uid, attrs.series_instance_uid, attrs.sop_instance_uid)

    with archive.sessions() as session:
        existing = session.execute(
            select(Instance.digest, Instance.storage_key).where(
                Instance.sop_instance_uid == attrs.sop_instance_uid
            )
        ).first()
    if existing is not None:
        if existing.digest == parsed.digest:
            return _result(Outcome.DUPLICATE, attrs)
        if archive.settings.duplicate_policy == "reject":
            raise IngestError(
                StoreStatus.DUPLICATE_SOP_INSTANCE,
                f"SOP Instance {attrs.sop_instance_uid} is already stored with different "
                "content; delete it first or set PACSFLOW_DUPLICATE_POLICY=overwrite",
                attrs.sop_class_uid,
                attrs.sop_instance_uid,
            )

    replace = existing is not None
    if not archive.storage.commit(staged, key, replace=replace):
        # A file without an index row: left by a crash before its commit. Take its place.
        archive.storage.commit(staged, key, replace=True)
    try:
        _index(archive, parsed, key, source, replace=replace)
    except IntegrityError:
        # Another request stored the same instance meanwhile: it won, with its file.
        return _result(Outcome.DUPLICATE, attrs)
    except SQLAlchemyError as exc:
        if not replace:
            archive.storage.remove([key])
        logger.exception("indexing SOP Instance %s failed", attrs.sop_instance_uid)
        raise IngestError(
            StoreStatus.PROCESSING_FAILURE,
            "the archive index could not be updated; the object was not kept",
            attrs.sop_class_uid,
            attrs.sop_instance_uid,
        ) from exc
    if replace and existing.storage_key != key:
        archive.storage.remove([existing.storage_key])
    outcome = Outcome.REPLACED if replace else Outcome.STORED
    logger.debug("%s %s from %s", outcome.value, attrs.sop_instance_uid, source.kind.value)
    return _result(outcome, attrs)


def _result(outcome: Outcome, attrs: InstanceAttributes) -> IngestResult:
    return IngestResult(
        outcome,
        attrs.sop_class_uid,
        attrs.sop_instance_uid,
        attrs.study_instance_uid,
        attrs.series_instance_uid,
    )


def _has_part10_header(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def _add_file_meta(staged: Path, transfer_syntax_uid: str) -> None:
    """Give a bare data set the File Meta of PS3.10, keeping the data set bytes as they came."""
    try:
        ds = dcmread(staged, force=True, stop_before_pixels=True, defer_size=1024)
        sop_class_uid = check_uid(ds.get("SOPClassUID"), "SOPClassUID")
        sop_instance_uid = check_uid(ds.get("SOPInstanceUID"), "SOPInstanceUID")
    except InvalidUIDError as exc:
        raise IngestError(StoreStatus.CANNOT_UNDERSTAND, f"not a DICOM object: {exc}") from exc
    except Exception as exc:
        raise IngestError(
            StoreStatus.CANNOT_UNDERSTAND, "not a DICOM object: no DICM prefix and no data set"
        ) from exc
    if not transfer_syntax_uid:
        implicit, little = ds.original_encoding
        transfer_syntax_uid = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        if not little:
            raise IngestError(
                StoreStatus.CANNOT_UNDERSTAND,
                "a bare big-endian data set needs its transfer syntax; send a Part-10 file",
            )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax_uid)
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    wrapped = staged.with_suffix(".meta")
    try:
        with open(wrapped, "wb") as out, open(staged, "rb") as body:
            out.write(b"\x00" * 128 + b"DICM")
            write_file_meta_info(out, meta, enforce_standard=True)  # type: ignore[arg-type]
            shutil.copyfileobj(body, out, 1024 * 1024)
        os.replace(wrapped, staged)
    finally:
        wrapped.unlink(missing_ok=True)


def _parse(path: Path, size: int) -> _Parsed:
    """Read the header (large values stay on disk) and validate what the index needs."""
    try:
        ds = dcmread(path, defer_size=DEFER_SIZE)
        transfer_syntax_uid = check_uid(
            ds.file_meta.get("TransferSyntaxUID"), "TransferSyntaxUID (File Meta)"
        )
        deflated = transfer_syntax_uid == DeflatedExplicitVRLittleEndian
        if not deflated:
            _check_complete(ds, size)
        pixel = ds.get_item(PIXEL_DATA, keep_deferred=True)
    except IngestError:
        raise
    except InvalidUIDError as exc:
        raise IngestError(StoreStatus.CANNOT_UNDERSTAND, str(exc)) from exc
    except Exception as exc:
        raise IngestError(
            StoreStatus.CANNOT_UNDERSTAND,
            f"not a readable DICOM object ({type(exc).__name__}: {str(exc)[:200]})",
        ) from exc
    try:
        attrs = InstanceAttributes.from_dataset(ds)
    except InvalidUIDError as exc:
        raise IngestError(
            StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS,
            str(exc),
            str(ds.get("SOPClassUID", "")),
            str(ds.get("SOPInstanceUID", "")),
        ) from exc
    media_uid = str(ds.file_meta.get("MediaStorageSOPInstanceUID", attrs.sop_instance_uid))
    if media_uid.rstrip("\x00 ") != attrs.sop_instance_uid:
        # A sender's bug seen in real files: the data set is authoritative, keep it as sent.
        logger.warning(
            "SOP Instance %s: File Meta MediaStorageSOPInstanceUID differs; indexed by the "
            "data set's SOPInstanceUID",
            attrs.sop_instance_uid,
        )
    offset, length = None, None
    if isinstance(pixel, RawDataElement) and not deflated:
        offset = pixel.value_tell
        length = -1 if pixel.length == UNDEFINED_LENGTH else pixel.length
    path_json = instance_path(
        attrs.study_instance_uid, attrs.series_instance_uid, attrs.sop_instance_uid
    )
    try:
        metadata = dumps(dicom_json(ds, path_json))
    except Exception as exc:
        raise IngestError(
            StoreStatus.CANNOT_UNDERSTAND,
            f"an element could not be decoded ({type(exc).__name__}: {str(exc)[:200]})",
            attrs.sop_class_uid,
            attrs.sop_instance_uid,
        ) from exc
    return _Parsed(
        attrs,
        transfer_syntax_uid,
        dataset_digest(path, ds.file_meta.get("FileMetaInformationGroupLength")),
        size,
        offset,
        length,
        metadata,
    )


def _check_complete(ds: Dataset, size: int) -> None:
    """pydicom stops quietly at a truncated end; a defined-length last element must end at EOF."""
    tags = list(ds.keys())
    if not tags:
        raise IngestError(StoreStatus.CANNOT_UNDERSTAND, "the data set is empty")
    last = ds.get_item(tags[-1], keep_deferred=True)
    if isinstance(last, RawDataElement) and last.length != UNDEFINED_LENGTH:
        end = last.value_tell + last.length
        if end != size:
            raise IngestError(
                StoreStatus.CANNOT_UNDERSTAND,
                f"the file is truncated or has trailing bytes (data ends at {end}, "
                f"file has {size} bytes)",
            )


def dataset_digest(path: Path, meta_group_length: int | None) -> str:
    """SHA-256 of the bytes after the File Meta, when its group length says where they start.

    Hashing the data set alone makes a resend with other File Meta a duplicate.
    """
    offset = 132 + 12 + meta_group_length if meta_group_length else 0
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _index(archive: Archive, parsed: _Parsed, key: str, source: Source, *, replace: bool) -> None:
    attrs = parsed.attributes
    with archive.write_session() as session, session.begin():
        if replace:
            remove_instances(session, [attrs.sop_instance_uid])
        known = session.execute(
            select(Series.id, Series.study_fk).where(
                Series.series_instance_uid == attrs.series_instance_uid
            )
        ).first()
        if known is not None:
            series_fk, study_fk, new_series = known.id, known.study_fk, False
        else:
            patient_fk, _ = upsert(session, Patient, attrs.patient)
            study_fk, _ = upsert(session, Study, {**attrs.study, "patient_fk": patient_fk})
            series_fk, new_series = upsert(session, Series, {**attrs.series, "study_fk": study_fk})
        session.add(
            Instance(
                **attrs.instance,
                series_fk=series_fk,
                transfer_syntax_uid=parsed.transfer_syntax_uid,
                storage_key=key,
                size_bytes=parsed.size,
                digest=parsed.digest,
                pixel_data_offset=parsed.pixel_data_offset,
                pixel_data_length=parsed.pixel_data_length,
                metadata_json=parsed.metadata_json,
            )
        )
        session.flush()
        session.execute(
            update(Series)
            .where(Series.id == series_fk)
            .values(number_of_instances=Series.number_of_instances + 1, updated_at=func.now())
        )
        modality = attrs.series["modality"]
        study_values: dict[str, Any] = {
            "number_of_instances": Study.number_of_instances + 1,
            "number_of_series": Study.number_of_series + (1 if new_series else 0),
            "updated_at": func.now(),
        }
        session.execute(update(Study).where(Study.id == study_fk).values(**study_values))
        if modality:
            session.execute(
                update(Study)
                .where(Study.id == study_fk, ~Study.modalities_in_study.contains(f"/{modality}/"))
                .values(modalities_in_study=Study.modalities_in_study + f"{modality}/")
            )
        session.add(
            Arrival(
                study_instance_uid=attrs.study_instance_uid,
                series_instance_uid=attrs.series_instance_uid,
                sop_instance_uid=attrs.sop_instance_uid,
                sop_class_uid=attrs.sop_class_uid,
                source_kind=source.kind.value,
                username=source.username,
                calling_ae=source.calling_ae,
                called_ae=source.called_ae,
                peer=source.peer,
            )
        )
