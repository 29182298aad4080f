"""Rendered images and thumbnails (PS3.18 10.4 rendered resources, 8.3.5 parameters).

One frame is decoded per request, straight from the stored file, turned into 8-bit grey
or RGB and encoded with Pillow; nothing is cached. The file is read once: for plain
monochrome native data (most CT, MR, CR) the header comes from the indexed DICOM JSON and
the frame from one seek and read; otherwise pydicom reads the header and that one frame.
An instance's rendered image and thumbnail show its first frame; a study's or series'
thumbnail shows the middle image instance of its (first) series.

Grey levels: Modality LUT (Rescale Slope/Intercept, or a Modality LUT Sequence), then
the VOI: the ``window`` parameter, else the first Window Center/Width of the header
(per frame for enhanced objects), else a VOI LUT Sequence, else the frame's min/max;
MONOCHROME1 is inverted. Colour: YBR is decoded to RGB, PALETTE COLOR goes through its
LUT, more than 8 bits per sample are scaled by Bits Stored.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus
from typing import Any, BinaryIO

import numpy as np
from flask import Blueprint, Response, request
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pacsflow.archive.frames import (
    FrameNotFoundError,
    NoDecoderError,
    PixelDataReader,
    StoredPixelData,
    decode_frame,
    describe_syntax,
)
from pacsflow.archive.models import Instance
from pacsflow.web.dicomweb.common import DicomwebError, archive
from pacsflow.web.dicomweb.multipart import parse_accept
from pacsflow.web.dicomweb.wado import (
    FILE_COLUMNS,
    INSTANCE,
    SERIES,
    STUDY,
    InstanceFile,
    instance_file,
    not_found,
    parse_frame_numbers,
    run_scoped,
)
from pacsflow.web.security import Permission, require

SHARED_FUNCTIONAL_GROUPS = 0x52009229
PER_FRAME_FUNCTIONAL_GROUPS = 0x52009230
THUMBNAIL_SIZE = 128
DEFAULT_QUALITY = 90
MAX_VIEWPORT = 8192
GREY_MAX = 255.0
# What plain_monochrome_frame needs: stored syntaxes it reads (deflated must be inflated)...
PLAIN_SYNTAXES = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian})
MONOCHROME = frozenset({"MONOCHROME1", "MONOCHROME2"})
# ...the elements display uses (tags as in DICOM JSON)...
DISPLAY_TAGS = (
    "00280004",  # Photometric Interpretation
    "00281050",  # Window Center
    "00281051",  # Window Width
    "00281052",  # Rescale Intercept
    "00281053",  # Rescale Slope
    "00281056",  # VOI LUT Function
)
# ...and those that send a frame down the general path: LUTs and functional groups.
NOT_PLAIN_TAGS = ("00283000", "00283010", "52009229", "52009230")


class RenderedMediaType(StrEnum):
    JPEG = "image/jpeg"
    PNG = "image/png"


PIL_FORMATS = {RenderedMediaType.JPEG: "JPEG", RenderedMediaType.PNG: "PNG"}


class VoiLutFunction(StrEnum):
    """VOI LUT Function (0028,1056) defined terms, PS3.3 C.11.2.1.3."""

    LINEAR = "LINEAR"
    LINEAR_EXACT = "LINEAR_EXACT"
    SIGMOID = "SIGMOID"


# The ``window`` parameter's function names (PS3.18 8.3.5.1.4).
WINDOW_FUNCTIONS = {
    "linear": VoiLutFunction.LINEAR,
    "linear-exact": VoiLutFunction.LINEAR_EXACT,
    "sigmoid": VoiLutFunction.SIGMOID,
}


class PhotometricInterpretation(StrEnum):
    MONOCHROME1 = "MONOCHROME1"
    MONOCHROME2 = "MONOCHROME2"
    PALETTE_COLOR = "PALETTE COLOR"


class QueryParameter(StrEnum):
    WINDOW = "window"
    VIEWPORT = "viewport"
    QUALITY = "quality"


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: VoiLutFunction = VoiLutFunction.LINEAR

    def is_valid(self) -> bool:
        """LINEAR needs width >= 1 (PS3.3 C.11.2.1.2.1), the others width > 0."""
        if not (math.isfinite(self.center) and math.isfinite(self.width)):
            return False
        return self.width >= 1 if self.function is VoiLutFunction.LINEAR else self.width > 0


@dataclass(frozen=True)
class Viewport:
    """``viewport=vw,vh[,sx,sy,sw,sh]``: fit the (sx,sy,sw,sh) region into vw x vh."""

    width: int
    height: int
    sx: int | None = None
    sy: int | None = None
    sw: int | None = None
    sh: int | None = None


@dataclass(frozen=True)
class RenderOptions:
    media_type: RenderedMediaType
    window: Window | None
    viewport: Viewport | None
    quality: int


# -- parameters --------------------------------------------------------------------------


def _bad(parameter: QueryParameter, message: str) -> DicomwebError:
    return DicomwebError(HTTPStatus.BAD_REQUEST, f"query parameter {parameter}: {message}")


def negotiate_rendered(accept: str | None) -> RenderedMediaType:
    """image/jpeg unless the client prefers image/png; 406 for anything else."""
    for media_range in parse_accept(accept):
        for media_type in RenderedMediaType:
            if media_range.matches(media_type):
                return media_type
    raise DicomwebError(
        HTTPStatus.NOT_ACCEPTABLE, "rendered images are available as image/jpeg or image/png"
    )


def parse_window(text: str | None) -> Window | None:
    """``center,width[,function]``; function linear (default), linear-exact or sigmoid."""
    if text is None:
        return None
    values = text.split(",")
    if len(values) not in (2, 3):
        raise _bad(QueryParameter.WINDOW, "must be center,width[,function]")
    try:
        center, width = float(values[0]), float(values[1])
    except ValueError:
        raise _bad(QueryParameter.WINDOW, "center and width must be numbers") from None
    name = values[2].strip().lower() if len(values) == 3 else "linear"
    if name not in WINDOW_FUNCTIONS:
        raise _bad(QueryParameter.WINDOW, f"function must be one of {', '.join(WINDOW_FUNCTIONS)}")
    window = Window(center, width, WINDOW_FUNCTIONS[name])
    if not window.is_valid():
        raise _bad(QueryParameter.WINDOW, "width must be at least 1 (linear) or above 0")
    return window


def parse_viewport(text: str | None) -> Viewport | None:
    """``vw,vh`` or ``vw,vh,sx,sy,sw,sh`` (region values may be left empty)."""
    if text is None:
        return None
    values = [v.strip() for v in text.split(",")]
    if len(values) not in (2, 6):
        raise _bad(QueryParameter.VIEWPORT, "must be vw,vh or vw,vh,sx,sy,sw,sh")
    try:
        numbers = [int(v) if v else None for v in values]
    except ValueError:
        raise _bad(QueryParameter.VIEWPORT, "values must be integers") from None
    width, height = numbers[0], numbers[1]
    sizes_ok = all(v is not None and 0 < v <= MAX_VIEWPORT for v in (width, height))
    if width is None or height is None or not sizes_ok:
        raise _bad(QueryParameter.VIEWPORT, f"vw and vh must be 1 to {MAX_VIEWPORT}")
    region = numbers[2:] or [None] * 4
    if any(v is not None and v < 0 for v in region[:2]) or 0 in region[2:]:
        raise _bad(QueryParameter.VIEWPORT, "sx and sy must be >= 0 and sw, sh not 0")
    return Viewport(width, height, *region)


def parse_quality(text: str | None) -> int:
    if text is None:
        return DEFAULT_QUALITY
    if not text.strip().isdigit() or not 1 <= int(text) <= 100:
        raise _bad(QueryParameter.QUALITY, "must be an integer from 1 to 100")
    return int(text)


def parse_options(
    args: Mapping[str, str], accept: str | None, default_viewport: Viewport | None = None
) -> RenderOptions:
    """Check every parameter before any file is read."""
    return RenderOptions(
        media_type=negotiate_rendered(accept),
        window=parse_window(args.get(QueryParameter.WINDOW)),
        viewport=parse_viewport(args.get(QueryParameter.VIEWPORT)) or default_viewport,
        quality=parse_quality(args.get(QueryParameter.QUALITY)),
    )


# -- pixels to an 8-bit image ------------------------------------------------------------


def _frame_item(header: Dataset, index: int, sequence: str) -> Dataset | None:
    """The functional group item ``sequence`` of frame ``index``: per-frame, then shared."""
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    shared = header.get("SharedFunctionalGroupsSequence")
    candidates = [per_frame[index] if per_frame and index < len(per_frame) else None]
    candidates.append(shared[0] if shared else None)
    for groups in candidates:
        if groups is not None and groups.get(sequence):
            item: Dataset = groups[sequence].value[0]
            return item
    return None


def _first(value: Any) -> float | None:
    """The first value of a possibly multi-valued numeric element (DS, IS)."""
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _header_window(header: Dataset, index: int) -> Window | None:
    """The first window of the frame's Frame VOI LUT, or of the header."""
    source = _frame_item(header, index, "FrameVOILUTSequence") or header
    center = _first(source.get("WindowCenter"))
    width = _first(source.get("WindowWidth"))
    if center is None or width is None:
        return None
    name = str(source.get("VOILUTFunction") or VoiLutFunction.LINEAR).strip().upper()
    known = {f.value for f in VoiLutFunction}
    function = VoiLutFunction(name) if name in known else VoiLutFunction.LINEAR
    window = Window(center, width, function)
    return window if window.is_valid() else None


