"""Frames and bulk data read from stored files, without loading whole instances.

The index records where the Pixel Data value starts, so a native frame is one seek and
one read, and encapsulated frames are found through the Basic Offset Table stored there.
The file is parsed with pydicom only for what the index cannot tell: deflated files,
Float Pixel Data, encapsulated data without offsets, nested or other bulk data elements,
and decoding compressed frames.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from pydicom import dcmread
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments, generate_frames, get_frame, parse_basic_offsets
from pydicom.filereader import read_partial
from pydicom.filewriter import dcmwrite
from pydicom.pixels import get_decoder, pixel_array
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from pacsflow.archive.dicomjson import element_vr

PIXEL_DATA = 0x7FE00010
FLOAT_PIXEL_DATA = 0x7FE00008
DOUBLE_FLOAT_PIXEL_DATA = 0x7FE00009
PIXEL_DATA_TAGS = (PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_FLOAT_PIXEL_DATA)
IMAGE_PIXEL_GROUP = 0x0028
ITEM_TAG = 0xFFFEE000
UNDEFINED_LENGTH = 0xFFFFFFFF
# Values above this stay on disk while a header is parsed; bulk data is streamed from there.
DEFER_SIZE = 1024
# VRs whose values are words of this many bytes, swapped when the file is big endian.
WORD_SIZE = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}
BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
# (Samples per Pixel, subsampled) a native Pixel Data length is checked against.
SAMPLE_CHOICES = ((1, False), (3, False), (3, True), (4, False))
YBR_FULL_422 = "YBR_FULL_422"
READ_CHUNK = 1024 * 1024
# Syntaxes whose pixel data (if any) is never compressed: pydicom re-encodes them directly.
NATIVE_SYNTAXES = frozenset(
    {
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
    }
)


class FrameError(Exception):
    """Frames or bulk data cannot be read as asked; the message says why."""


class NoPixelDataError(FrameError):
    """The instance has no Pixel Data, Float Pixel Data or Double Float Pixel Data."""


class FrameNotFoundError(FrameError):
    """A frame number beyond the instance's Number of Frames."""

    def __init__(self, number: int, count: int) -> None:
        super().__init__(f"frame {number} does not exist: the instance has {count} frame(s)")
        self.number = number
        self.count = count


class NoDecoderError(FrameError):
    """Compressed pixel data for which no installed decoder exists."""

    def __init__(self, transfer_syntax_uid: str) -> None:
        super().__init__(f"no decoder is installed for {describe_syntax(transfer_syntax_uid)}")
        self.transfer_syntax_uid = transfer_syntax_uid


class BulkDataNotFoundError(FrameError):
    """A bulk data path that names no binary element of the instance."""


def describe_syntax(transfer_syntax_uid: str) -> str:
    """'JPEG Baseline (Process 1) (1.2.840.10008.1.2.4.50)', or the bare UID if unknown."""
    name = UID(transfer_syntax_uid).name
    return transfer_syntax_uid if name == transfer_syntax_uid else f"{name} ({transfer_syntax_uid})"


def can_decode(transfer_syntax_uid: str) -> bool:
    """Whether pydicom has a working decoder for compressed data in this syntax."""
    try:
        return bool(get_decoder(UID(transfer_syntax_uid)).is_available)
    except NotImplementedError:
        return False


def can_convert_to_explicit_little_endian(transfer_syntax_uid: str) -> bool:
    """Native syntaxes are re-encoded; others need a decoder for their pixel data."""
    return transfer_syntax_uid in NATIVE_SYNTAXES or can_decode(transfer_syntax_uid)


@dataclass(frozen=True)
class StoredPixelData:
    """What the index knows of an instance's pixel data (see ``models.Instance``)."""

    transfer_syntax_uid: str
    offset: int | None
    length: int | None
    rows: int | None
    columns: int | None
    bits_allocated: int | None
    number_of_frames: int | None

    @property
    def encapsulated(self) -> bool:
        return self.length == -1


