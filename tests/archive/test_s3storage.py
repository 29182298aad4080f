"""S3 storage: what only S3 does, and the archive on S3 end to end (ingest, read, fsck,
crash recovery), against moto's S3 server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pydicom
import pytest
from sqlalchemy import select

from pacsflow.archive.archive import Archive
from pacsflow.archive.frames import open_pixel_data
from pacsflow.archive.fsck import fsck
from pacsflow.archive.ingest import Outcome, Source, SourceKind
from pacsflow.archive.models import Instance
from pacsflow.archive.s3storage import S3Storage
from pacsflow.archive.storage import FileStorage, object_key
from pacsflow.settings import Settings, SettingsError, load_settings
from tests.archive.conftest import REGION, S3Bucket
from tests.archive.test_frames import ingest, pydicom_file, stored_pixels
from tests.live_server import ADMIN_PASSWORD

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

KEY = object_key("1.2", "1.2.3", "1.2.3.4")
MIB = 1024 * 1024


def s3_client(bucket: S3Bucket) -> S3Client:
    return boto3.client("s3", endpoint_url=bucket.endpoint_url, region_name=REGION)


def s3_storage(bucket: S3Bucket, tmp_path: Path, **options: int) -> S3Storage:
    return S3Storage(
        bucket.name,
        "archive",
        tmp_path / "staging",
        endpoint_url=bucket.endpoint_url,
        region=REGION,
        **options,
    )


def staged_file(storage: S3Storage, data: bytes) -> Path:
    staged = storage.staging_file()
    staged.write_bytes(data)
    return staged


def test_big_objects_go_in_parts_and_never_clobber(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    storage = s3_storage(s3_bucket, tmp_path, part_size=5 * MIB)
    first, second = os.urandom(11 * MIB), os.urandom(11 * MIB)
    assert storage.place(staged_file(storage, first), KEY)
    etag = s3_client(s3_bucket).head_object(Bucket=s3_bucket.name, Key=f"archive/{KEY}")["ETag"]
    assert etag.endswith('-3"')  # a multipart upload of three parts
    assert not storage.place(staged_file(storage, second), KEY)
    assert storage.open(KEY).read() == first
    assert storage.place(staged_file(storage, second), KEY, replace=True)
    assert storage.open(KEY).read() == second
    uploads = s3_client(s3_bucket).list_multipart_uploads(Bucket=s3_bucket.name)
    assert uploads.get("Uploads", []) == []  # the refused one was aborted


def test_a_read_never_mixes_two_versions(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    storage = s3_storage(s3_bucket, tmp_path)
    storage.place(staged_file(storage, b"a" * 3 * MIB), KEY)
    with storage.open(KEY) as fp:
        assert fp.read(10) == b"a" * 10
        storage.place(staged_file(storage, b"b" * 3 * MIB), KEY, replace=True)
        fp.seek(2 * MIB)  # beyond what was fetched: a new request, for the old version
        with pytest.raises(OSError, match="PreconditionFailed"):
            fp.read(10)


def test_only_the_archive_prefix_is_listed(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    storage = s3_storage(s3_bucket, tmp_path)
    storage.place(staged_file(storage, b"x"), KEY)
    client = s3_client(s3_bucket)
    for other in (f"elsewhere/{KEY}", "archive/README.txt", "archive/1.2/notes.dcm"):
        client.put_object(Bucket=s3_bucket.name, Key=other, Body=b"not ours")
    assert list(storage.iter_keys()) == [KEY]


def test_s3_failures_are_os_errors_naming_the_object(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    """Ingest turns OSError into an 'out of resources' status and keeps nothing."""
    storage = s3_storage(s3_bucket, tmp_path)
    s3_client(s3_bucket).delete_bucket(Bucket=s3_bucket.name)
    with pytest.raises(OSError, match=f"storing {KEY}: S3 answered NoSuchBucket"):
        storage.place(staged_file(storage, b"x"), KEY)
    with pytest.raises(OSError, match="listing the bucket"):
        list(storage.iter_keys())


def test_an_unusable_bucket_stops_the_start(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    with pytest.raises(OSError, match="S3 bucket 'absent'.*PACSFLOW_STORAGE_URL"):
        S3Storage("absent", "", tmp_path, endpoint_url=s3_bucket.endpoint_url, region=REGION)


def test_storage_settings_are_checked() -> None:
    for values, message in (
        ({"storage_url": "/var/lib/pacsflow"}, "PACSFLOW_STORAGE_URL: must be s3://BUCKET"),
        ({"storage_url": "s3://A_Bucket"}, "PACSFLOW_STORAGE_URL: must be s3://BUCKET"),
        ({"s3_endpoint_url": "minio:9000", "storage_url": "s3://bucket"}, "must be an http://"),
        ({"s3_region": "eu-west-1"}, "PACSFLOW_S3_REGION is only used with S3 storage"),
        ({"s3_endpoint_url": "http://m:9000"}, "PACSFLOW_S3_ENDPOINT_URL is only used with S3"),
        (
            {"storage_url": "s3://bucket", "storage_path": "/srv"},
            "PACSFLOW_STORAGE_PATH and PACSFLOW_STORAGE_URL are both set",
        ),
    ):
        with pytest.raises(SettingsError, match=message):
            load_settings(**values)
    assert load_settings(storage_url="s3://bucket/a/prefix/").storage_url == "s3://bucket/a/prefix"


@pytest.fixture
def s3_settings(tmp_path: Path, database_url: str, s3_bucket: S3Bucket) -> Settings:
    return load_settings(
        home=tmp_path / "home",
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        storage_url=s3_bucket.url,
        s3_endpoint_url=s3_bucket.endpoint_url,
        s3_region=REGION,
    )


@pytest.fixture
def s3_archive(s3_settings: Settings) -> Iterator[Archive]:
    archive = Archive(s3_settings)
    archive.migrate()
    yield archive
    archive.close()


def test_the_archive_uses_the_configured_backend(s3_archive: Archive, tmp_path: Path) -> None:
    assert isinstance(s3_archive.storage, S3Storage)
    assert s3_archive.storage.staging_root == tmp_path / "home" / "staging"
    files = Archive(load_settings(home=tmp_path / "files"))
    assert isinstance(files.storage, FileStorage)
    assert files.storage.root == tmp_path / "files" / "storage"
    files.close()


def store(archive: Archive, data: bytes) -> Outcome:
    staged = archive.storage.staging_file()
    staged.write_bytes(data)
    return archive.ingest(staged, Source(SourceKind.IMPORT)).outcome


def test_ingest_on_s3_stores_byte_exact(
    s3_archive: Archive, s3_bucket: S3Bucket, shared_data: Path
) -> None:
    paths = sorted((shared_data / "dcmqi-seg" / "ct-3slice").glob("*")) + [
        shared_data / "dcmqi-seg" / "liver.dcm"
    ]
    for path in paths:
        assert store(s3_archive, path.read_bytes()) == Outcome.STORED
    assert store(s3_archive, paths[0].read_bytes()) == Outcome.DUPLICATE
    with s3_archive.sessions() as session:
        rows = session.execute(select(Instance.sop_instance_uid, Instance.storage_key))
        stored = {uid: key for uid, key in rows}
    assert len(stored) == len(paths)
    client = s3_client(s3_bucket)
    for path in paths:
        key = stored[pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID]
        assert s3_archive.storage.open(key).read() == path.read_bytes()
        body = client.get_object(Bucket=s3_bucket.name, Key=f"archive/{key}")["Body"].read()
        assert body == path.read_bytes()  # in the bucket, under the prefix, as sent
    assert list(s3_archive.storage.staging_dir.iterdir()) == []  # every staged file consumed
    assert fsck(s3_archive, verify=True).ok


@pytest.mark.parametrize("name", ["emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm"])
def test_frames_are_read_from_s3_as_from_the_file(s3_archive: Archive, name: str) -> None:
    """WADO's frame reader seeks about the object: native and encapsulated pixel data."""
    path = pydicom_file(name)
    instance = ingest(s3_archive, path.read_bytes())
    with s3_archive.storage.open(instance.storage_key) as remote, open(path, "rb") as local:
        from_s3 = open_pixel_data(remote, stored_pixels(instance))
        from_file = open_pixel_data(local, stored_pixels(instance))
        assert from_s3.number_of_frames == from_file.number_of_frames == 10
        for index in reversed(range(10)):
            assert from_s3.frame(index) == from_file.frame(index)