@dataclass(frozen=True)
class Affine:
    """y = scale * x + offset: rescale and linear windows compose into one such map."""

    scale: float
    offset: float

    def then(self, other: Affine) -> Affine:
        return Affine(self.scale * other.scale, self.offset * other.scale + other.offset)

    def apply(self, arr: np.ndarray) -> np.ndarray:
        """The map on ``arr`` in float32: one multiply into a new array, one add in place."""
        values = np.multiply(arr, np.float32(self.scale), dtype=np.float32)
        values += np.float32(self.offset)
        return values


def _rescale(header: Dataset, index: int) -> Affine | None:
    """Rescale Slope/Intercept (per frame for enhanced objects); None for a Modality LUT."""
    item = _frame_item(header, index, "PixelValueTransformationSequence")
    source = item if item is not None and "RescaleSlope" in item else header
    if source is header and header.get("ModalityLUTSequence"):
        return None
    slope = _first(source.get("RescaleSlope"))
    intercept = _first(source.get("RescaleIntercept"))
    return Affine(1.0 if slope is None else slope, intercept or 0.0)


def _modality(arr: np.ndarray, header: Dataset, index: int) -> np.ndarray:
    """Stored values to modality values (e.g. HU) in float32."""
    rescale = _rescale(header, index)
    if rescale is None:
        return np.asarray(apply_modality_lut(arr, header), dtype=np.float32)
    return rescale.apply(arr)


