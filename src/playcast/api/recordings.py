"""Serve recorded broadcasts (VOD HLS, thumbnails, recording events) from the recording storage.

`/recordings/{broadcastId}/...` -> the object `recordings/{broadcastId}/...`; a private broadcast's recording needs
its viewer token (`Authorization: Bearer` or `?token=`; with `?token=` the playlists served list URIs that carry it).
Remote hosts upload the recordings they make through `PUT /v1/hosts/recordings/...` (their host token).
HTTP only: objects come from storage/, access rules from control/broadcasts.py."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from playcast.api.auth import bearer_token
from playcast.control.broadcasts import AccessDenied
from playcast.media.hls.playlist import with_query
from playcast.request_body import MAX_REQUEST_BODY_BYTES, BodyTooLarge, read_body
from playcast.storage import (
    LocalStorage,
    ObjectNotFound,
    Storage,
    StorageError,
    StorageFull,
    check_key,
    content_type_for,
)
from playcast.storage.upload import HOST_ID_HEADER, HOST_KEY_HEADER, UPLOAD_PATH

CORS = {"Access-Control-Allow-Origin": "*"}


def recording_routes(storage: Storage) -> list[BaseRoute]:
    async def serve(request: Request) -> Response:
        broadcast_id, rest = request.path_params["broadcast_id"], request.path_params["rest"]
        row = await request.app.state.plane.broadcasts.get(broadcast_id)
        if row is None or not row.record:
            return Response("no such recording\n", status_code=404, headers=CORS)
        header_token = bearer_token(request)
        query_token = None if header_token else request.query_params.get("token")
        try:
            request.app.state.plane.broadcasts.check_access(row, header_token or query_token)
        except AccessDenied as exc:
            return Response(f"{exc}\n", status_code=401 if exc.missing else 403, headers=CORS)
        key = f"recordings/{broadcast_id}/{rest}"
        if not isinstance(storage, LocalStorage):
            try:
                return RedirectResponse(storage.url(key), status_code=307, headers=CORS)
            except StorageError:
                pass
        try:
            data = await asyncio.to_thread(storage.get, key)
        except (ObjectNotFound, StorageError, ValueError):
            return Response("not found\n", status_code=404, headers=CORS)
        playlist = rest.endswith(".m3u8")
        final = playlist and row.status == "ENDED"
        cache = "no-cache" if rest.endswith((".m3u8", ".json")) and not final else "public, max-age=86400"
        if row.private and header_token:
            # authorized by a header: a shared cache must not hand this to a tokenless request for the same URL
            cache = "private, " + cache.removeprefix("public, ")
        elif row.private and playlist:
            data = with_query(data, "token=" + quote(query_token or "", safe=""))
        return Response(data, media_type=content_type_for(key), headers={**CORS, "Cache-Control": cache})

    return [Route("/recordings/{broadcast_id}/{rest:path}", serve, methods=["GET", "HEAD"])]


UPLOAD_WINDOW_S = 120.0  # a recording's last objects (final playlist, ended event) arrive after its broadcast ends


def _error(status: int, type_: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "message": message}}, status_code=status)


def recording_upload_routes(storage: Storage) -> list[BaseRoute]:
    """`PUT /v1/hosts/recordings/recordings/{broadcastId}/...`: a remote host (its host token) writes one object
    of a recording it makes into this server's storage (storage/upload.py is the host's side). Only the host the
    broadcast's session runs on (its id and key), only under a broadcast with `record` that is live or ended less
    than UPLOAD_WINDOW_S ago."""

    async def upload(request: Request) -> Response:
        token = bearer_token(request)
        plane = request.app.state.plane
        why = await plane.host_tokens.check(token) if token else "send Authorization: Bearer <host token>"
        if why is not None:
            return _error(401, "UnauthorizedException", why)
        key = request.path_params["key"]
        try:
            check_key(key)
        except ValueError as exc:
            return _error(400, "ValidationException", str(exc))
        top, broadcast_id, *rest = key.split("/")
        if top != "recordings" or not rest:
            return _error(400, "ValidationException", "a recording's objects go under recordings/<broadcastId>/")
        host_id, host_key = request.headers.get(HOST_ID_HEADER), request.headers.get(HOST_KEY_HEADER)
        if not host_id or not host_key:
            return _error(401, "UnauthorizedException", f"a host names itself: send {HOST_ID_HEADER} and "
                                                         f"{HOST_KEY_HEADER}")
        row = await plane.broadcasts.get(broadcast_id)
        if row is None or not row.record:
            return _error(404, "ResourceNotFoundException", f"no recorded broadcast {broadcast_id}")
        refused = await plane.broadcasts.uploader_refusal(row, host_id, host_key)
        if refused is not None:
            return _error(403, "AccessDeniedException", refused)
        if row.status != "LIVE" and time.time() - (row.ended_at or 0) > UPLOAD_WINDOW_S:
            return _error(409, "ConflictException", f"broadcast {broadcast_id} has ended")
        try:
            data = await read_body(request, MAX_REQUEST_BODY_BYTES)
        except BodyTooLarge as exc:
            return _error(413, "ValidationException", str(exc))
        try:
            await asyncio.to_thread(storage.put_bytes, key, data, request.headers.get("content-type"),
                                    request.headers.get("cache-control"))
        except StorageFull as exc:
            return _error(507, "ServiceQuotaExceededException", str(exc))
        except StorageError as exc:
            return _error(502, "InternalServerException", str(exc))
        return Response(status_code=204)

    return [Route(UPLOAD_PATH + "/{key:path}", upload, methods=["PUT"])]
