"""WADO-RS (PS3.18 10.4): instances, metadata, frames and bulk data.

Instances go out byte for byte as stored unless the client names another transfer syntax
(pacsflow's documented default: no transfer-syntax parameter means "as stored").
Metadata is the DICOM JSON kept in the index, joined without parsing. Frames and bulk
data are read from the files with seek and read (see ``pacsflow.archive.frames``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from http import HTTPStatus
from typing import Any, BinaryIO

from flask import Blueprint, Response, request
from pydicom.uid import ExplicitVRLittleEndian
from sqlalchemy import Row, Select, bindparam, select

from pacsflow.archive.access import Action
from pacsflow.archive.dicomjson import with_root
from pacsflow.archive.frames import (
    BulkDataNotFoundError,
    BulkDataPath,
    BulkValue,
    FrameError,
    FrameNotFoundError,
    NoPixelDataError,
    PixelDataReader,
    StoredPixelData,
    can_convert_to_explicit_little_endian,
    can_decode,
    describe_syntax,
    explicit_little_endian,
    open_pixel_data,
    read_bulk_value,
)
from pacsflow.archive.models import Instance, Series, Study
from pacsflow.archive.storage import Storage
from pacsflow.dicom import transfer_syntax
from pacsflow.web.access import StudyVerdict, study_verdict
from pacsflow.web.dicomweb.common import (
    DicomwebError,
    MediaType,
    archive,
    dicomweb_root,
    error_response,
)
from pacsflow.web.dicomweb.multipart import (
    WILDCARD,
    MediaRange,
    Part,
    content_type,
    media_type_matches,
    multipart_response,
    parse_accept,
)
from pacsflow.web.security import Permission, require

logger = logging.getLogger(__name__)

READ_CHUNK = 1024 * 1024
ANY_SYNTAX = "*"
MAX_FRAME_NUMBERS = 10000


class BulkMediaType(StrEnum):
    """Media types of bulk data and frames (PS3.18 Tables 8.7.3-4 and 8.7.3-5)."""

    OCTET_STREAM = "application/octet-stream"
    JPEG = "image/jpeg"
    JPEG_LS = "image/jls"
    JPEG_2000 = "image/jp2"
    JPEG_2000_PART2 = "image/jpx"
    HTJ2K = "image/jphc"
    RLE = "image/dicom-rle"
    MPEG2 = "video/mpeg"
    MP4 = "video/mp4"
    H265 = "video/H265"


COMPRESSED_MEDIA_TYPES: dict[str, BulkMediaType] = {
    uid: media_type
    for family, media_type in (
        (transfer_syntax.JPEG, BulkMediaType.JPEG),
        (transfer_syntax.JPEG_LS, BulkMediaType.JPEG_LS),
        (transfer_syntax.JPEG_2000, BulkMediaType.JPEG_2000),
        (transfer_syntax.JPEG_2000_MULTICOMPONENT, BulkMediaType.JPEG_2000_PART2),
        (transfer_syntax.HTJ2K_FAMILY, BulkMediaType.HTJ2K),
        (transfer_syntax.RLE, BulkMediaType.RLE),
        (transfer_syntax.MPEG2, BulkMediaType.MPEG2),
        (transfer_syntax.MPEG4, BulkMediaType.MP4),
        (transfer_syntax.HEVC, BulkMediaType.H265),
    )
    for uid in family
}
# A video's frames are one bitstream: it is sent whole, as one part.
VIDEO_SYNTAXES = frozenset(
    uid for uid, media in COMPRESSED_MEDIA_TYPES.items() if media.startswith("video/")
)
# Names clients send for the same formats (older PS3.18 editions, dicomweb-client).
MEDIA_TYPE_ALIASES = {"image/x-dicom-rle": BulkMediaType.RLE, "image/x-jls": BulkMediaType.JPEG_LS}
MULTIPART_RANGES = frozenset({"multipart/related", "multipart/*"})


class FrameForm(Enum):
    """How frames (and Pixel Data) are sent, chosen from the client's Accept."""

    STORED = "stored"  # native as little endian octets; compressed in its own media type
    STORED_AS_OCTETS = "stored-as-octets"  # compressed bitstream labelled octet-stream
    DECODED = "decoded"  # native little endian, decoding compressed data


