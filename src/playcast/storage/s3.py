"""Storage in any S3-compatible bucket (AWS S3, MinIO, Ceph, moto ...) through boto3.

One client per Storage, safe across threads; errors become StorageError/StorageFull with the service's reason."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from playcast.storage.base import (
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    StorageFull,
    check_key,
    check_prefix,
    content_type_for,
)

log = logging.getLogger(__name__)

_FULL_CODES = {"EntityTooLarge", "QuotaExceeded", "InsufficientStorage", "XMinioStorageFull", "StorageFull"}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}


class S3Storage(Storage):
    """Objects in `bucket` under an optional key `prefix`. `public_base_url` makes `url()` a plain URL
    (a public bucket or a CDN in front); otherwise `url()` is a presigned GET valid `url_expires_s`."""

    def __init__(self, bucket: str, *, endpoint_url: str | None = None, region: str | None = None,
                 access_key_id: str | None = None, secret_access_key: str | None = None,
                 prefix: str = "", public_base_url: str | None = None, url_expires_s: int = 3600,
                 create_bucket: bool = False, timeout_s: float = 10.0) -> None:
        if not bucket:
            raise ValueError("an S3 bucket name is required")
        self.bucket = bucket
        self.prefix = check_prefix(prefix.strip("/") + "/") if prefix.strip("/") else ""
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.url_expires_s = url_expires_s
        self.endpoint_url = endpoint_url
        self._client = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region or "us-east-1",
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
            config=Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 2},
                          s3={"addressing_style": "path"} if endpoint_url else None),
        )
        if create_bucket:
            self._call("create bucket", self._ensure_bucket)

    def describe(self) -> str:
        where = self.endpoint_url or "AWS"
        return f"s3://{self.bucket}/{self.prefix} at {where}"

    def _ensure_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self._client.create_bucket(Bucket=self.bucket)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _call(self, what: str, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = err.get("Message") or code
            if code in _NOT_FOUND_CODES:
                raise ObjectNotFound(f"{what}: no such object") from exc
            if code in _FULL_CODES or status == 507:
                raise StorageFull(f"{what}: {self.describe()} is full ({code}: {message})", code) from exc
            raise StorageError(f"{what} failed on {self.describe()}: {code} {message}".strip(), code or None) from exc
        except BotoCoreError as exc:
            raise StorageError(f"{what} failed on {self.describe()}: {exc}", "EndpointUnreachable") from exc

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None,
                  cache_control: str | None = None) -> None:
        extra = {"ContentType": content_type or content_type_for(key)}
        if cache_control:
            extra["CacheControl"] = cache_control
        self._call(f"put {key}", self._client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data,
                   **extra)

    def get(self, key: str) -> bytes:
        response = self._call(f"get {key}", self._client.get_object, Bucket=self.bucket, Key=self._key(key))
        try:
            return response["Body"].read()
        except (BotoCoreError, OSError) as exc:
            raise StorageError(f"get {key} failed on {self.describe()}: {exc}") from exc

    def put_file(self, key: str, path: Path | str, content_type: str | None = None,
                 cache_control: str | None = None) -> None:
        """Upload a local file in parts (multipart above 8 MB), never whole in memory."""
        extra = {"ContentType": content_type or content_type_for(key)}
        if cache_control:
            extra["CacheControl"] = cache_control
        self._call(f"put {key}", self._client.upload_file, str(path), self.bucket, self._key(key),
                   ExtraArgs=extra)

    def open_read(self, key: str) -> BinaryIO:
        response = self._call(f"get {key}", self._client.get_object, Bucket=self.bucket, Key=self._key(key))
        return _Body(response["Body"], self, key)

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        full = self.prefix + check_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        items: list[ObjectInfo] = []

        def collect() -> None:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for obj in page.get("Contents", []):
                    items.append(ObjectInfo(obj["Key"][len(self.prefix):], int(obj["Size"])))

        self._call(f"list {prefix or '/'}", collect)
        return sorted(items, key=lambda i: i.key)

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", self._client.delete_object, Bucket=self.bucket, Key=self._key(key))

    def url(self, key: str) -> str:
        full = self._key(key)
        if self.public_base_url:
            return f"{self.public_base_url}/{full}"
        return self._client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": full},
                                                   ExpiresIn=self.url_expires_s)


class _Body(io.RawIOBase):
    """An S3 object's streaming body as a file; read errors become StorageError."""

    def __init__(self, body: Any, storage: S3Storage, key: str) -> None:
        self._body, self._storage, self._key = body, storage, key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except (BotoCoreError, OSError) as exc:
            raise StorageError(f"get {self._key} failed on {self._storage.describe()}: {exc}",
                               "ReadFailed") from exc
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