def test_fsck_on_s3_finds_changed_and_orphaned_objects(
    s3_archive: Archive, s3_bucket: S3Bucket, shared_data: Path
) -> None:
    paths = sorted((shared_data / "dcmqi-seg" / "ct-3slice").glob("*"))[:2]
    for path in paths:
        store(s3_archive, path.read_bytes())
    changed, kept = sorted(s3_archive.storage.iter_keys())
    data = s3_archive.storage.open(changed).read()
    client = s3_client(s3_bucket)
    client.put_object(
        Bucket=s3_bucket.name, Key=f"archive/{changed}", Body=data[:-1] + bytes([data[-1] ^ 1])
    )
    orphan = kept.rsplit("/", 1)[0] + "/1.2.3.dcm"
    client.put_object(Bucket=s3_bucket.name, Key=f"archive/{orphan}", Body=b"left by a crash")
    report = fsck(s3_archive, verify=True)
    assert report.digest_mismatches == [changed] and report.orphan_files == [orphan]


def test_recovery_on_s3_removes_what_a_crash_placed_but_never_indexed(
    s3_archive: Archive, shared_data: Path
) -> None:
    indexed, orphan = sorted((shared_data / "dcmqi-seg" / "ct-3slice").glob("*"))[:2]
    assert store(s3_archive, indexed.read_bytes()) == Outcome.STORED
    crashed = Archive(s3_archive.settings)
    staged = crashed.storage.staging_file()
    staged.write_bytes(orphan.read_bytes())
    ds = pydicom.dcmread(orphan, stop_before_pixels=True)
    crashed.storage.place(
        staged, object_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    )
    assert isinstance(crashed.storage, S3Storage)
    os.close(crashed.storage._lock_fd)  # the kernel's part when the process is killed

    assert s3_archive.recover() == 2  # the staged file and the object placed from it
    assert len(list(s3_archive.storage.iter_keys())) == 1
    assert fsck(s3_archive, verify=True).ok