def window_map(window: Window) -> Affine | None:
    """LINEAR and LINEAR_EXACT windows (PS3.3 C.11.2.1.2) as maps to 0..255 before clipping.

    None for SIGMOID and for the width-1 threshold, which are not affine.
    """
    c, w = window.center, window.width
    if window.function is VoiLutFunction.LINEAR_EXACT:
        return Affine(GREY_MAX / w, (0.5 - c / w) * GREY_MAX)  # ((x - c) / w + 0.5) * 255
    if window.function is VoiLutFunction.LINEAR and w > 1:
        # ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
        return Affine(GREY_MAX / (w - 1), (0.5 - (c - 0.5) / (w - 1)) * GREY_MAX)
    return None


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """A VOI window on modality values, to 0..255 (C.11.2.1.2 and C.11.2.1.3.1)."""
    affine = window_map(window)
    if affine is not None:
        return np.clip(affine.apply(values), 0.0, GREY_MAX)
    if window.function is VoiLutFunction.SIGMOID:
        return GREY_MAX / (1.0 + np.exp(-4.0 * (values - window.center) / window.width))
    return np.where(values <= window.center - 0.5, 0.0, GREY_MAX)  # LINEAR of width 1


def _min_max(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values)
    return (values - low) * (GREY_MAX / (high - low))


