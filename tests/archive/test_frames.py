"""Frames and bulk data read from stored files match what pydicom decodes from the same file."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import pack_bits, pixel_array
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    SegmentationStorage,
    generate_uid,
)
from sqlalchemy import select

from pacsflow.archive.archive import Archive
from pacsflow.archive.frames import (
    WORD_SIZE,
    BulkDataNotFoundError,
    BulkDataPath,
    FrameError,
    FrameNotFoundError,
    NoPixelDataError,
    PixelDataReader,
    StoredPixelData,
    decode_frame,
    explicit_little_endian,
    little_endian_bytes,
    open_pixel_data,
    read_bulk_value,
    repack_bits,
    swap_words,
)
from pacsflow.archive.ingest import Source, SourceKind
from pacsflow.archive.models import Instance
from tests.conftest import SHARED_DATA

IMAGE_PIXEL_KEYWORDS = (
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "PlanarConfiguration",
)

NATIVE = [
    "CT_small.dcm",  # CT, 16-bit signed
    "emri_small.dcm",  # multi-frame MR
    "SC_rgb_2frame.dcm",  # multi-frame RGB
    "color-pl.dcm",  # US RGB, planar configuration 1
    "examples_rgb_color.dcm",  # US RGB
    "SC_ybr_full_422_uncompressed.dcm",  # subsampled: two samples per pixel
    "rtdose.dcm",  # 32-bit multi-frame, implicit VR
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",  # big endian: byte-swapped to little endian
    "emri_small_big_endian.dcm",
    "SC_rgb_expb_32bit_2frame.dcm",
    "OBXXXX1A_expb_2frame.dcm",  # 8-bit samples in big endian OW words
    "SC_rgb_small_odd_big_endian.dcm",  # odd frame length in OW words
    "liver_expb.dcm",  # BitsAllocated 1, big endian
    "image_dfl.dcm",  # deflated: parsed
]
COMPRESSED = [
    "SC_rgb_jpeg_lossy_gdcm.dcm",  # JPEG baseline
    "examples_ybr_color.dcm",  # JPEG baseline, 30 frames with a Basic Offset Table
    "JPGExtended.dcm",  # JPEG extended
    "SC_rgb_jpeg_gdcm.dcm",  # JPEG lossless SV1
    "JPEG-LL.dcm",
    "emri_small_jpeg_2k_lossless.dcm",  # JPEG 2000, 10 frames, empty offset table
    "US1_J2KR.dcm",
    "emri_small_jpeg_ls_lossless.dcm",  # JPEG-LS
    "emri_small_RLE.dcm",  # RLE
    "SC_rgb_rle_2frame.dcm",
]


def pydicom_file(name: str) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Path(get_testdata_file(name))  # type: ignore[arg-type]


def ingest(archive: Archive, data: bytes) -> Instance:
    result = archive.ingest_stream(io.BytesIO(data), Source(SourceKind.IMPORT))
    with archive.sessions() as session:
        instance = session.execute(
            select(Instance).where(Instance.sop_instance_uid == result.sop_instance_uid)
        ).scalar_one()
        session.expunge(instance)
    return instance


def stored_pixels(instance: Instance) -> StoredPixelData:
    return StoredPixelData(
        transfer_syntax_uid=instance.transfer_syntax_uid,
        offset=instance.pixel_data_offset,
        length=instance.pixel_data_length,
        rows=instance.rows,
        columns=instance.columns,
        bits_allocated=instance.bits_allocated,
        number_of_frames=instance.number_of_frames,
    )


@contextmanager
def reader_for(archive: Archive, instance: Instance) -> Iterator[PixelDataReader]:
    with archive.storage.open(instance.storage_key) as fp:
        yield open_pixel_data(fp, stored_pixels(instance))


def single_frame_dataset(ds: Dataset, frame: bytes, compressed: bool) -> Dataset:
    """A one-frame data set holding ``frame`` with ``ds``'s pixel description."""
    single = Dataset()
    single.file_meta = FileMetaDataset()
    single.file_meta.TransferSyntaxUID = (
        ds.file_meta.TransferSyntaxUID if compressed else ExplicitVRLittleEndian
    )
    for keyword in IMAGE_PIXEL_KEYWORDS:
        if keyword in ds:
            setattr(single, keyword, ds[keyword].value)
    single.NumberOfFrames = 1
    single.PixelData = encapsulate([frame]) if compressed else frame
    single["PixelData"].VR = "OB" if compressed else "OW"
    return single


