"""WHIP ingest into a broadcast's stage (RFC 9725) at /whip/{broadcastId}, and WHEP for the stage's viewers at
/whep/{broadcastId}/cam: POST offer -> 201 + Location + ETag, DELETE, PATCH (trickle / 422 ICE restart), OPTIONS, GET/HEAD.

HTTP only: status codes, auth and CORS. The stage itself (media/stage.py) runs on the host of the broadcast's
session, where media runs: control relays the SDP over the host protocol and reads the stage's state from the
host's heartbeats."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from playcast.api.auth import bearer_token
from playcast.api.sdp_http import CHALLENGE, SDP, TRICKLE, SdpReplies
from playcast.control.broadcasts import LIVE, AccessDenied, Broadcasts, NotLive
from playcast.hostproto.types import StagePublisher, StageRefused
from playcast.store.broadcasts import BroadcastRow

log = logging.getLogger(__name__)

RETRY_AFTER_S = 2
REPLY = SdpReplies("POST, DELETE, PATCH, OPTIONS, GET, HEAD")
Refusal = Callable[[Request, BroadcastRow], Response | None]  # an answer for a caller who may not, else None


def _broadcasts(request: Request) -> Broadcasts:
    return request.app.state.plane.broadcasts


def _publish_denied(request: Request, row: BroadcastRow) -> Response | None:
    """Publishing takes the broadcast's publishToken or the admin token."""
    token = bearer_token(request)
    if not token:
        return REPLY.text(401, "send Authorization: Bearer <publishToken>", **CHALLENGE)
    for valid in (row.publish_token, request.app.state.admin_token):
        if valid and hmac.compare_digest(token.encode(), valid.encode()):
            return None
    return REPLY.text(403, "wrong publish token")


def _view_denied(request: Request, row: BroadcastRow) -> Response | None:
    try:
        _broadcasts(request).check_access(row, bearer_token(request))
    except AccessDenied as exc:
        return REPLY.denied(exc)
    return None


async def _row(request: Request, refuse: Refusal | None = None) -> BroadcastRow | Response:
    """The path's broadcast (404 when there is none), unless `refuse` has an answer for this caller."""
    row = await _broadcasts(request).get(request.path_params["broadcast_id"])
    if row is None:
        return REPLY.text(404, "broadcast not found")
    refused = refuse(request, row) if refuse is not None else None
    return refused if refused is not None else row


def _ended(row: BroadcastRow) -> Response:
    return REPLY.text(409, f"broadcast {row.id} has ended")


def _refused(exc: StageRefused) -> Response:
    if exc.status == 409:
        return REPLY.text(409, exc.message, **{"Retry-After": str(RETRY_AFTER_S)})
    return REPLY.text(exc.status, exc.message)


# ---------------------------------------------------------------------- WHIP (publisher)
async def whip_options(request: Request) -> Response:
    return REPLY.options(200)


async def whip_probe(request: Request) -> Response:
    """GET/HEAD on the endpoint: 204 when it exists (RFC 9725: 2xx, no content)."""
    row = await _row(request)
    if isinstance(row, Response):
        return row
    return REPLY.empty(204)


async def whip_publish(request: Request) -> Response:
    row = await _row(request, _publish_denied)
    if isinstance(row, Response):
        return row
    sdp = await REPLY.read_sdp(request)
    if isinstance(sdp, Response):
        return sdp
    if row.status != LIVE:
        return _ended(row)
    try:
        publisher_id, etag, answer = await _broadcasts(request).stage_publish(row.id, sdp)
    except NotLive:
        return _ended(row)
    except StageRefused as exc:
        return REPLY.text(exc.status, exc.message)
    return REPLY.created(answer, f"/whip/{row.id}/{publisher_id}", etag)


async def _publisher(request: Request) -> tuple[BroadcastRow, StagePublisher] | Response:
    row = await _row(request, _publish_denied)
    if isinstance(row, Response):
        return row
    stage = _broadcasts(request).stage_state(row.id)
    publisher = stage.publisher if stage is not None else None
    if publisher is None or publisher.publisher_id != request.path_params["publisher_id"]:
        return REPLY.text(404, "no such WHIP session (ended, or replaced by a newer publisher)")
    return row, publisher


async def whip_session_probe(request: Request) -> Response:
    found = await _publisher(request)
    if isinstance(found, Response):
        return found
    return REPLY.empty(204)


async def whip_delete(request: Request) -> Response:
    found = await _publisher(request)
    if isinstance(found, Response):
        return found
    row, publisher = found
    await _broadcasts(request).stage_unpublish(row.id, publisher.publisher_id)
    return REPLY.empty(200)


