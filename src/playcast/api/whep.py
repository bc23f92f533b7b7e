"""WHEP (draft-ietf-wish-whep) endpoint for broadcast viewers: POST offer -> 201 + Location, DELETE, PATCH,
OPTIONS/CORS, HEAD; 409 + Retry-After when nothing is live; Bearer tokens for private broadcasts.

HTTP only: SDP goes to control/broadcasts.py, which asks the host for a receive-only peer."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from playcast.api.auth import bearer_token
from playcast.api.sdp_http import SDP, TRICKLE, SdpReplies
from playcast.control.broadcasts import AccessDenied, Broadcasts, NotLive
from playcast.control.errors import NotFoundError
from playcast.hostproto.types import SignalError

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
REPLY = SdpReplies("POST, DELETE, PATCH, OPTIONS, HEAD")


def _broadcasts(request: Request) -> Broadcasts:
    return request.app.state.plane.broadcasts


async def _refused(request: Request, challenge: bool = False) -> Response | None:
    """404 for an unknown broadcast, 401/403 (a Bearer challenge only if `challenge`) when the caller may not
    view it, else None."""
    broadcasts = _broadcasts(request)
    row = await broadcasts.get(request.path_params["broadcast_id"])
    if row is None:
        return REPLY.text(404, "broadcast not found")
    try:
        broadcasts.check_access(row, bearer_token(request))
    except AccessDenied as exc:
        return REPLY.denied(exc, challenge=challenge)
    return None


async def options(request: Request) -> Response:
    return REPLY.options(204)


async def head(request: Request) -> Response:
    row = await _broadcasts(request).get(request.path_params["broadcast_id"])
    if row is None:
        return REPLY.empty(404)
    return REPLY.empty(200, media_type=SDP)


async def offer(request: Request) -> Response:
    broadcast_id = request.path_params["broadcast_id"]
    refused = await _refused(request, challenge=True)  # before reading the offer; add_viewer checks again
    if refused is not None:
        return refused
    sdp = await REPLY.read_sdp(request, what="offer")
    if isinstance(sdp, Response):
        return sdp
    malformed = REPLY.malformed(sdp)
    if malformed is not None:
        return malformed
    try:
        viewer_id, answer = await _broadcasts(request).add_viewer(broadcast_id, sdp, bearer_token(request))
    except NotFoundError as exc:
        return REPLY.text(404, exc.message)
    except AccessDenied as exc:
        return REPLY.denied(exc)
    except NotLive as exc:
        return REPLY.text(409, str(exc), **{"Retry-After": str(RETRY_AFTER_S)})
    except SignalError as exc:
        return REPLY.text(422, f"unusable offer: {exc}")
    log.info("WHEP viewer joined", extra={"broadcast": broadcast_id, "viewer": viewer_id})
    return REPLY.created(answer, f"/whep/{broadcast_id}/{viewer_id}", f'"{viewer_id}"')


async def delete(request: Request) -> Response:
    refused = await _refused(request)
    if refused is not None:
        return refused
    if not await _broadcasts(request).remove_viewer(request.path_params["broadcast_id"],
                                                    request.path_params["viewer_id"]):
        return REPLY.text(404, "no such viewer session")
    return REPLY.empty(200)


async def patch(request: Request) -> Response:
    """Trickle ICE: our answer already carries every server candidate, and the host learns the client's address
    from its connectivity checks (peer-reflexive), so added candidates are accepted (204). ICE restarts: 422."""
    wrong = REPLY.wrong_type(request, TRICKLE)
    if wrong is not None:
        return wrong
    if request.headers.get("if-match", "").strip() == "*":
        return REPLY.text(422, "ICE restart is not supported; DELETE and POST a new offer")
    refused = await _refused(request)
    if refused is not None:
        return refused
    etag = request.headers.get("if-match")
    if etag is not None and etag.strip() != f'"{request.path_params["viewer_id"]}"':
        return REPLY.text(412, "ETag does not match this session")
    return REPLY.empty(204)


def whep_routes() -> list[BaseRoute]:
    return [
        Route("/whep/{broadcast_id}", offer, methods=["POST"]),
        Route("/whep/{broadcast_id}", options, methods=["OPTIONS"]),
        Route("/whep/{broadcast_id}", head, methods=["HEAD", "GET"]),
        Route("/whep/{broadcast_id}/{viewer_id}", delete, methods=["DELETE"]),
        Route("/whep/{broadcast_id}/{viewer_id}", patch, methods=["PATCH"]),
        Route("/whep/{broadcast_id}/{viewer_id}", options, methods=["OPTIONS"]),
    ]
