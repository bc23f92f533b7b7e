"""First-party broadcast API: POST/GET/DELETE /v1/broadcasts, and a viewer-facing status endpoint.

Parses, authorizes (admin bearer token or the session's player by cookie) and shapes JSON; calls
control/broadcasts.py. No media here."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from playcast.api.auth import Identity, bearer_token, identify
from playcast.api.json_body import BodyRefused, json_object
from playcast.api.urls import public_base
from playcast.control.broadcasts import AccessDenied, BroadcastOptions, Broadcasts, WhipEgressRequest
from playcast.control.errors import ControlError
from playcast.hostproto.types import EgressStatus, StageState
from playcast.store.broadcasts import BroadcastRow

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024  # options and a WHIP egress URL and token
_STATUS = {"ValidationException": 400, "ResourceNotFoundException": 404, "ConflictException": 409}


def _error(status: int, type_: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "message": message}}, status_code=status)


def _broadcasts(request: Request) -> Broadcasts:
    return request.app.state.plane.broadcasts


def describe(request: Request, row: BroadcastRow, *, with_token: bool) -> dict[str, Any]:
    base = public_base(request)
    doc: dict[str, Any] = {
        "broadcastId": row.id,
        "streamSessionId": row.stream_session_id,
        "status": row.status,
        "private": row.private,
        "viewerPageUrl": f"{base}/watch/{row.stream_session_id}?broadcast={row.id}",
        "whepUrl": f"{base}/whep/{row.id}",
        "hlsUrl": f"{base}/hls/{row.id}/master.m3u8",
        "whipIngestUrl": f"{base}/whip/{row.id}",
        "createdAt": row.created_at,
        "endedAt": row.ended_at,
        "viewerCount": _broadcasts(request).viewer_count(row.id),
        "whipEgress": [_egress_doc(e) for e in _broadcasts(request).egress_status(row.id)],
    }
    doc["stage"] = _stage_doc(_broadcasts(request).stage_state(row.id))
    if row.record:
        live = _broadcasts(request).recording_status(row.id)
        doc["recording"] = {
            "status": (live or {}).get("status", "ENDED" if row.status == "ENDED" else "STARTING"),
            "vodUrl": f"{base}/recordings/{row.id}/media/hls/master.m3u8",
            **({"message": live["message"]} if live and live.get("message") else {}),
        }
    if with_token:
        doc["viewerToken"] = row.viewer_token
        doc["publishToken"] = row.publish_token
        if row.private:  # links that work as they are: every request they lead to carries the token
            doc["viewerPageUrl"] += f"&token={row.viewer_token}"
            doc["hlsUrl"] += f"?token={row.viewer_token}"
            if "recording" in doc:
                doc["recording"]["vodUrl"] += f"?token={row.viewer_token}"
    return doc


def _egress_doc(e: EgressStatus) -> dict[str, Any]:
    return {"egressId": e.egress_id, "url": e.url, "origin": e.origin, "state": e.state, "attempts": e.attempts,
            "lastError": e.last_error, "connectedAt": e.connected_at, "nextRetryAt": e.next_retry_at}


def _stage_doc(stage: StageState | None) -> dict[str, Any]:
    """The stage as its host last reported it (it runs on the host of the broadcast's session)."""
    if stage is None:
        return {"live": False, "viewers": 0}
    p = stage.publisher
    return {
        "live": p is not None,
        "publisher": None if p is None else {"id": p.publisher_id, "connected": p.connected, "since": p.since,
                                             "videoSize": list(p.video_size) if p.video_size else None},
        "viewers": len(stage.viewer_ids),
        "renditionSize": list(stage.rendition_size) if stage.rendition_size else None,
    }


def _egress_request(value: object) -> WhipEgressRequest | str:
    """`whipEgress: {"url": "https://...", "token": "..."}` -> request, or an error message."""
    if not isinstance(value, dict) or not isinstance(value.get("url"), str):
        return 'whipEgress must be {"url": "https://...", "token": "..."}'
    url, token = value["url"].strip(), value.get("token")
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname or len(url) > 2048:
        return "whipEgress.url must be an absolute http(s) URL (at most 2048 characters)"
    if token is not None and (not isinstance(token, str) or len(token) > 8192):
        return "whipEgress.token must be a string (at most 8192 characters)"
    return WhipEgressRequest(url, token or None)


class BroadcastApi:
    def __init__(self, admin_token: str) -> None:
        self.admin_token = admin_token

    def _who(self, request: Request) -> Identity | None:
        return identify(request, request.app.state.cookie_signer, self.admin_token)

    async def _may_manage(self, request: Request, who: Identity, session_id: str) -> bool:
        if who.admin:
            return True
        row = await request.app.state.plane.sessions.row(session_id)
        return row is not None and row.user_id == who.user_id

    async def create(self, request: Request) -> Response:
        who = self._who(request)
        if who is None:
            return _error(401, "UnauthorizedException", "send Authorization: Bearer <admin_token> or log in")
        try:
            body = await json_object(request, MAX_BODY_BYTES)
        except BodyRefused as exc:
            return _error(exc.status, exc.type, exc.message)
        if not isinstance(body.get("streamSessionId"), str):
            return _error(400, "ValidationException", 'body must be {"streamSessionId": "...", ...}')
        flags = {k: body.get(k, d) for k, d in (("private", False), ("hls", True), ("record", False))}
        if not all(isinstance(v, bool) for v in flags.values()):
            return _error(400, "ValidationException", "private, hls and record must be booleans")
        egress = None
        if body.get("whipEgress") is not None:
            egress = _egress_request(body["whipEgress"])
            if isinstance(egress, str):
                return _error(400, "ValidationException", egress)
        session_id = body["streamSessionId"].rsplit("/", 1)[-1]  # accept the ARN too
        if not await self._may_manage(request, who, session_id):
            return _error(404, "ResourceNotFoundException", f"stream session {session_id} not found")
        try:
            row = await _broadcasts(request).create(session_id, who.user_id, BroadcastOptions(**flags), egress)
        except ControlError as exc:
            return _error(_STATUS.get(exc.code, 500), exc.code, exc.message)
        return JSONResponse(describe(request, row, with_token=True), status_code=201)

    async def _managed_row(self, request: Request) -> BroadcastRow | Response:
        who = self._who(request)
        if who is None:
            return _error(401, "UnauthorizedException", "send Authorization: Bearer <admin_token> or log in")
        row = await _broadcasts(request).get(request.path_params["broadcast_id"])
        if row is None or not (who.admin or row.owner == who.user_id):
            return _error(404, "ResourceNotFoundException", "broadcast not found")
        return row

    async def get(self, request: Request) -> Response:
        row = await self._managed_row(request)
        if isinstance(row, Response):
            return row
        return JSONResponse(describe(request, row, with_token=True))

    async def delete(self, request: Request) -> Response:
        row = await self._managed_row(request)
        if isinstance(row, Response):
            return row
        await _broadcasts(request).end(row.id)
        return Response(status_code=204)

    async def public_status(self, request: Request) -> Response:
        """For viewer pages: live or not and how many watch; private broadcasts need the viewer token."""
        broadcasts = _broadcasts(request)
        row = await broadcasts.get(request.path_params["broadcast_id"])
        if row is None:
            return _error(404, "ResourceNotFoundException", "broadcast not found")
        token = bearer_token(request) or request.query_params.get("token")
        try:
            broadcasts.check_access(row, token)
        except AccessDenied as exc:
            return _error(401 if exc.missing else 403, "AccessDeniedException", str(exc))
        doc = describe(request, row, with_token=False)
        return JSONResponse({k: doc[k] for k in ("broadcastId", "streamSessionId", "status", "whepUrl", "hlsUrl",
                                                  "viewerCount", "private", "recording", "createdAt", "endedAt")
                             if k in doc})

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/broadcasts", self.create, methods=["POST"]),
            Route("/v1/broadcasts/{broadcast_id}", self.get, methods=["GET"]),
            Route("/v1/broadcasts/{broadcast_id}", self.delete, methods=["DELETE"]),
            Route("/v1/broadcasts/{broadcast_id}/status", self.public_status, methods=["GET"]),
        ]
