"""WHIP ingest into a broadcast's stage (RFC 9725) at /whip/{broadcastId}, and WHEP for the stage's viewers at
/whep/{broadcastId}/cam: POST offer -> 201 + Location + ETag, DELETE, PATCH (trickle / 422 ICE restart), OPTIONS, GET/HEAD.

HTTP only: status codes, auth and CORS; the media work is in media/stage.py."""

from __future__ import annotations

import hmac
import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from playcast.api.auth import bearer_token
from playcast.control.broadcasts import LIVE, AccessDenied, Broadcasts
from playcast.media.peer import OfferError
from playcast.media.stage import NoPublisher, OfferRejected, Stage, Stages
from playcast.store.broadcasts import BroadcastRow

log = logging.getLogger(__name__)

MAX_SDP_BYTES = 64 * 1024
RETRY_AFTER_S = 2
SDP = "application/sdp"
TRICKLE = "application/trickle-ice-sdpfrag"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, DELETE, PATCH, OPTIONS, GET, HEAD",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, ETag, Link, Retry-After, Accept-Post, Accept-Patch",
}


def _text(status: int, message: str, **headers: str) -> Response:
    return Response(message + "\n", status_code=status, media_type="text/plain", headers={**CORS, **headers})


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _broadcasts(request: Request) -> Broadcasts:
    return request.app.state.plane.broadcasts


def _stages(request: Request) -> Stages:
    return request.app.state.stages