def frame_count(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames") or 1)


def unaligned_bit_frames() -> tuple[bytes, np.ndarray]:
    """A SEG-like file of 5x7 1-bit frames: frames 2 and 3 start mid-byte."""
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 2, size=(3, 5, 7), dtype=np.uint8)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SegmentationStorage
    ds.SOPClassUID = SegmentationStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "SEG"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 5, 7, 3
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    ds.PixelData = pack_bits(frames)
    ds["PixelData"].VR = "OB"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue(), frames


def multi_fragment_jpeg(basic_offsets: bool) -> bytes:
    """Three JPEG frames split into two fragments each, with or without offsets."""
    ds = pydicom.dcmread(pydicom_file("examples_ybr_color.dcm"))
    frames = list(generate_frames(ds.PixelData, number_of_frames=frame_count(ds)))[:3]
    ds.PixelData = encapsulate(frames, fragments_per_frame=2, has_bot=basic_offsets)
    ds.NumberOfFrames = 3
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


@pytest.mark.parametrize("name", NATIVE)
def test_native_frames_are_the_stored_pixels_in_little_endian(archive: Archive, name: str) -> None:
    path = pydicom_file(name)
    ds = pydicom.dcmread(path)
    instance = ingest(archive, path.read_bytes())
    with reader_for(archive, instance) as reader:
        assert not reader.encapsulated
        assert reader.number_of_frames == frame_count(ds)
        for index in range(reader.number_of_frames):
            frame = reader.frame(index)
            assert reader.decoded_frame(index) == frame
            decoded = pixel_array(single_frame_dataset(ds, frame, compressed=False), raw=True)
            expected = pixel_array(ds, index=index, raw=True)
            np.testing.assert_array_equal(decoded, expected, err_msg=f"{name} frame {index + 1}")


def test_one_bit_frames_from_shared_data_unpack_to_pydicom_frames(archive: Archive) -> None:
    path = SHARED_DATA / "dcmqi-seg" / "liver.dcm"
    ds = pydicom.dcmread(path)
    instance = ingest(archive, path.read_bytes())
    with reader_for(archive, instance) as reader:
        for index in range(frame_count(ds)):
            frame = reader.frame(index)
            assert len(frame) == ds.Rows * ds.Columns // 8
            bits = np.unpackbits(np.frombuffer(frame, np.uint8), bitorder="little")
            expected = pixel_array(ds, index=index)
            np.testing.assert_array_equal(bits.reshape(expected.shape), expected)


def test_one_bit_frames_starting_mid_byte_are_repacked_to_bit_zero(archive: Archive) -> None:
    data, frames = unaligned_bit_frames()
    instance = ingest(archive, data)
    with reader_for(archive, instance) as reader:
        for index, expected in enumerate(frames):
            frame = reader.frame(index)
            assert len(frame) == 5  # 35 bits, zero-padded to whole bytes
            bits = np.unpackbits(np.frombuffer(frame, np.uint8), bitorder="little")
            np.testing.assert_array_equal(bits[:35].reshape(5, 7), expected)
            assert not bits[35:].any()


@pytest.mark.parametrize("name", COMPRESSED)
def test_compressed_frames_are_bitstreams_that_decode_to_pydicom_frames(
    archive: Archive, name: str
) -> None:
    path = pydicom_file(name)
    ds = pydicom.dcmread(path)
    instance = ingest(archive, path.read_bytes())
    with reader_for(archive, instance) as reader:
        assert reader.encapsulated
        assert reader.number_of_frames == frame_count(ds)
        for index in range(reader.number_of_frames):
            expected = pixel_array(ds, index=index)
            single = single_frame_dataset(ds, reader.frame(index), compressed=True)
            np.testing.assert_array_equal(pixel_array(single), expected, err_msg=name)
            assert reader.decoded_frame(index) == little_endian_bytes(expected)


@pytest.mark.parametrize("basic_offsets", [True, False])
def test_frames_split_into_several_fragments(archive: Archive, basic_offsets: bool) -> None:
    data = multi_fragment_jpeg(basic_offsets)
    ds = pydicom.dcmread(io.BytesIO(data))
    instance = ingest(archive, data)
    expected = list(generate_frames(ds.PixelData, number_of_frames=3))
    with reader_for(archive, instance) as reader:
        assert [reader.frame(i) for i in (2, 0, 1)] == [expected[i] for i in (2, 0, 1)]


