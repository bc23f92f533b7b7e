"""Serve recorded broadcasts (VOD HLS, thumbnails, recording events) from the recording storage.

`/recordings/{broadcastId}/...` -> the object `recordings/{broadcastId}/...`; a private broadcast's recording needs
its viewer token (`Authorization: Bearer` or `?token=`; with `?token=` the playlists served list URIs that carry it).
HTTP only: objects come from storage/, access rules from control/broadcasts.py."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from playcast.api.auth import bearer_token
from playcast.control.broadcasts import AccessDenied
from playcast.media.hls.playlist import with_query
from playcast.storage import LocalStorage, ObjectNotFound, Storage, StorageError, content_type_for

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
