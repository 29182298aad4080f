"""Object storage in an S3 bucket (AWS S3 or an S3-compatible server: MinIO, Ceph RGW...).

Objects stage in local files as for :class:`~pacsflow.archive.storage.FileStorage`, in the
same flock-held staging areas, and are uploaded on :meth:`S3Storage.place`:

- **No clobbering.** A placement that must not replace uses a conditional write
  (``If-None-Match: *``), so of two processes storing the same key only one succeeds,
  however far apart they run.
- **Durable when placed.** S3 answers a PUT (or the completion of a multipart upload)
  only once the whole object is stored, and a read after it sees it; so :meth:`sync`
  has nothing left to do.
- **Recovery without a local record.** Each object carries, in its metadata, the
  staged file it was uploaded from (staging area and file name, both random and unique
  in the staging root). Recovery asks ``unindexed_key`` for every abandoned staged file
  and removes the object under that key only if it still names that file (and, with
  ``If-Match``, only the version it looked at): an object another ingest replaced
  meanwhile is left alone.
"""

from __future__ import annotations

import contextlib
import errno
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pacsflow.archive.storage import LocalStaging
from pacsflow.settings import Settings

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

ORIGIN = "pacsflow-staged-from"  # object metadata: the staged file it was uploaded from
PART_SIZE = 16 * 1024**2  # multipart above this; S3's smallest part is 5 MiB
MAX_PARTS = 10_000  # S3's limit per multipart upload
READ_BUFFER = 1024**2
DELETE_BATCH = 1000  # S3's limit per DeleteObjects request
NOT_FOUND = {"404", "NoSuchKey"}
PRECONDITION_FAILED = "PreconditionFailed"


class S3Storage(LocalStaging):
    """Objects ``<prefix><study>/<series>/<instance>.dcm`` in one bucket.

    One client per process, shared by its threads (boto3 clients are thread-safe).
    Credentials come from boto3's usual chain: ``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY``, a profile, or the role of the machine or pod.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        staging_root: Path,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        part_size: int = PART_SIZE,
    ) -> None:
        super().__init__(staging_root)
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.part_size = part_size
        config = Config(
            connect_timeout=10,
            read_timeout=60,
            retries={"mode": "standard", "max_attempts": 5},
            # Servers other than AWS are usually reached by path, not by bucket host name.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        self._client: S3Client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )
        try:
            self._client.head_bucket(Bucket=bucket)
        except (BotoCoreError, ClientError) as exc:
            raise OSError(
                errno.EIO,
                f"S3 bucket {bucket!r} cannot be used ({_reason(exc)}): check "
                "PACSFLOW_STORAGE_URL, PACSFLOW_S3_ENDPOINT_URL and the AWS credentials, and "
                "that the bucket exists",
            ) from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        """The bucket of ``PACSFLOW_STORAGE_URL``, staging in ``$PACSFLOW_HOME/staging``."""
        url = urlsplit(settings.storage_url)
        return cls(
            url.netloc,
            url.path,
            settings.resolved_home / "staging",
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region or None,
        )

    def _name(self, key: str) -> str:
        parts = key.split("/")
        if len(parts) != 3 or not all(parts) or {".", ".."} & set(parts):
            raise ValueError(f"storage key {key!r} is not of the form study/series/instance.dcm")
        return self.prefix + key

    @staticmethod
    def _origin(staged: Path) -> str:
        return f"{staged.parent.name}/{staged.name}"

    def place(self, staged: Path, key: str, *, replace: bool = False) -> bool:
        name = self._name(key)
        metadata = {ORIGIN: self._origin(staged)}
        condition = {} if replace else {"IfNoneMatch": "*"}
        size = staged.stat().st_size
        with open(staged, "rb") as body:
            try:
                if size <= self.part_size:
                    self._client.put_object(
                        Bucket=self.bucket, Key=name, Body=body, Metadata=metadata, **condition
                    )
                else:
                    self._put_parts(body, size, name, metadata, condition)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == PRECONDITION_FAILED:
                    return False
                raise _os_error(exc, f"storing {key}") from exc
            except BotoCoreError as exc:
                raise _os_error(exc, f"storing {key}") from exc
        return True

    def _put_parts(
        self,
        body: BinaryIO,
        size: int,
        name: str,
        metadata: dict[str, str],
        condition: dict[str, str],
    ) -> None:
        """A multipart upload; the condition applies to its completion."""
        part_size = max(self.part_size, -(-size // MAX_PARTS))
        upload = self._client.create_multipart_upload(
            Bucket=self.bucket, Key=name, Metadata=metadata
        )["UploadId"]
        try:
            parts: list[CompletedPartTypeDef] = []
            while chunk := body.read(part_size):
                number = len(parts) + 1
                answer = self._client.upload_part(
                    Bucket=self.bucket, Key=name, UploadId=upload, PartNumber=number, Body=chunk
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=name,
                UploadId=upload,
                MultipartUpload={"Parts": parts},
                **condition,
            )
        except BaseException:
            # If this fails too, the bucket's lifecycle rule for incomplete uploads cleans up.
            with contextlib.suppress(BotoCoreError, ClientError):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload)
            raise

    def sync(self, keys: list[str]) -> None:
        """Nothing to do: a placed object is already durable (see the module's docstring)."""

    def open(self, key: str) -> BinaryIO:
        """A seekable reader of the object as it is now, fetched as it is read."""
        name = self._name(key)
        with _storage_errors(f"reading {key}"):
            head = self._client.head_object(Bucket=self.bucket, Key=name)
        reader = _ObjectReader(self._client, self.bucket, name, head["ContentLength"], head["ETag"])
        return io.BufferedReader(reader, READ_BUFFER)

    def local_path(self, key: str) -> Path | None:
        return None

    def size(self, key: str) -> int:
        with _storage_errors(f"reading {key}"):
            return self._client.head_object(Bucket=self.bucket, Key=self._name(key))[
                "ContentLength"
            ]

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except FileNotFoundError:
            return False
        return True

    def remove(self, keys: list[str]) -> None:
        names = [self._name(key) for key in keys]
        for start in range(0, len(names), DELETE_BATCH):
            batch = names[start : start + DELETE_BATCH]
            with _storage_errors(f"removing {len(batch)} objects"):
                answer = self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": name} for name in batch], "Quiet": True},
                )
            if errors := answer.get("Errors"):
                first = errors[0]
                raise OSError(
                    errno.EIO,
                    f"S3 did not remove {len(errors)} objects, e.g. {first.get('Key')}: "
                    f"{first.get('Code')} {first.get('Message')}",
                )

    def iter_keys(self) -> Iterator[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        with _storage_errors("listing the bucket"):
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"].removeprefix(self.prefix)
                    if key.count("/") == 2 and key.endswith(".dcm"):
                        yield key

    def _undo_placement(self, staged: Path, unindexed_key: Callable[[Path], str | None]) -> bool:
        key = unindexed_key(staged)
        if key is None:
            return False
        name = self._name(key)
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=name)
            if head.get("Metadata", {}).get(ORIGIN) != self._origin(staged):
                return False
            self._client.delete_object(Bucket=self.bucket, Key=name, IfMatch=head["ETag"])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in NOT_FOUND or code == PRECONDITION_FAILED:
                return False  # gone, or replaced since we looked
            raise _os_error(exc, f"recovering {key}") from exc
        except BotoCoreError as exc:
            raise _os_error(exc, f"recovering {key}") from exc
        return True