@dataclass(frozen=True)
class FrameLayout:
    """The geometry of native frames, enough to find each one in the value."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    number_of_frames: int
    # Native YBR_FULL_422 stores two samples per pixel, not three (PS3.3 C.7.6.3.1.2).
    subsampled: bool = False

    @property
    def frame_bits(self) -> int:
        samples = 2 if self.subsampled else self.samples_per_pixel
        return self.rows * self.columns * samples * self.bits_allocated

    def value_length(self) -> int:
        """The even length in bytes of a Pixel Data value holding all frames."""
        length = (self.frame_bits * self.number_of_frames + 7) // 8
        return length + length % 2

    @classmethod
    def from_dataset(cls, ds: Dataset) -> FrameLayout:
        missing = [k for k in ("Rows", "Columns", "BitsAllocated") if k not in ds]
        if missing:
            raise FrameError(f"the instance has pixel data but no {', '.join(missing)}")
        return cls(
            rows=int(ds.Rows),
            columns=int(ds.Columns),
            samples_per_pixel=int(ds.get("SamplesPerPixel", 1)),
            bits_allocated=int(ds.BitsAllocated),
            number_of_frames=_number_of_frames(ds.get("NumberOfFrames")),
            subsampled=ds.get("PhotometricInterpretation") == YBR_FULL_422,
        )


def _number_of_frames(value: Any) -> int:
    """Number of Frames as an int; absent, empty or zero means one frame."""
    try:
        return max(int(value), 1)
    except (TypeError, ValueError):
        return 1


class PixelDataReader:
    """The frames of one stored instance, read from its open file.

    ``frame`` returns a frame as stored: native data as little endian bytes (bit-packed
    frames of BitsAllocated 1 re-aligned to start at bit 0), encapsulated data as the
    frame's compressed bitstream. ``decoded_frame`` decodes compressed frames.
    The caller owns ``fp`` and closes it.
    """

    def __init__(self, fp: BinaryIO, stored: StoredPixelData) -> None:
        self._fp = fp
        self._stored = stored
        self.transfer_syntax_uid = UID(stored.transfer_syntax_uid)
        self._offset = stored.offset
        self._length = stored.length
        self._layout: FrameLayout | None = None
        self._word_size = 1
        self._fragments: list[tuple[int, int]] | None = None
        if stored.offset is None:
            self._load_parsed()
        elif not stored.encapsulated:
            self._layout = self._native_layout()
            self._word_size = self._big_endian_word_size()

    # -- what kind of data ------------------------------------------------------------

    @property
    def encapsulated(self) -> bool:
        return self._length == -1

    @property
    def number_of_frames(self) -> int:
        if self._layout is not None:
            return self._layout.number_of_frames
        return _number_of_frames(self._stored.number_of_frames)

    @property
    def layout(self) -> FrameLayout | None:
        """The native frame geometry; None for encapsulated data."""
        return self._layout

    def check_frame_numbers(self, numbers: Sequence[int]) -> None:
        """Raise FrameNotFoundError for the first 1-based number out of range.

        Native frames must also lie within the stored value (FrameError if the file is
        truncated), so that no response fails after it has started.
        """
        count = self.number_of_frames
        for number in numbers:
            if not 1 <= number <= count:
                raise FrameNotFoundError(number, count)
        if self._layout is not None and numbers:
            self._check_within_value(max(numbers) - 1)

    # -- frames -------------------------------------------------------------------------

    def frame(self, index: int) -> bytes:
        """Frame ``index`` (0-based) as stored: native little endian, or compressed."""
        if index < 0 or index >= self.number_of_frames:
            raise FrameNotFoundError(index + 1, self.number_of_frames)
        if self.encapsulated:
            return self._encapsulated_frame(index)
        return self._native_frame(index)

    def decoded_frame(self, index: int) -> bytes:
        """Frame ``index`` as native little endian bytes, decoding compressed data.

        Colour is returned as RGB (YBR is converted), as pydicom's ``decompress`` does,
        so the bytes match a decompressed copy of the instance.
        """
        if not self.encapsulated:
            return self.frame(index)
        if index < 0 or index >= self.number_of_frames:
            raise FrameNotFoundError(index + 1, self.number_of_frames)
        if not can_decode(self.transfer_syntax_uid):
            raise NoDecoderError(self.transfer_syntax_uid)
        self._fp.seek(0)
        arr = pixel_array(self._fp, index=index)
        return little_endian_bytes(arr)

    def value_chunks(self) -> Iterator[bytes]:
        """The whole native Pixel Data value as little endian bytes, in chunks."""
        if self.encapsulated:
            raise FrameError("encapsulated pixel data has no native value; ask for its frames")
        assert self._offset is not None and self._length is not None
        position = 0
        while position < self._length:
            size = min(READ_CHUNK, self._length - position)
            yield self._read_value(position, size)
            position += size

    def fragments(self) -> Iterator[bytes]:
        """Every fragment of encapsulated data in order (a video's bitstream)."""
        assert self._offset is not None
        self._fp.seek(self._offset)
        parse_basic_offsets(self._fp)
        yield from generate_fragments(self._fp)

    # -- native ------------------------------------------------------------------------

    def _native_layout(self) -> FrameLayout:
        """The layout from the index when it accounts for the value length exactly.

        Samples per Pixel is not indexed; the value length tells it. When no choice fits
        (odd files), the Image Pixel group of the header is read instead.
        """
        stored = self._stored
        if stored.rows and stored.columns and stored.bits_allocated:
            for samples, subsampled in SAMPLE_CHOICES:
                layout = FrameLayout(
                    stored.rows,
                    stored.columns,
                    samples,
                    stored.bits_allocated,
                    _number_of_frames(stored.number_of_frames),
                    subsampled,
                )
                if layout.value_length() == self._length:
                    return layout
        return FrameLayout.from_dataset(self._image_pixel_header())

    def _image_pixel_header(self) -> Dataset:
        """The header up to the end of group 0028, where the Image Pixel module is."""
        self._fp.seek(0)
        return read_partial(
            self._fp,
            stop_when=lambda tag, vr, length: tag.group > IMAGE_PIXEL_GROUP,
            defer_size=DEFER_SIZE,
        )

    def _big_endian_word_size(self) -> int:
        """Bytes per word to swap when the stored value is big endian (1: no swap)."""
        if self.transfer_syntax_uid != ExplicitVRBigEndian or self._layout is None:
            return 1
        if self._layout.bits_allocated > 8:
            return self._layout.bits_allocated // 8
        assert self._offset is not None
        self._fp.seek(self._offset - 8)  # explicit VR: tag, VR, reserved, length, value
        vr = self._fp.read(2).decode("ascii", "replace")
        return WORD_SIZE.get(vr, 1)  # 8-bit samples in OW words are swapped pairwise

    def _native_frame(self, index: int) -> bytes:
        layout = self._layout
        assert layout is not None and self._length is not None
        start_bit = index * layout.frame_bits
        end_bit = start_bit + layout.frame_bits
        self._check_within_value(index)
        if start_bit % 8 == 0 and end_bit % 8 == 0:
            return self._read_value(start_bit // 8, layout.frame_bits // 8)
        first, last = start_bit // 8, (end_bit + 7) // 8
        data = self._read_value(first, last - first)
        return repack_bits(data, start_bit % 8, layout.frame_bits)

    def _check_within_value(self, index: int) -> None:
        assert self._layout is not None and self._length is not None
        if (index + 1) * self._layout.frame_bits > self._length * 8:
            raise FrameError(
                f"frame {index + 1} lies beyond the end of the Pixel Data value "
                f"({self._length} bytes); the file does not match its Rows, Columns, "
                "Samples per Pixel, Bits Allocated and Number of Frames"
            )

    def _read_value(self, position: int, size: int) -> bytes:
        """``size`` bytes of the value from ``position``, swapped to little endian."""
        assert self._offset is not None and self._length is not None
        unit = self._word_size
        start = position - position % unit
        end = min(-(-(position + size) // unit) * unit, self._length)
        self._fp.seek(self._offset + start)
        data = self._fp.read(end - start)
        if len(data) != end - start:
            raise FrameError("the stored file is shorter than its Pixel Data length says")
        if unit > 1:
            data = swap_words(data, unit)
        return data[position - start : position - start + size]

    # -- encapsulated ------------------------------------------------------------------

    def _encapsulated_frame(self, index: int) -> bytes:
        assert self._offset is not None
        fp = self._fp
        count = self.number_of_frames
        fp.seek(self._offset)
        if count == 1:
            parse_basic_offsets(fp)
            return b"".join(generate_fragments(fp))
        if not self._has_basic_offsets():
            fragments = self._fragment_positions()
            if len(fragments) == count:  # one fragment per frame, as always with an EOT
                position, length = fragments[index]
                fp.seek(position)
                return fp.read(length)
        # Offsets, or several fragments per frame without them: pydicom finds the frame
        # (by its offset, else by JPEG/JPEG 2000 markers).
        fp.seek(self._offset)
        try:
            return get_frame(fp, index, number_of_frames=count)
        except ValueError as exc:
            raise FrameError(f"frame {index + 1} cannot be read: {exc}") from exc

    def _has_basic_offsets(self) -> bool:
        assert self._offset is not None
        self._fp.seek(self._offset)
        group, element, length = struct.unpack("<HHI", self._fp.read(8))
        if group << 16 | element != ITEM_TAG:
            raise FrameError("encapsulated Pixel Data does not start with a Basic Offset Table")
        return length > 0

    def _fragment_positions(self) -> list[tuple[int, int]]:
        """(file position, length) of each fragment, read from item headers only."""
        if self._fragments is None:
            assert self._offset is not None
            fp = self._fp
            fp.seek(self._offset + 4)
            (table_length,) = struct.unpack("<I", fp.read(4))
            fp.seek(table_length, io.SEEK_CUR)
            fragments = []
            while header := fp.read(8):
                group, element, length = struct.unpack("<HHI", header)
                tag = group << 16 | element
                if tag != ITEM_TAG:
                    break
                fragments.append((fp.tell(), length))
                fp.seek(length, io.SEEK_CUR)
            self._fragments = fragments
        return self._fragments

    # -- files the index cannot locate in ----------------------------------------------

    def _load_parsed(self) -> None:
        """Parse the whole file (deflated, or Float Pixel Data) and read from memory."""
        self._fp.seek(0)
        ds = dcmread(self._fp)
        element = next((ds[tag] for tag in PIXEL_DATA_TAGS if tag in ds), None)
        if element is None or element.value is None:
            raise NoPixelDataError("the instance has no pixel data")
        value = bytes(element.value)
        big_endian = not ds.original_encoding[1]
        self._fp = io.BytesIO(value)
        self._offset = 0
        self._length = -1 if element.is_undefined_length else len(value)
        if self.transfer_syntax_uid == DeflatedExplicitVRLittleEndian:
            self.transfer_syntax_uid = ExplicitVRLittleEndian
        if self._length != -1:
            self._layout = FrameLayout.from_dataset(ds)
            if big_endian:
                bits = self._layout.bits_allocated
                self._word_size = bits // 8 if bits > 8 else WORD_SIZE.get(str(element.VR), 1)


def open_pixel_data(fp: BinaryIO, stored: StoredPixelData) -> PixelDataReader:
    """A reader for the pixel data of an open stored file; NoPixelDataError if none."""
    if stored.rows is None and stored.offset is None:
        raise NoPixelDataError("the instance has no pixel data (no Rows)")
    return PixelDataReader(fp, stored)


def repack_bits(data: bytes, bit_offset: int, bit_count: int) -> bytes:
    """``bit_count`` bits starting at ``bit_offset`` of ``data``, moved to start at bit 0.

    DICOM packs 1-bit pixels least significant bit first (PS3.5 8.1.1), so bit order
    'little' is used both ways; the last byte is zero-padded.
    """
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    return np.packbits(bits[bit_offset : bit_offset + bit_count], bitorder="little").tobytes()


def swap_words(data: bytes, word_size: int) -> bytes:
    """Reverse the byte order of each ``word_size``-byte word (big to little endian)."""
    usable = len(data) - len(data) % word_size
    swapped = np.frombuffer(data[:usable], dtype=f">u{word_size}").astype(f"<u{word_size}")
    return swapped.tobytes() + data[usable:]


def little_endian_bytes(arr: np.ndarray) -> bytes:
    """A decoded array's samples as little endian bytes, in C (row, column, sample) order."""
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def decode_frame(
    fp: BinaryIO, transfer_syntax_uid: str, index: int, tags: Sequence[int] = ()
) -> tuple[np.ndarray, Dataset]:
    """Decode one frame (0-based) and the header elements needed to display it.

    The header holds group 0028 and ``tags``; the file is read once. YBR colour comes
    back as RGB. Deflated files are inflated and parsed whole.
    """
    fp.seek(0)
    if transfer_syntax_uid == DeflatedExplicitVRLittleEndian:
        ds = dcmread(fp)
        return pixel_array(ds, index=index), ds
    if transfer_syntax_uid not in NATIVE_SYNTAXES and not can_decode(transfer_syntax_uid):
        raise NoDecoderError(transfer_syntax_uid)
    header = Dataset()
    arr = pixel_array(fp, ds_out=header, specific_tags=list(tags), index=index)
    return arr, header


# -- bulk data -----------------------------------------------------------------------


@dataclass(frozen=True)
class BulkDataPath:
    """A BulkDataURI tag path: sequence steps ``(tag, item index)`` then the element tag."""

    steps: tuple[tuple[int, int], ...]
    tag: int

    @classmethod
    def parse(cls, text: str) -> BulkDataPath:
        """Parse '7FE00010' or '00540016/0/00181072'; ValueError names what is wrong."""
        parts = text.strip("/").split("/")
        if len(parts) % 2 == 0:
            raise ValueError(f"bulk data path {text!r} must end with a tag")
        tags = [_parse_tag(part, text) for part in parts[0::2]]
        indexes = [_parse_index(part, text) for part in parts[1::2]]
        return cls(tuple(zip(tags[:-1], indexes, strict=True)), tags[-1])

    @property
    def is_pixel_data(self) -> bool:
        return not self.steps and self.tag == PIXEL_DATA

    def __str__(self) -> str:
        steps = "".join(f"{tag:08X}/{index}/" for tag, index in self.steps)
        return f"{steps}{self.tag:08X}"


def _parse_tag(part: str, text: str) -> int:
    if len(part) != 8:
        raise ValueError(f"bulk data path {text!r}: {part!r} is not an 8-digit hex tag")
    try:
        return int(part, 16)
    except ValueError:
        raise ValueError(f"bulk data path {text!r}: {part!r} is not an 8-digit hex tag") from None


def _parse_index(part: str, text: str) -> int:
    if not part.isdigit():
        raise ValueError(f"bulk data path {text!r}: item index {part!r} is not a number")
    return int(part)


@dataclass(frozen=True)
class BulkValue:
    """A binary element's value, in memory or as a range of the stored file."""

    vr: str
    data: bytes | None  # None: read ``length`` bytes from ``position`` of the file
    position: int
    length: int
    word_size: int  # swap to little endian in words of this size (1: none)
    encapsulated: bool
    number_of_frames: int

    def chunks(self, fp: BinaryIO) -> Iterator[bytes]:
        """The value as little endian bytes in chunks of about 1 MiB."""
        if self.data is not None:
            source: BinaryIO = io.BytesIO(self.data)
            source_position = 0
        else:
            source, source_position = fp, self.position
        step = READ_CHUNK - READ_CHUNK % max(self.word_size, 1)
        done = 0
        while done < self.length:
            source.seek(source_position + done)
            chunk = source.read(min(step, self.length - done))
            if not chunk:
                raise FrameError("the stored file is shorter than the element's length")
            done += len(chunk)
            yield swap_words(chunk, self.word_size) if self.word_size > 1 else chunk

    def frames(self, fp: BinaryIO) -> Iterator[bytes]:
        """The compressed frames of an encapsulated value."""
        source = io.BytesIO(self.data) if self.data is not None else fp
        source.seek(0 if self.data is not None else self.position)
        yield from generate_frames(source, number_of_frames=self.number_of_frames)


def read_bulk_value(fp: BinaryIO, transfer_syntax_uid: str, path: BulkDataPath) -> BulkValue:
    """Find the element at ``path`` by parsing the header; large values stay on disk."""
    deflated = transfer_syntax_uid == DeflatedExplicitVRLittleEndian
    fp.seek(0)
    ds = dcmread(
        fp,
        defer_size=None if deflated else DEFER_SIZE,
        stop_before_pixels=path.steps == () and path.tag < PIXEL_DATA,
    )
    big_endian = not ds.original_encoding[1]
    container = _follow(ds, path)
    if path.tag not in container:
        raise BulkDataNotFoundError(f"the instance has no element at bulk data path {path}")
    raw = container.get_item(BaseTag(path.tag), keep_deferred=True)
    vr = element_vr(raw)
    if vr not in BULK_VRS:
        raise BulkDataNotFoundError(f"the element at {path} has VR {vr}, not bulk data")
    if isinstance(raw, RawDataElement):
        data, position = raw.value, int(raw.value_tell)
        undefined = raw.length == UNDEFINED_LENGTH
        length = len(data) if data is not None else int(raw.length)
    else:  # already converted by pydicom (e.g. read while following a sequence)
        data, position, undefined = bytes(raw.value or b""), 0, raw.is_undefined_length
        length = len(data)
    word_size = WORD_SIZE.get(vr, 1) if big_endian and not undefined else 1
    bits_allocated = int(container.get("BitsAllocated") or 0)
    if word_size > 1 and path.tag in PIXEL_DATA_TAGS and bits_allocated > 8 * word_size:
        word_size = bits_allocated // 8
    return BulkValue(
        vr=vr,
        data=data,
        position=position,
        length=length,
        word_size=word_size,
        encapsulated=undefined,
        number_of_frames=_number_of_frames(container.get("NumberOfFrames")),
    )


def _follow(ds: Dataset, path: BulkDataPath) -> Dataset:
    """The item holding the element at ``path``; BulkDataNotFoundError if a step is absent."""
    current = ds
    for tag, index in path.steps:
        element = current.get(BaseTag(tag))
        items = element.value if element is not None and element.VR == "SQ" else None
        if not items or index >= len(items):
            raise BulkDataNotFoundError(f"the instance has no item {index} in sequence {tag:08X}")
        current = items[index]
    return current


def explicit_little_endian(fp: BinaryIO) -> bytes:
    """The stored instance re-encoded as Explicit VR Little Endian, decoding if compressed.

    For clients that ask for 1.2.840.10008.1.2.1 when the file is stored otherwise; the
    SOP Instance UID is kept. Raises NoDecoderError when compressed data cannot be decoded.
    """
    fp.seek(0)
    ds = dcmread(fp)
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if syntax not in NATIVE_SYNTAXES and "PixelData" in ds:
        if not can_decode(syntax):
            raise NoDecoderError(syntax)
        ds.decompress(generate_instance_uid=False)
    elif syntax == ExplicitVRBigEndian:
        _swap_binary_values(ds)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)  # save_as() refuses to change endianness
    return out.getvalue()


def _swap_binary_values(ds: Dataset) -> None:
    """pydicom writes OW/OL/OF/OD/OV bytes as read; big endian words must be turned."""
    bits_allocated = int(ds.get("BitsAllocated") or 0)

    def swap(dataset: Dataset, element: DataElement) -> None:
        word_size = WORD_SIZE.get(str(element.VR))
        if not word_size or not isinstance(element.value, bytes | bytearray):
            return
        if element.tag in PIXEL_DATA_TAGS and bits_allocated > 8 * word_size:
            word_size = bits_allocated // 8
        element.value = swap_words(bytes(element.value), word_size)

    ds.walk(swap)