@dataclass(frozen=True)
class InstanceFile:
    """What the index says of one instance, enough to find and read its file."""

    sop_instance_uid: str
    sop_class_uid: str
    storage_key: str
    pixels: StoredPixelData


# -- index lookups -----------------------------------------------------------------------


FILE_COLUMNS = (
    Instance.sop_instance_uid,
    Instance.sop_class_uid,
    Instance.storage_key,
    Instance.transfer_syntax_uid,
    Instance.pixel_data_offset,
    Instance.pixel_data_length,
    Instance.rows,
    Instance.columns,
    Instance.bits_allocated,
    Instance.number_of_frames,
)
METADATA_COLUMNS = (Instance.metadata_json,)
SCOPE_PARAMETERS = ("study", "series", "instance")


@functools.cache
def scoped_statement(columns: tuple[Any, ...], depth: int) -> Select[Any]:
    """``columns`` of the instances of a study (depth 1), series (2) or instance (3).

    Built once per shape with bound parameters: constructing a SELECT costs more than
    running this one. Rows come in retrieval order: series number, instance number, id.
    """
    query = (
        select(*columns)
        .join(Series, Instance.series_fk == Series.id)
        .join(Study, Series.study_fk == Study.id)
        .where(Study.study_instance_uid == bindparam("study"))
    )
    if depth >= 2:
        query = query.where(Series.series_instance_uid == bindparam("series"))
    if depth >= 3:
        query = query.where(Instance.sop_instance_uid == bindparam("instance"))
    return query.order_by(
        Series.series_number.asc().nulls_last(),
        Series.id,
        Instance.instance_number.asc().nulls_last(),
        Instance.id,
    )


def run_scoped(
    columns: tuple[Any, ...], study: str, series: str | None, instance: str | None
) -> Sequence[Row[Any]]:
    """Rows of ``columns`` for the instances in scope, using the cached statement; none
    when the user may not read the study."""
    if instance is not None and series is None:
        raise ValueError("an instance is looked up within its series")
    if study_verdict(Action.READ, study) is not StudyVerdict.ALLOWED:
        return []  # answered as if nothing were stored
    values = [v for v in (study, series, instance) if v is not None]
    parameters = dict(zip(SCOPE_PARAMETERS, values, strict=False))
    statement = scoped_statement(columns, len(values))
    with archive().engine.connect() as connection:  # Core: no ORM session per request
        return connection.execute(statement, parameters).all()


def not_found(study: str, series: str | None, instance: str | None) -> DicomwebError:
    """404 naming the path that holds nothing."""
    path = f"studies/{study}"
    path += f"/series/{series}" if series is not None else ""
    path += f"/instances/{instance}" if instance is not None else ""
    return DicomwebError(HTTPStatus.NOT_FOUND, f"nothing is stored at {path}")


def find_instances(study: str, series: str | None, instance: str | None) -> list[InstanceFile]:
    """The instances of a study, series or instance in order; 404 when there are none."""
    rows = run_scoped(FILE_COLUMNS, study, series, instance)
    if not rows:
        raise not_found(study, series, instance)
    return [instance_file(row) for row in rows]


def instance_file(row: Row[Any]) -> InstanceFile:
    """An InstanceFile from a row holding at least FILE_COLUMNS."""
    return InstanceFile(
        row.sop_instance_uid,
        row.sop_class_uid,
        row.storage_key,
        StoredPixelData(
            transfer_syntax_uid=row.transfer_syntax_uid,
            offset=row.pixel_data_offset,
            length=row.pixel_data_length,
            rows=row.rows,
            columns=row.columns,
            bits_allocated=row.bits_allocated,
            number_of_frames=row.number_of_frames,
        ),
    )


def find_instance(study: str, series: str, instance: str) -> InstanceFile:
    return find_instances(study, series, instance)[0]


# -- retrieve instances ------------------------------------------------------------------


