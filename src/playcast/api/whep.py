"""WHEP (draft-ietf-wish-whep) endpoint for broadcast viewers: POST offer -> 201 + Location, DELETE, PATCH,
OPTIONS/CORS, HEAD; 409 + Retry-After when nothing is live; Bearer tokens for private broadcasts.

HTTP only: SDP goes to control/broadcasts.py, which asks the host for a receive-only peer."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from playcast.api.auth import bearer_token
from playcast.control.broadcasts import AccessDenied, Broadcasts, NotLive
from playcast.control.errors import NotFoundError
from playcast.control.hostlink import SignalError

log = logging.getLogger(__name__)

MAX_SDP_BYTES = 64 * 1024
RETRY_AFTER_S = 5
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, DELETE, PATCH, OPTIONS, HEAD",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, ETag, Link, Retry-After, Accept-Post, Accept-Patch",
}


def _text(status: int, message: str, **headers: str) -> Response:
    return Response(message + "\n", status_code=status, media_type="text/plain", headers={**CORS, **headers})


def _broadcasts(request: Request) -> Broadcasts:
    return request.app.state.plane.broadcasts


async def options(request: Request) -> Response:
    return Response(status_code=204, headers={**CORS, "Accept-Post": "application/sdp",
                                              "Accept-Patch": "application/trickle-ice-sdpfrag"})


async def head(request: Request) -> Response:
    row = await _broadcasts(request).get(request.path_params["broadcast_id"])
    if row is None:
        return Response(status_code=404, headers=CORS)
    return Response(status_code=200, media_type="application/sdp", headers=CORS)


async def offer(request: Request) -> Response:
    broadcast_id = request.path_params["broadcast_id"]
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/sdp":
        return _text(415, "Content-Type must be application/sdp", **{"Accept-Post": "application/sdp"})
    body = await request.body()
    if len(body) > MAX_SDP_BYTES:
        return _text(413, f"offer is larger than {MAX_SDP_BYTES} bytes")
    try:
        sdp = body.decode("utf-8")
    except UnicodeDecodeError:
        return _text(400, "offer is not UTF-8")
    if not sdp.lstrip().startswith("v=0"):
        return _text(400, "malformed SDP: it must start with v=0")
    try:
        viewer_id, answer = await _broadcasts(request).add_viewer(broadcast_id, sdp, bearer_token(request))
    except NotFoundError as exc:
        return _text(404, exc.message)
    except AccessDenied as exc:
        if exc.missing:
            return _text(401, str(exc), **{"WWW-Authenticate": 'Bearer realm="playcast"'})
        return _text(403, str(exc))
    except NotLive as exc:
        return _text(409, str(exc), **{"Retry-After": str(RETRY_AFTER_S)})
    except SignalError as exc:
        return _text(422, f"unusable offer: {exc}")
    location = f"/whep/{broadcast_id}/{viewer_id}"
    log.info("WHEP viewer joined", extra={"broadcast": broadcast_id, "viewer": viewer_id})
    return Response(answer, status_code=201, media_type="application/sdp",
                    headers={**CORS, "Location": location, "ETag": f'"{viewer_id}"'})


async def delete(request: Request) -> Response:
    broadcasts = _broadcasts(request)
    broadcast_id, viewer_id = request.path_params["broadcast_id"], request.path_params["viewer_id"]
    row = await broadcasts.get(broadcast_id)
    if row is None:
        return _text(404, "broadcast not found")
    try:
        broadcasts.check_access(row, bearer_token(request))
    except AccessDenied as exc:
        return _text(401 if exc.missing else 403, str(exc))
    if not await broadcasts.remove_viewer(broadcast_id, viewer_id):
        return _text(404, "no such viewer session")
    return Response(status_code=200, headers=CORS)


async def patch(request: Request) -> Response:
    """Trickle ICE: our answer already carries every server candidate, and the host learns the client's address
    from its connectivity checks (peer-reflexive), so added candidates are accepted (204). ICE restarts: 422."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/trickle-ice-sdpfrag":
        return _text(415, "Content-Type must be application/trickle-ice-sdpfrag")
    if request.headers.get("if-match", "").strip() == "*":
        return _text(422, "ICE restart is not supported; DELETE and POST a new offer")
    broadcasts = _broadcasts(request)
    row = await broadcasts.get(request.path_params["broadcast_id"])
    if row is None:
        return _text(404, "broadcast not found")
    try:
        broadcasts.check_access(row, bearer_token(request))
    except AccessDenied as exc:
        return _text(401 if exc.missing else 403, str(exc))
    etag = request.headers.get("if-match")
    if etag is not None and etag.strip() != f'"{request.path_params["viewer_id"]}"':
        return _text(412, "ETag does not match this session")
    return Response(status_code=204, headers=CORS)


def whep_routes() -> list[BaseRoute]:
    return [
        Route("/whep/{broadcast_id}", offer, methods=["POST"]),
        Route("/whep/{broadcast_id}", options, methods=["OPTIONS"]),
        Route("/whep/{broadcast_id}", head, methods=["HEAD", "GET"]),
        Route("/whep/{broadcast_id}/{viewer_id}", delete, methods=["DELETE"]),
        Route("/whep/{broadcast_id}/{viewer_id}", patch, methods=["PATCH"]),
        Route("/whep/{broadcast_id}/{viewer_id}", options, methods=["OPTIONS"]),
    ]