async def whip_patch(request: Request) -> Response:
    """Trickle ICE (RFC 8840 fragments): 204. ICE restart (If-Match: *): 422, POST a new offer instead."""
    found = await _publisher(request)
    if isinstance(found, Response):
        return found
    frag = await REPLY.read_sdp(request, TRICKLE)
    if isinstance(frag, Response):
        return frag
    row, publisher = found
    if_match = request.headers.get("if-match")
    if if_match is None:
        return REPLY.text(428, "PATCH needs If-Match with the session's ETag")
    if if_match.strip() == "*":
        return REPLY.text(422, "ICE restart is not supported; DELETE this session and POST a new offer")
    if if_match.strip() != publisher.etag:
        return REPLY.text(412, "If-Match does not match this session's ETag")
    try:
        await _broadcasts(request).stage_trickle(row.id, publisher.publisher_id, frag)
    except NotLive:
        return REPLY.text(404, "no such WHIP session (ended, or replaced by a newer publisher)")
    except StageRefused as exc:
        return REPLY.text(exc.status, exc.message)
    return REPLY.empty(204)


# ---------------------------------------------------------------------- WHEP (the stage's viewers)
async def cam_options(request: Request) -> Response:
    return REPLY.options(204)


async def cam_head(request: Request) -> Response:
    """Whether a webcam is live on the stage: the broadcast's viewers may know (a private one's need the token)."""
    row = await _row(request, _view_denied)
    if isinstance(row, Response):
        return row
    stage = _broadcasts(request).stage_state(row.id)
    live = stage is not None and stage.publisher is not None
    return REPLY.empty(200, media_type=SDP, **{"X-Stage-Live": "1" if live else "0"})


async def cam_view(request: Request) -> Response:
    row = await _row(request, _view_denied)
    if isinstance(row, Response):
        return row
    sdp = await REPLY.read_sdp(request)
    if isinstance(sdp, Response):
        return sdp
    malformed = REPLY.malformed(sdp)
    if malformed is not None:
        return malformed
    if row.status != LIVE:
        return REPLY.text(404, f"broadcast {row.id} has ended")  # for good: players stop asking
    try:
        viewer_id, answer = await _broadcasts(request).stage_add_viewer(row.id, sdp)
    except NotLive:
        return REPLY.text(404, f"broadcast {row.id} has ended")
    except StageRefused as exc:
        return _refused(exc)
    return REPLY.created(answer, f"/whep/{row.id}/cam/{viewer_id}", f'"{viewer_id}"')


async def _cam_viewer(request: Request) -> tuple[BroadcastRow, str] | Response:
    row = await _row(request, _view_denied)
    if isinstance(row, Response):
        return row
    stage = _broadcasts(request).stage_state(row.id)
    viewer_id = request.path_params["viewer_id"]
    if stage is None or viewer_id not in stage.viewer_ids:
        return REPLY.text(404, "no such viewer session")
    return row, viewer_id


async def cam_delete(request: Request) -> Response:
    found = await _cam_viewer(request)
    if isinstance(found, Response):
        return found
    row, viewer_id = found
    await _broadcasts(request).stage_remove_viewer(row.id, viewer_id)
    return REPLY.empty(200)


async def cam_patch(request: Request) -> Response:
    """Our answer holds every server candidate and the client is learnt peer-reflexively: 204; restarts 422."""
    wrong = REPLY.wrong_type(request, TRICKLE)
    if wrong is not None:
        return wrong
    found = await _cam_viewer(request)
    if isinstance(found, Response):
        return found
    _, viewer_id = found
    if_match = request.headers.get("if-match")
    if if_match is not None and if_match.strip() == "*":
        return REPLY.text(422, "ICE restart is not supported; DELETE and POST a new offer")
    if if_match is not None and if_match.strip() != f'"{viewer_id}"':
        return REPLY.text(412, "If-Match does not match this session's ETag")
    return REPLY.empty(204)


def whip_routes() -> list[BaseRoute]:
    """Register before api.whep's routes: `/whep/{id}/cam` would otherwise match `/whep/{id}/{viewer_id}`."""
    return [
        Route("/whip/{broadcast_id}", whip_publish, methods=["POST"]),
        Route("/whip/{broadcast_id}", whip_options, methods=["OPTIONS"]),
        Route("/whip/{broadcast_id}", whip_probe, methods=["GET", "HEAD"]),
        Route("/whip/{broadcast_id}/{publisher_id}", whip_delete, methods=["DELETE"]),
        Route("/whip/{broadcast_id}/{publisher_id}", whip_patch, methods=["PATCH"]),
        Route("/whip/{broadcast_id}/{publisher_id}", whip_options, methods=["OPTIONS"]),
        Route("/whip/{broadcast_id}/{publisher_id}", whip_session_probe, methods=["GET", "HEAD"]),
        Route("/whep/{broadcast_id}/cam", cam_view, methods=["POST"]),
        Route("/whep/{broadcast_id}/cam", cam_options, methods=["OPTIONS"]),
        Route("/whep/{broadcast_id}/cam", cam_head, methods=["HEAD", "GET"]),
        Route("/whep/{broadcast_id}/cam/{viewer_id}", cam_delete, methods=["DELETE"]),
        Route("/whep/{broadcast_id}/cam/{viewer_id}", cam_patch, methods=["PATCH"]),
        Route("/whep/{broadcast_id}/cam/{viewer_id}", cam_options, methods=["OPTIONS"]),
    ]