async def _read_sdp(request: Request, expected: str = SDP) -> str | Response:
    if _content_type(request) != expected:
        return _text(415, f"Content-Type must be {expected}", **{"Accept-Post": SDP} if expected == SDP else {})
    body = await request.body()
    if len(body) > MAX_SDP_BYTES:
        return _text(413, f"body is larger than {MAX_SDP_BYTES} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return _text(400, "body is not UTF-8")


def _publish_denied(request: Request, row: BroadcastRow) -> Response | None:
    """Publishing takes the broadcast's publishToken or the admin token."""
    token = bearer_token(request)
    if not token:
        return _text(401, "send Authorization: Bearer <publishToken>", **{"WWW-Authenticate": 'Bearer realm="playcast"'})
    for valid in (row.publish_token, request.app.state.admin_token):
        if valid and hmac.compare_digest(token.encode(), valid.encode()):
            return None
    return _text(403, "wrong publish token")


def _view_denied(request: Request, row: BroadcastRow) -> Response | None:
    try:
        _broadcasts(request).check_access(row, bearer_token(request))
    except AccessDenied as exc:
        if exc.missing:
            return _text(401, str(exc), **{"WWW-Authenticate": 'Bearer realm="playcast"'})
        return _text(403, str(exc))
    return None


async def _row(request: Request) -> BroadcastRow | Response:
    row = await _broadcasts(request).get(request.path_params["broadcast_id"])
    if row is None:
        return _text(404, "broadcast not found")
    return row


def _live_stage(request: Request, row: BroadcastRow) -> Stage | Response:
    """The broadcast's stage, created on first use; 409 once the broadcast has ended."""
    if row.status != LIVE or _broadcasts(request).live_session(row.id) is None:
        return _text(409, f"broadcast {row.id} has ended")
    return _stages(request).get_or_create(row.id)


# ---------------------------------------------------------------------- WHIP (publisher)
async def whip_options(request: Request) -> Response:
    return Response(status_code=200, headers={**CORS, "Accept-Post": SDP, "Accept-Patch": TRICKLE})


async def whip_probe(request: Request) -> Response:
    """GET/HEAD on the endpoint: 204 when it exists (RFC 9725: 2xx, no content)."""
    row = await _row(request)
    if isinstance(row, Response):
        return row
    return Response(status_code=204, headers=CORS)


async def whip_publish(request: Request) -> Response:
    sdp = await _read_sdp(request)
    if isinstance(sdp, Response):
        return sdp
    row = await _row(request)
    if isinstance(row, Response):
        return row
    denied = _publish_denied(request, row)
    if denied is not None:
        return denied
    stage = _live_stage(request, row)
    if isinstance(stage, Response):
        return stage
    try:
        publisher, answer = await stage.publish(sdp)
    except OfferRejected as exc:
        return _text(exc.status, exc.message)
    location = f"/whip/{row.id}/{publisher.publisher_id}"
    return Response(answer, status_code=201, media_type=SDP,
                    headers={**CORS, "Location": location, "ETag": publisher.etag})


async def _publisher(request: Request):  # type: ignore[no-untyped-def]
    row = await _row(request)
    if isinstance(row, Response):
        return row
    denied = _publish_denied(request, row)
    if denied is not None:
        return denied
    stage = _stages(request).get(row.id)
    publisher = stage.get_publisher(request.path_params["publisher_id"]) if stage is not None else None
    if stage is None or publisher is None:
        return _text(404, "no such WHIP session (ended, or replaced by a newer publisher)")
    return stage, publisher


async def whip_session_probe(request: Request) -> Response:
    found = await _publisher(request)
    if isinstance(found, Response):
        return found
    return Response(status_code=204, headers=CORS)


async def whip_delete(request: Request) -> Response:
    found = await _publisher(request)
    if isinstance(found, Response):
        return found
    stage, publisher = found
    await stage.unpublish(publisher.publisher_id)
    return Response(status_code=200, headers=CORS)


async def whip_patch(request: Request) -> Response:
    """Trickle ICE (RFC 8840 fragments): 204. ICE restart (If-Match: *): 422, POST a new offer instead."""
    frag = await _read_sdp(request, TRICKLE)
    if isinstance(frag, Response):
        return frag
    found = await _publisher(request)
    if isinstance(found, Response):
        return found
    stage, publisher = found
    if_match = request.headers.get("if-match")
    if if_match is None:
        return _text(428, "PATCH needs If-Match with the session's ETag")
    if if_match.strip() == "*":
        return _text(422, "ICE restart is not supported; DELETE this session and POST a new offer")
    if if_match.strip() != publisher.etag:
        return _text(412, "If-Match does not match this session's ETag")
    try:
        await stage.trickle(publisher, frag)
    except OfferRejected as exc:
        return _text(exc.status, exc.message)
    return Response(status_code=204, headers=CORS)


# ---------------------------------------------------------------------- WHEP (the stage's viewers)
async def cam_options(request: Request) -> Response:
    return Response(status_code=204, headers={**CORS, "Accept-Post": SDP, "Accept-Patch": TRICKLE})


async def cam_head(request: Request) -> Response:
    row = await _row(request)
    if isinstance(row, Response):
        return row
    stage = _stages(request).get(row.id)
    live = stage is not None and stage.live
    return Response(status_code=200, media_type=SDP, headers={**CORS, "X-Stage-Live": "1" if live else "0"})


async def cam_view(request: Request) -> Response:
    sdp = await _read_sdp(request)
    if isinstance(sdp, Response):
        return sdp
    if not sdp.lstrip().startswith("v=0"):
        return _text(400, "malformed SDP: it must start with v=0")
    row = await _row(request)
    if isinstance(row, Response):
        return row
    denied = _view_denied(request, row)
    if denied is not None:
        return denied
    if row.status != LIVE:
        return _text(404, f"broadcast {row.id} has ended")  # for good: players stop asking
    stage = _stages(request).get(row.id)
    if stage is None or not stage.live:
        return _text(409, "nothing is published on this stage yet", **{"Retry-After": str(RETRY_AFTER_S)})
    try:
        viewer_id, answer = await stage.add_viewer(sdp)
    except NoPublisher as exc:
        return _text(409, str(exc), **{"Retry-After": str(RETRY_AFTER_S)})
    except OfferError as exc:
        return _text(422, f"unusable offer: {exc}")
    return Response(answer, status_code=201, media_type=SDP,
                    headers={**CORS, "Location": f"/whep/{row.id}/cam/{viewer_id}", "ETag": f'"{viewer_id}"'})


async def _cam_viewer(request: Request) -> tuple[Stage, str] | Response:
    row = await _row(request)
    if isinstance(row, Response):
        return row
    denied = _view_denied(request, row)
    if denied is not None:
        return denied
    stage = _stages(request).get(row.id)
    viewer_id = request.path_params["viewer_id"]
    if stage is None or viewer_id not in stage.viewers:
        return _text(404, "no such viewer session")
    return stage, viewer_id


async def cam_delete(request: Request) -> Response:
    found = await _cam_viewer(request)
    if isinstance(found, Response):
        return found
    stage, viewer_id = found
    await stage.remove_viewer(viewer_id)
    return Response(status_code=200, headers=CORS)


async def cam_patch(request: Request) -> Response:
    """Our answer holds every server candidate and the client is learnt peer-reflexively: 204; restarts 422."""
    if _content_type(request) != TRICKLE:
        return _text(415, f"Content-Type must be {TRICKLE}")
    found = await _cam_viewer(request)
    if isinstance(found, Response):
        return found
    _, viewer_id = found
    if_match = request.headers.get("if-match")
    if if_match is not None and if_match.strip() == "*":
        return _text(422, "ICE restart is not supported; DELETE and POST a new offer")
    if if_match is not None and if_match.strip() != f'"{viewer_id}"':
        return _text(412, "If-Match does not match this session's ETag")
    return Response(status_code=204, headers=CORS)


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