def _voi_lut(values: np.ndarray, header: Dataset) -> np.ndarray:
    """A VOI LUT Sequence's first LUT, scaled from its output bit depth."""
    bits = int(header.VOILUTSequence[0].LUTDescriptor[2])
    mapped = apply_voi(values.astype(np.int64), header).astype(np.float32)
    return mapped * (GREY_MAX / float(2**bits - 1))


def _display_levels(
    arr: np.ndarray, header: Dataset, index: int, window: Window | None
) -> np.ndarray:
    """Display values 0..255 as float32, before rounding."""
    rescale = _rescale(header, index)
    affine = window_map(window) if window is not None else None
    if rescale is not None and affine is not None:  # the usual CT/MR case: one pass
        return np.clip(rescale.then(affine).apply(arr), 0.0, GREY_MAX)
    values = _modality(arr, header, index)
    if window is not None:
        return apply_window(values, window)
    if header.get("VOILUTSequence"):
        return _voi_lut(values, header)
    return _min_max(values)


def grey_levels(arr: np.ndarray, header: Dataset, index: int, window: Window | None) -> np.ndarray:
    """A monochrome frame as 8-bit display values (MONOCHROME1 inverted)."""
    display = _display_levels(arr, header, index, window or _header_window(header, index))
    display += np.float32(0.5)  # round half up while truncating to uint8
    grey = display.astype(np.uint8)
    if header.get("PhotometricInterpretation") == PhotometricInterpretation.MONOCHROME1:
        np.subtract(np.uint8(255), grey, out=grey)
    return grey


def colour_levels(arr: np.ndarray, header: Dataset) -> np.ndarray:
    """An RGB or PALETTE COLOR frame as 8-bit RGB."""
    photometric = str(header.get("PhotometricInterpretation", ""))
    if photometric == PhotometricInterpretation.PALETTE_COLOR:
        rgb = apply_color_lut(arr, header)
        return (rgb >> 8).astype(np.uint8) if rgb.dtype.itemsize > 1 else rgb.astype(np.uint8)
    if arr.dtype == np.uint8:
        return arr
    bits = int(header.get("BitsStored") or arr.dtype.itemsize * 8)
    scaled = arr.astype(np.float32) * (GREY_MAX / float(2**bits - 1))
    return np.rint(np.clip(scaled, 0.0, GREY_MAX)).astype(np.uint8)


def to_image(arr: np.ndarray, header: Dataset, index: int, window: Window | None) -> Image.Image:
    """8-bit grey (L) or RGB image of a decoded frame."""
    photometric = str(header.get("PhotometricInterpretation", ""))
    if arr.ndim == 3 and arr.shape[2] == 3:
        return Image.fromarray(colour_levels(arr, header))
    if arr.ndim == 2 and photometric == PhotometricInterpretation.PALETTE_COLOR:
        return Image.fromarray(colour_levels(arr, header))
    if arr.ndim == 2:
        return Image.fromarray(grey_levels(arr, header, index, window))
    raise DicomwebError(
        HTTPStatus.NOT_ACCEPTABLE,
        f"frames with photometric interpretation {photometric or 'unknown'} and shape "
        f"{arr.shape} cannot be rendered",
    )


