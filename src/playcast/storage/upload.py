"""A remote host's recording storage when the control plane keeps recordings itself: every object is uploaded to
the control plane (`PUT /v1/hosts/recordings/<key>` with the host's token, id and key), which writes it to its own
storage; only the host running the broadcast's session may.

Write-only (a recorder only writes); nothing here knows about media or hosts beyond the URL and the token."""

from __future__ import annotations

from typing import BinaryIO
from urllib.parse import quote

import httpx

from playcast.storage.base import ObjectInfo, Storage, StorageError, StorageFull, check_key, content_type_for

UPLOAD_PATH = "/v1/hosts/recordings"
HOST_ID_HEADER = "X-Playcast-Host-Id"  # the uploading host names itself, and proves it with its host key
HOST_KEY_HEADER = "X-Playcast-Host-Key"


class ControlPlaneUploads(Storage):
    """Objects PUT to `server_url` + UPLOAD_PATH + `/<key>`; reads are the control plane's (/recordings)."""

    def __init__(self, server_url: str, token: str, host_id: str, host_key: str, *, timeout_s: float = 30.0) -> None:
        self.base = server_url.rstrip("/") + UPLOAD_PATH
        self._client = httpx.Client(timeout=timeout_s, headers={
            "Authorization": f"Bearer {token}", HOST_ID_HEADER: host_id, HOST_KEY_HEADER: host_key})

    def describe(self) -> str:
        return f"uploads to {self.base}"

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None,
                  cache_control: str | None = None) -> None:
        key = check_key(key)
        headers = {"Content-Type": content_type or content_type_for(key)}
        if cache_control:
            headers["Cache-Control"] = cache_control
        try:
            r = self._client.put(f"{self.base}/{quote(key)}", content=data, headers=headers)
        except httpx.HTTPError as exc:
            raise StorageError(f"cannot upload {key} to the control plane: {exc}") from exc
        if r.status_code == 507:
            raise StorageFull(f"the control plane's storage is full: {r.text.strip()}")
        if r.status_code >= 300:
            raise StorageError(f"the control plane refused {key}: {r.status_code} {r.text.strip()[:300]}")

    def get(self, key: str) -> bytes:
        raise StorageError("recordings uploaded to the control plane are read there (/recordings), not on the host")

    def open_read(self, key: str) -> BinaryIO:
        raise StorageError("recordings uploaded to the control plane are read there (/recordings), not on the host")

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        raise StorageError("recordings uploaded to the control plane are listed there, not on the host")

    def delete(self, key: str) -> None:
        raise StorageError("recordings uploaded to the control plane are removed there, not on the host")

    def url(self, key: str) -> str:
        raise StorageError("recordings uploaded to the control plane are served from its /recordings")

    def close(self) -> None:
        self._client.close()