def negotiate_retrieve(ranges: Sequence[MediaRange], syntaxes: Iterable[str]) -> str:
    """The transfer syntax to send (ANY_SYNTAX: as stored) or 406 naming the problem."""
    stored = sorted(set(syntaxes))
    problem = (
        'Accept must allow multipart/related; type="application/dicom" '
        "(optionally with transfer-syntax=* or 1.2.840.10008.1.2.1)"
    )
    for media_range in ranges:
        if media_range.media_type == WILDCARD:
            return ANY_SYNTAX
        if media_range.media_type not in MULTIPART_RANGES:
            continue
        if not media_type_matches(media_range.part_type or MediaType.DICOM, MediaType.DICOM):
            continue
        wanted = media_range.transfer_syntax or ANY_SYNTAX
        unavailable = [ts for ts in stored if not _can_send_as(ts, wanted)]
        if not unavailable:
            return wanted
        problem = (
            f"cannot send {describe_syntax(unavailable[0])} as {describe_syntax(wanted)}; "
            "ask for transfer-syntax=* to get the instances as stored"
        )
    raise DicomwebError(HTTPStatus.NOT_ACCEPTABLE, problem)


def _can_send_as(stored: str, wanted: str) -> bool:
    if wanted in (ANY_SYNTAX, stored):
        return True
    return wanted == ExplicitVRLittleEndian and can_convert_to_explicit_little_endian(stored)


def _instance_part(storage: Storage, item: InstanceFile, syntax: str) -> Part:
    stored = item.pixels.transfer_syntax_uid
    as_stored = syntax in (ANY_SYNTAX, stored)
    sent = stored if as_stored else syntax
    return Part(
        content_type(MediaType.DICOM, sent),
        (lambda: _file_chunks(storage, item.storage_key))
        if as_stored
        else (lambda: _converted_chunks(storage, item)),
    )


def _file_chunks(storage: Storage, key: str) -> Iterator[bytes]:
    with storage.open(key) as fp:
        while chunk := fp.read(READ_CHUNK):
            yield chunk


def _converted_chunks(storage: Storage, item: InstanceFile) -> Iterator[bytes]:
    """The instance in Explicit VR Little Endian; made in memory, sent in chunks."""
    with storage.open(item.storage_key) as fp:
        data = explicit_little_endian(fp)
    for start in range(0, len(data), READ_CHUNK):
        yield data[start : start + READ_CHUNK]


@require(Permission.READ)
def retrieve(study: str, series: str | None = None, instance: str | None = None) -> Response:
    """Instances of a study, series or one instance as multipart/related application/dicom."""
    instances = find_instances(study, series, instance)
    syntax = negotiate_retrieve(
        parse_accept(request.headers.get("Accept")),
        (item.pixels.transfer_syntax_uid for item in instances),
    )
    storage = archive().storage
    parts = (_instance_part(storage, item, syntax) for item in instances)
    return multipart_response(parts, MediaType.DICOM)


# -- metadata ----------------------------------------------------------------------------


def negotiate_metadata(ranges: Sequence[MediaRange]) -> None:
    for media_range in ranges:
        if any(
            media_range.matches(t) for t in (MediaType.DICOM_JSON, MediaType.JSON)
        ) and not media_range.media_type.startswith("multipart/"):
            return
    raise DicomwebError(
        HTTPStatus.NOT_ACCEPTABLE, "metadata is only available as application/dicom+json"
    )


@require(Permission.READ)
def metadata(study: str, series: str | None = None, instance: str | None = None) -> Response:
    """DICOM JSON of every instance in scope: stored texts joined, then made absolute."""
    negotiate_metadata(parse_accept(request.headers.get("Accept")))
    texts = [row[0] for row in run_scoped(METADATA_COLUMNS, study, series, instance)]
    if not texts:
        raise not_found(study, series, instance)
    body = with_root("[" + ",".join(texts) + "]", dicomweb_root())
    return Response(body, mimetype=MediaType.DICOM_JSON)


# -- frames and pixel data ---------------------------------------------------------------