def fit_viewport(image: Image.Image, viewport: Viewport | None) -> Image.Image:
    """Crop to the viewport's region (negative sw/sh flip), then scale keeping aspect."""
    if viewport is None:
        return image
    image = _crop(image, viewport)
    scale = min(viewport.width / image.width, viewport.height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _crop(image: Image.Image, viewport: Viewport) -> Image.Image:
    sx, sy = viewport.sx or 0, viewport.sy or 0
    sw = viewport.sw if viewport.sw is not None else image.width - sx
    sh = viewport.sh if viewport.sh is not None else image.height - sy
    left, right = sorted((sx, sx + sw))
    top, bottom = sorted((sy, sy + sh))
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, image.width), min(bottom, image.height)
    if right <= left or bottom <= top:
        raise _bad(
            QueryParameter.VIEWPORT, f"region lies outside the {image.width}x{image.height} image"
        )
    if (left, top, right, bottom) != (0, 0, image.width, image.height):
        image = image.crop((left, top, right, bottom))
    if sw < 0:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if sh < 0:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return image


def encode(image: Image.Image, options: RenderOptions) -> bytes:
    out = io.BytesIO()
    if options.media_type is RenderedMediaType.JPEG:
        image.save(out, format="JPEG", quality=options.quality)
    else:
        image.save(out, format="PNG", compress_level=1)  # speed over a few per cent of size
    return out.getvalue()


def render_frame(
    fp: BinaryIO,
    pixels: StoredPixelData,
    index: int,
    options: RenderOptions,
    metadata_json: str | None = None,
) -> bytes:
    """Decode frame ``index`` (0-based) of an open stored file and encode it."""
    decoded = plain_monochrome_frame(fp, pixels, index, metadata_json) if metadata_json else None
    if decoded is None:
        tags = [SHARED_FUNCTIONAL_GROUPS, PER_FRAME_FUNCTIONAL_GROUPS]
        decoded = decode_frame(fp, pixels.transfer_syntax_uid, index, tags)
    arr, header = decoded
    image = to_image(arr, header, index, options.window)
    return encode(fit_viewport(image, options.viewport), options)


def plain_monochrome_frame(
    fp: BinaryIO, pixels: StoredPixelData, index: int, metadata_json: str
) -> tuple[np.ndarray, Dataset] | None:
    """A native single-sample grey frame, its header taken from the index's DICOM JSON.

    Parsing the file's header is most of the cost of rendering a CT or MR slice; for
    plain monochrome data the indexed JSON has all that display needs, and the frame is
    one seek and read. None when the data need the general path (compressed, colour,
    1-bit, LUT sequences, functional groups).
    """
    if pixels.encapsulated or pixels.offset is None or pixels.rows is None:
        return None
    if pixels.transfer_syntax_uid not in PLAIN_SYNTAXES or pixels.columns is None:
        return None
    metadata = json.loads(metadata_json)
    if any(tag in metadata for tag in NOT_PLAIN_TAGS):
        return None
    samples, bits = _json_first(metadata, "00280002"), _json_first(metadata, "00280100")
    photometric = _json_first(metadata, "00280004")
    if samples != 1 or bits not in (8, 16, 32) or photometric not in MONOCHROME:
        return None
    signed = _json_first(metadata, "00280103") == 1
    frame = PixelDataReader(fp, pixels).frame(index)
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    arr = np.frombuffer(frame, dtype=dtype).reshape(pixels.rows, pixels.columns)
    header = Dataset.from_json({tag: metadata[tag] for tag in DISPLAY_TAGS if tag in metadata})
    return arr, header


def _json_first(metadata: dict[str, Any], tag: str) -> Any:
    values = metadata.get(tag, {}).get("Value")
    return values[0] if values else None


# -- views -------------------------------------------------------------------------------