def test_frame_numbers_are_checked(archive: Archive) -> None:
    instance = ingest(archive, pydicom_file("emri_small.dcm").read_bytes())
    with reader_for(archive, instance) as reader:
        reader.check_frame_numbers([1, 10, 3])
        with pytest.raises(FrameNotFoundError, match="frame 11 does not exist.*10 frame"):
            reader.check_frame_numbers([1, 11])
        with pytest.raises(FrameNotFoundError):
            reader.frame(10)


def test_pixel_data_shorter_than_its_frames_is_reported_before_reading(archive: Archive) -> None:
    ds = pydicom.dcmread(pydicom_file("emri_small.dcm"))
    ds.PixelData = ds.PixelData[: 9 * 64 * 64 * 2 + 100]  # nine and a bit frames of ten
    out = io.BytesIO()
    ds.save_as(out)
    instance = ingest(archive, out.getvalue())
    with reader_for(archive, instance) as reader:
        reader.check_frame_numbers([1, 9])
        with pytest.raises(FrameError, match="frame 10 lies beyond the end"):
            reader.check_frame_numbers([10])


def test_instances_without_pixel_data_have_no_frames(archive: Archive) -> None:
    instance = ingest(archive, pydicom_file("reportsi.dcm").read_bytes())
    with pytest.raises(NoPixelDataError), reader_for(archive, instance):
        pass


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_bigendian.dcm",
        "OBXXXX1A_expb_2frame.dcm",
        "gdcm-US-ALOKA-16_big.dcm",
        "MR_small_implicit.dcm",
        "image_dfl.dcm",
        "emri_small_jpeg_ls_lossless.dcm",
        "SC_rgb_jpeg_lossy_gdcm.dcm",
        "reportsi.dcm",
    ],
)
def test_explicit_little_endian_copy_keeps_every_value(name: str) -> None:
    path = pydicom_file(name)
    original = pydicom.dcmread(path)
    with open(path, "rb") as fp:
        converted = pydicom.dcmread(io.BytesIO(explicit_little_endian(fp)))
    assert converted.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert converted.SOPInstanceUID == original.SOPInstanceUID
    if "PixelData" in original:
        np.testing.assert_array_equal(converted.pixel_array, original.pixel_array)
    skip = {"PixelData", "PhotometricInterpretation", "LossyImageCompression"}
    skip |= {"LossyImageCompressionRatio", "LossyImageCompressionMethod"}
    big_endian = original.file_meta.TransferSyntaxUID == ExplicitVRBigEndian
    for element in original:
        if element.keyword in skip or element.tag.element == 0:
            continue
        expected = element.value
        if big_endian and element.VR in WORD_SIZE:
            expected = swap_words(expected, WORD_SIZE[element.VR])  # words turned around
        assert converted[element.tag].value == expected, element.keyword


def test_decode_frame_reads_one_frame_and_the_display_header(archive: Archive) -> None:
    for name in ("examples_ybr_color.dcm", "image_dfl.dcm", "emri_small_RLE.dcm"):
        path = pydicom_file(name)
        ds = pydicom.dcmread(path)
        index = frame_count(ds) - 1
        with open(path, "rb") as fp:
            arr, header = decode_frame(fp, ds.file_meta.TransferSyntaxUID, index)
        np.testing.assert_array_equal(arr, pixel_array(ds, index=index))
        assert header.Rows == ds.Rows and "PhotometricInterpretation" in header