def stored_media_type(transfer_syntax_uid: str) -> str:
    """The media type of a compressed syntax's frames; octet-stream when none is defined."""
    return COMPRESSED_MEDIA_TYPES.get(transfer_syntax_uid, BulkMediaType.OCTET_STREAM)


def negotiate_frames(ranges: Sequence[MediaRange], pixels: StoredPixelData) -> FrameForm:
    """How to send frames of ``pixels`` given the client's Accept, or 406 saying why."""
    for media_range in ranges:
        form = _frame_form(media_range, pixels)
        if form is not None:
            return form
    raise DicomwebError(HTTPStatus.NOT_ACCEPTABLE, _frames_not_acceptable(pixels))


def _frame_form(media_range: MediaRange, pixels: StoredPixelData) -> FrameForm | None:
    if media_range.media_type == WILDCARD:
        return FrameForm.STORED
    if media_range.media_type not in MULTIPART_RANGES:
        return None
    part = media_range.part_type or WILDCARD
    part = MEDIA_TYPE_ALIASES.get(part, part)
    wanted = media_range.transfer_syntax
    stored = pixels.transfer_syntax_uid
    if not pixels.encapsulated:
        octets = media_type_matches(part, BulkMediaType.OCTET_STREAM)
        native_ok = wanted in (None, ANY_SYNTAX, ExplicitVRLittleEndian)
        return FrameForm.STORED if octets and native_ok else None
    if media_type_matches(part, stored_media_type(stored)) and wanted in (None, ANY_SYNTAX, stored):
        return FrameForm.STORED
    if media_type_matches(part, BulkMediaType.OCTET_STREAM):
        if wanted in (ANY_SYNTAX, stored):
            return FrameForm.STORED_AS_OCTETS
        if wanted in (None, ExplicitVRLittleEndian) and _decodable(stored):
            return FrameForm.DECODED
    return None


def _decodable(transfer_syntax_uid: str) -> bool:
    return transfer_syntax_uid not in VIDEO_SYNTAXES and can_decode(transfer_syntax_uid)


def _frames_not_acceptable(pixels: StoredPixelData) -> str:
    stored = pixels.transfer_syntax_uid
    if not pixels.encapsulated:
        return (
            "frames of this instance are uncompressed; accept "
            'multipart/related; type="application/octet-stream"'
        )
    options = [
        f'multipart/related; type="{stored_media_type(stored)}"',
        'multipart/related; type="application/octet-stream"; transfer-syntax=*',
    ]
    if _decodable(stored):
        options.append('multipart/related; type="application/octet-stream" (decoded)')
    else:
        options.append("(no decoder is installed to send them uncompressed)")
    return f"frames are stored as {describe_syntax(stored)}; accept " + " or ".join(options)


def parse_frame_numbers(text: str) -> list[int]:
    """'1,3,5' as [1, 3, 5]; 400 naming the frame list when it is not positive integers."""
    parts = text.split(",")
    if len(parts) > MAX_FRAME_NUMBERS or not all(p.strip().isdigit() for p in parts):
        raise DicomwebError(
            HTTPStatus.BAD_REQUEST,
            f"frame list {text[:100]!r} must be comma-separated frame numbers starting at 1",
        )
    numbers = [int(p) for p in parts]
    if 0 in numbers:
        raise DicomwebError(HTTPStatus.BAD_REQUEST, "frame numbers start at 1, not 0")
    return numbers


def _frame_content_type(form: FrameForm, transfer_syntax_uid: str, encapsulated: bool) -> str:
    if not encapsulated or form is FrameForm.DECODED:
        return content_type(BulkMediaType.OCTET_STREAM, ExplicitVRLittleEndian)
    if form is FrameForm.STORED_AS_OCTETS:
        return content_type(BulkMediaType.OCTET_STREAM, transfer_syntax_uid)
    return content_type(stored_media_type(transfer_syntax_uid), transfer_syntax_uid)


