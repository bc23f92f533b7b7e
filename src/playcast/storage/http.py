"""Serves objects of a Storage over HTTP (recordings as VOD: playlists, segments, thumbnails, events).

Read-only GET/HEAD with CORS and cache headers; mount it where the server wants (e.g. /recordings)."""

from __future__ import annotations

import asyncio

from starlette.routing import BaseRoute, Mount

from playcast.storage.base import ObjectNotFound, Storage, StorageError, check_key, content_type_for

_CORS = [(b"access-control-allow-origin", b"*")]


def _cache_for(key: str) -> bytes:
    if key.endswith(".m3u8") or key.endswith(".json") or key.endswith("latest_thumbnail/thumb.jpg"):
        return b"no-cache"
    return b"public, max-age=31536000, immutable"


class StorageFiles:
    """ASGI app: `GET <mount>/<key>` -> the object (404 when missing, 502 when the storage fails)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        method = scope["method"]
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        key = path.lstrip("/")
        status, body, headers = 200, b"", [*_CORS]
        if method == "OPTIONS":
            status = 204
            headers += [(b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
                        (b"access-control-allow-headers", b"range")]
        elif method not in ("GET", "HEAD"):
            status, body = 405, b"method not allowed\n"
            headers.append((b"allow", b"GET, HEAD, OPTIONS"))
        else:
            try:
                check_key(key)
                body = await asyncio.to_thread(self.storage.get, key)
                headers += [(b"content-type", content_type_for(key).encode()), (b"cache-control", _cache_for(key))]
            except (ValueError, ObjectNotFound):
                status, body = 404, b"not found\n"
            except StorageError as exc:
                status, body = 502, f"storage error: {exc}\n".encode()
        if status != 200:
            headers += [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


def storage_routes(storage: Storage, mount: str = "/recordings") -> list[BaseRoute]:
    return [Mount(mount, app=StorageFiles(storage), name="recordings")]