def bulk_dataset() -> bytes:
    """A data set with a large top-level OB, a nested OB and a nested short string."""
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.EncapsulatedDocument = bytes(range(256)) * 20
    item = Dataset()
    item.CodeValue = "T-1"
    item.add_new(0x00091010, "OB", b"\x01\x02" * 1500)  # no private creator: raw OB
    ds.ReferencedImageSequence = Sequence([Dataset(), item])
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def test_bulk_values_are_found_by_their_path(archive: Archive) -> None:
    data = bulk_dataset()
    instance = ingest(archive, data)
    with archive.storage.open(instance.storage_key) as fp:
        top = read_bulk_value(fp, instance.transfer_syntax_uid, BulkDataPath.parse("00420011"))
        assert b"".join(top.chunks(fp)) == bytes(range(256)) * 20
        nested = read_bulk_value(
            fp, instance.transfer_syntax_uid, BulkDataPath.parse("00081140/1/00091010")
        )
        assert b"".join(nested.chunks(fp)) == b"\x01\x02" * 1500
        pixels = read_bulk_value(fp, instance.transfer_syntax_uid, BulkDataPath.parse("7FE00010"))
        assert b"".join(pixels.chunks(fp)) == pydicom.dcmread(io.BytesIO(data)).PixelData
        for path, message in (
            ("00081140/2/00091010", "no item 2"),
            ("00081140/1/00080100", "VR SH, not bulk"),
            ("00091011", "no element"),
        ):
            with pytest.raises(BulkDataNotFoundError, match=message):
                read_bulk_value(fp, instance.transfer_syntax_uid, BulkDataPath.parse(path))


def test_big_endian_bulk_words_are_sent_little_endian(archive: Archive) -> None:
    big = ingest(archive, pydicom_file("gdcm-US-ALOKA-16_big.dcm").read_bytes())
    little = pydicom.dcmread(pydicom_file("gdcm-US-ALOKA-16.dcm"))
    assert big.transfer_syntax_uid == ExplicitVRBigEndian
    path = BulkDataPath.parse("00281221")  # Segmented Red Palette Color LUT Data, OW
    with archive.storage.open(big.storage_key) as fp:
        value = read_bulk_value(fp, big.transfer_syntax_uid, path)
        assert value.word_size == 2
        assert b"".join(value.chunks(fp)) == little.SegmentedRedPaletteColorLookupTableData


@pytest.mark.parametrize(
    ("text", "steps", "tag"),
    [("7FE00010", (), 0x7FE00010), ("00540016/0/00181072", ((0x00540016, 0),), 0x00181072)],
)
def test_bulk_data_paths_parse(text: str, steps: tuple[tuple[int, int], ...], tag: int) -> None:
    path = BulkDataPath.parse(text)
    assert (path.steps, path.tag, str(path)) == (steps, tag, text)


@pytest.mark.parametrize("text", ["7FE0001", "00540016/0", "00540016/x/00181072", "GGGGGGGG"])
def test_malformed_bulk_data_paths_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bulk data path"):
        BulkDataPath.parse(text)


def test_repack_bits_and_swap_words() -> None:
    assert repack_bits(bytes([0b10110000, 0b00000001]), 4, 5) == bytes([0b00011011])
    assert swap_words(b"\x01\x02\x03\x04\x05", 2) == b"\x02\x01\x04\x03\x05"
    assert swap_words(b"\x01\x02\x03\x04", 4) == b"\x04\x03\x02\x01"


def with_jpeg_icon() -> tuple[bytes, bytes]:
    """CT_small with a JPEG icon (an encapsulated Pixel Data nested in a sequence)."""
    jpeg = pydicom.dcmread(pydicom_file("SC_rgb_jpeg_lossy_gdcm.dcm"))
    (frame,) = generate_frames(jpeg.PixelData, number_of_frames=1)
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = jpeg.file_meta.TransferSyntaxUID
    ds.PixelData = jpeg.PixelData  # the image itself in the same syntax
    ds["PixelData"].VR = "OB"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = jpeg.Rows, jpeg.Columns, 3
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PhotometricInterpretation, ds.PlanarConfiguration = "YBR_FULL_422", 0
    icon = Dataset()
    for keyword in IMAGE_PIXEL_KEYWORDS:
        if keyword in jpeg:
            setattr(icon, keyword, jpeg[keyword].value)
    icon.PixelData = encapsulate([frame])
    icon["PixelData"].VR = "OB"
    icon["PixelData"].is_undefined_length = True
    ds.IconImageSequence = Sequence([icon])
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue(), frame


def test_nested_encapsulated_bulk_data_yields_its_frames(archive: Archive) -> None:
    data, frame = with_jpeg_icon()
    instance = ingest(archive, data)
    assert '"00880200"' in instance.metadata_json
    with archive.storage.open(instance.storage_key) as fp:
        path = BulkDataPath.parse("00880200/0/7FE00010")
        value = read_bulk_value(fp, instance.transfer_syntax_uid, path)
        assert value.encapsulated
        assert list(value.frames(fp)) == [frame]