def _frame_parts(reader: PixelDataReader, form: FrameForm, indexes: Sequence[int]) -> list[Part]:
    """One part per frame, read when sent; a video is one part holding the whole stream."""
    syntax = reader.transfer_syntax_uid
    part_type = _frame_content_type(form, syntax, reader.encapsulated)
    if reader.encapsulated and syntax in VIDEO_SYNTAXES:
        return [Part(part_type, reader.fragments)]
    read: Callable[[int], bytes] = (
        reader.decoded_frame if form is FrameForm.DECODED else reader.frame
    )
    return [Part(part_type, _one(read, index)) for index in indexes]


def _one(read: Callable[[int], bytes], index: int) -> Callable[[], Iterable[bytes]]:
    """Read frame ``index`` only when its part is sent."""
    return lambda: (read(index),)


def _part_media_type(parts: Sequence[Part]) -> str:
    return parts[0].content_type.split(";")[0] if parts else BulkMediaType.OCTET_STREAM


def _open_reader(storage: Storage, item: InstanceFile) -> tuple[BinaryIO, PixelDataReader]:
    fp = storage.open(item.storage_key)
    try:
        return fp, open_pixel_data(fp, item.pixels)
    except NoPixelDataError as exc:
        fp.close()
        raise DicomwebError(
            HTTPStatus.NOT_FOUND, f"instance {item.sop_instance_uid} has no pixel data: {exc}"
        ) from exc
    except BaseException:
        fp.close()
        raise


def _streamed(parts: list[Part], fp: BinaryIO) -> Response:
    response = multipart_response(parts, _part_media_type(parts))
    response.call_on_close(fp.close)
    return response


@require(Permission.READ)
def frames(study: str, series: str, instance: str, frame_list: str) -> Response:
    """Frames of an instance, one part each, in the form the Accept header allows."""
    numbers = parse_frame_numbers(frame_list)
    item = find_instance(study, series, instance)
    if item.pixels.rows is None and item.pixels.offset is None:
        raise DicomwebError(
            HTTPStatus.NOT_FOUND, f"instance {instance} has no pixel data, so no frames"
        )
    form = negotiate_frames(parse_accept(request.headers.get("Accept")), item.pixels)
    fp, reader = _open_reader(archive().storage, item)
    try:
        reader.check_frame_numbers(numbers)
    except FrameNotFoundError as exc:
        fp.close()
        raise DicomwebError(HTTPStatus.NOT_FOUND, str(exc)) from exc
    except BaseException:
        fp.close()
        raise
    return _streamed(_frame_parts(reader, form, [n - 1 for n in numbers]), fp)


# -- bulk data ---------------------------------------------------------------------------


def negotiate_octets(ranges: Sequence[MediaRange]) -> None:
    """Uncompressed bulk data goes as application/octet-stream, little endian."""
    for media_range in ranges:
        if media_range.media_type == WILDCARD:
            return
        if media_range.media_type not in MULTIPART_RANGES:
            continue
        part = media_range.part_type or WILDCARD
        if media_type_matches(part, BulkMediaType.OCTET_STREAM) and (
            media_range.transfer_syntax in (None, ANY_SYNTAX, ExplicitVRLittleEndian)
        ):
            return
    raise DicomwebError(
        HTTPStatus.NOT_ACCEPTABLE,
        'bulk data is sent as multipart/related; type="application/octet-stream"',
    )


def _octet_part(chunks: Callable[[], Iterable[bytes]]) -> Part:
    return Part(content_type(BulkMediaType.OCTET_STREAM, ExplicitVRLittleEndian), chunks)


def _pixel_data_parts(reader: PixelDataReader, form: FrameForm) -> list[Part]:
    """Pixel Data: a native value whole; encapsulated frames as parts, or decoded whole."""
    if not reader.encapsulated:
        return [_octet_part(reader.value_chunks)]
    indexes = range(reader.number_of_frames)
    if form is FrameForm.DECODED:
        return [_octet_part(lambda: (reader.decoded_frame(i) for i in indexes))]
    return _frame_parts(reader, form, indexes)