class _ObjectReader(io.RawIOBase):
    """One version of an object as a seekable file: reads stream from one ranged GET
    until a seek elsewhere, so reading a whole object costs one request and reading a
    frame costs one more. ``If-Match`` makes a read fail rather than mix two versions."""

    def __init__(self, client: S3Client, bucket: str, name: str, size: int, etag: str) -> None:
        self._client, self._bucket, self._name = client, bucket, name
        self._size, self._etag = size, etag
        self._position = 0
        self._body: StreamingBody | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        if base + offset != self._position:
            self._drop_body()
            self._position = base + offset
        return self._position

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self._position >= self._size:
            return 0
        view = memoryview(buffer).cast("B")
        with _storage_errors(f"reading {self._name}"):
            if self._body is None:
                self._body = self._client.get_object(
                    Bucket=self._bucket,
                    Key=self._name,
                    Range=f"bytes={self._position}-",
                    IfMatch=self._etag,
                )["Body"]
            data = self._body.read(len(view))
        if not data:
            raise OSError(errno.EIO, f"S3 object {self._name} ended before its size")
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()


def _reason(exc: BotoCoreError | ClientError) -> str:
    if isinstance(exc, ClientError):
        return f"S3 answered {exc.response.get('Error', {}).get('Code', '')}"
    return str(exc)  # no answer: connection, timeout, credentials


def _os_error(exc: BotoCoreError | ClientError, doing: str) -> OSError:
    """What callers of a Storage handle: OSError, FileNotFoundError for a missing object."""
    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in NOT_FOUND:
        return FileNotFoundError(errno.ENOENT, f"{doing}: no such object in S3")
    return OSError(errno.EIO, f"{doing}: {_reason(exc)}")


@contextlib.contextmanager
def _storage_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise _os_error(exc, doing) from exc