def _render(
    item: InstanceFile, frame_number: int, options: RenderOptions, metadata_json: str | None = None
) -> Response:
    pixels = item.pixels
    if pixels.rows is None and pixels.offset is None:
        raise DicomwebError(
            HTTPStatus.NOT_ACCEPTABLE,
            f"instance {item.sop_instance_uid} (SOP Class {item.sop_class_uid}) has no pixel "
            "data and cannot be rendered as an image",
        )
    count = max(pixels.number_of_frames or 1, 1)
    if not 1 <= frame_number <= count:
        raise DicomwebError(HTTPStatus.NOT_FOUND, str(FrameNotFoundError(frame_number, count)))
    try:
        with archive().storage.open(item.storage_key) as fp:
            body = render_frame(fp, pixels, frame_number - 1, options, metadata_json)
    except NoDecoderError as exc:
        raise DicomwebError(
            HTTPStatus.NOT_ACCEPTABLE,
            f"frames stored as {describe_syntax(exc.transfer_syntax_uid)} cannot be rendered: "
            "no decoder is installed",
        ) from exc
    return Response(body, mimetype=options.media_type)


def _single_frame(frame_list: str) -> int:
    numbers = parse_frame_numbers(frame_list)
    if len(numbers) != 1:
        raise DicomwebError(HTTPStatus.BAD_REQUEST, "rendered frames take one frame number")
    return numbers[0]


def _options(thumbnail: bool) -> RenderOptions:
    default = Viewport(THUMBNAIL_SIZE, THUMBNAIL_SIZE) if thumbnail else None
    return parse_options(request.args, request.headers.get("Accept"), default)


@require(Permission.READ)
def rendered(
    study: str, series: str, instance: str, frame_list: str = "1", thumbnail: bool = False
) -> Response:
    """A frame (the first for a whole instance) as image/jpeg or image/png."""
    options = _options(thumbnail)
    frame = _single_frame(frame_list)
    item, metadata_json = find_for_render(study, series, instance)
    return _render(item, frame, options, metadata_json)


@require(Permission.READ)
def thumbnail_series(study: str, series: str | None = None) -> Response:
    """The middle image instance of the series (of the study's first series with images)."""
    options = _options(thumbnail=True)
    return _render(representative_instance(study, series), 1, options)


IMAGE_COLUMNS = (*FILE_COLUMNS, Instance.series_fk)
RENDER_COLUMNS = (*FILE_COLUMNS, Instance.metadata_json)


def find_for_render(study: str, series: str, instance: str) -> tuple[InstanceFile, str]:
    """The instance and its DICOM JSON, in one query."""
    rows = run_scoped(RENDER_COLUMNS, study, series, instance)
    if not rows:
        raise not_found(study, series, instance)
    return instance_file(rows[0]), rows[0].metadata_json


def representative_instance(study: str, series: str | None) -> InstanceFile:
    """The middle image instance of the series, or of the study's first series with images."""
    rows = [row for row in run_scoped(IMAGE_COLUMNS, study, series, None) if row.rows]
    if not rows:
        scope = f"series {series}" if series is not None else f"study {study}"
        raise DicomwebError(HTTPStatus.NOT_FOUND, f"{scope} has no image instance to show")
    first = [row for row in rows if row.series_fk == rows[0].series_fk]
    return instance_file(first[len(first) // 2])


def register(blueprint: Blueprint) -> None:
    """Add rendered and thumbnail routes."""
    frame = INSTANCE + "/frames/<frame_list>"
    for rule, thumbnail in (
        (INSTANCE + "/rendered", False),
        (frame + "/rendered", False),
        (INSTANCE + "/thumbnail", True),
        (frame + "/thumbnail", True),
    ):
        blueprint.add_url_rule(
            rule,
            view_func=rendered,
            methods=["GET"],
            endpoint=f"render:{rule}",
            defaults={"thumbnail": thumbnail},
        )
    for rule in (SERIES + "/thumbnail", STUDY + "/thumbnail"):
        blueprint.add_url_rule(
            rule, view_func=thumbnail_series, methods=["GET"], endpoint=f"render:{rule}"
        )


__all__ = ["RenderedMediaType", "VoiLutFunction", "register"]
