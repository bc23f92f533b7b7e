"""Object storage for recordings and archives: one interface, a local-directory and an S3-compatible backend.

Pick one with `open_storage(url)`; nothing here knows about media."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from playcast.storage.base import (
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    StorageFull,
    check_key,
    content_type_for,
)
from playcast.storage.local import LocalStorage
from playcast.storage.s3 import S3Storage

__all__ = [
    "LocalStorage", "ObjectInfo", "ObjectNotFound", "S3Storage", "Storage", "StorageError", "StorageFull",
    "check_key", "content_type_for", "open_storage",
]


def open_storage(url: str, *, s3_endpoint_url: str | None = None, s3_region: str | None = None,
                 **options: object) -> Storage:
    """`file:///path` or a plain path -> LocalStorage; `s3://bucket/prefix?endpoint=http://...&region=...`
    -> S3Storage (endpoint and region from the URL, else `s3_endpoint_url`/`s3_region`; credentials from the usual
    AWS environment unless given in `options`)."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return LocalStorage(parsed.path if parsed.scheme else url, **options)  # type: ignore[arg-type]
    if parsed.scheme == "s3":
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        return S3Storage(parsed.netloc, prefix=parsed.path.lstrip("/"),
                         endpoint_url=query.get("endpoint") or s3_endpoint_url,
                         region=query.get("region") or s3_region, public_base_url=query.get("public_base_url"),
                         **options)  # type: ignore[arg-type]
    raise ValueError(f"unsupported storage URL {url!r} (use a path, file://... or s3://bucket/prefix)")