def _bulk_value_parts(
    value: BulkValue, fp: BinaryIO, transfer_syntax_uid: str, ranges: Sequence[MediaRange]
) -> list[Part]:
    """A binary value as one octet-stream part, or an encapsulated one frame by frame."""
    if not value.encapsulated:
        negotiate_octets(ranges)
        return [_octet_part(lambda: value.chunks(fp))]
    form = negotiate_frames(ranges, _as_encapsulated(transfer_syntax_uid))
    if form is FrameForm.DECODED:
        raise DicomwebError(
            HTTPStatus.NOT_ACCEPTABLE, "compressed bulk data is only sent as it is stored"
        )
    part_type = _frame_content_type(form, transfer_syntax_uid, encapsulated=True)
    return [Part(part_type, _fixed(frame)) for frame in value.frames(fp)]


def _fixed(data: bytes) -> Callable[[], Iterable[bytes]]:
    return lambda: (data,)


def _element_response(
    storage: Storage, item: InstanceFile, path: BulkDataPath, ranges: Sequence[MediaRange]
) -> Response:
    """Any bulk data element but top-level Pixel Data: found by parsing the header."""
    syntax = item.pixels.transfer_syntax_uid
    fp = storage.open(item.storage_key)
    try:
        parts = _bulk_value_parts(read_bulk_value(fp, syntax, path), fp, syntax, ranges)
    except BulkDataNotFoundError as exc:
        fp.close()
        message = f"instance {item.sop_instance_uid}: {exc}"
        raise DicomwebError(HTTPStatus.NOT_FOUND, message) from exc
    except BaseException:
        fp.close()
        raise
    return _streamed(parts, fp)


@require(Permission.READ)
def bulkdata(study: str, series: str, instance: str, tag_path: str) -> Response:
    """The value of a bulk data element named by a BulkDataURI of the metadata."""
    try:
        path = BulkDataPath.parse(tag_path)
    except ValueError as exc:
        raise DicomwebError(HTTPStatus.NOT_FOUND, str(exc)) from exc
    item = find_instance(study, series, instance)
    ranges = parse_accept(request.headers.get("Accept"))
    storage = archive().storage
    if not (path.is_pixel_data and item.pixels.offset is not None):
        return _element_response(storage, item, path, ranges)
    form = negotiate_frames(ranges, item.pixels)
    fp, reader = _open_reader(storage, item)
    return _streamed(_pixel_data_parts(reader, form), fp)


def _as_encapsulated(transfer_syntax_uid: str) -> StoredPixelData:
    """What negotiation needs to know of an encapsulated value outside the index."""
    return StoredPixelData(transfer_syntax_uid, 0, -1, None, None, None, None)


def _frame_errors(error: FrameError) -> Response:
    """Frames that cannot be read (a damaged file) are a server-side failure."""
    logger.warning("frames or bulk data could not be read: %s", error)
    return error_response(
        DicomwebError(HTTPStatus.INTERNAL_SERVER_ERROR, f"the stored file cannot be read: {error}")
    )


# -- routes ------------------------------------------------------------------------------

STUDY = "/studies/<study>"
SERIES = STUDY + "/series/<series>"
INSTANCE = SERIES + "/instances/<instance>"


def register(blueprint: Blueprint) -> None:
    """Add WADO-RS retrieve, metadata, frames and bulk data routes."""
    for rule in (STUDY, SERIES, INSTANCE):
        blueprint.add_url_rule(rule, view_func=retrieve, methods=["GET"], endpoint=f"wado:{rule}")
        blueprint.add_url_rule(
            rule + "/metadata", view_func=metadata, methods=["GET"], endpoint=f"wado:{rule}/md"
        )
    blueprint.add_url_rule(
        INSTANCE + "/frames/<frame_list>", view_func=frames, methods=["GET"], endpoint="wado:frames"
    )
    blueprint.add_url_rule(
        INSTANCE + "/bulkdata/<path:tag_path>",
        view_func=bulkdata,
        methods=["GET"],
        endpoint="wado:bulkdata",
    )
    blueprint.register_error_handler(FrameError, _frame_errors)


__all__ = ["BulkMediaType", "FrameForm", "register"]
