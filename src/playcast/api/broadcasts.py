"""First-party broadcast API: POST/GET/DELETE /v1/broadcasts, and a viewer-facing status endpoint.

Parses, authorizes (admin bearer token or the session's player by cookie) and shapes JSON; calls
control/broadcasts.py. No media here."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from playcast.api.auth import Identity, bearer_token, identify
from playcast.control.broadcasts import AccessDenied, BroadcastOptions, Broadcasts
from playcast.control.errors import ControlError
from playcast.store.broadcasts import BroadcastRow

log = logging.getLogger(__name__)

_STATUS = {"ValidationException": 400, "ResourceNotFoundException": 404, "ConflictException": 409}


def _error(status: int, type_: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "message": message}}, status_code=status)


def _broadcasts(request: Request) -> Broadcasts:
    return request.app.state.plane.broadcasts


def describe(request: Request, row: BroadcastRow, *, with_token: bool) -> dict[str, Any]:
    base = request.app.state.settings.base_url
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
    }
    if with_token:
        doc["viewerToken"] = row.viewer_token
        doc["publishToken"] = row.publish_token
        if row.private:
            doc["viewerPageUrl"] += f"&token={row.viewer_token}"
    return doc


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
            body = await request.json()
        except ValueError:
            return _error(400, "ValidationException", "body must be JSON")
        if not isinstance(body, dict) or not isinstance(body.get("streamSessionId"), str):
            return _error(400, "ValidationException", 'body must be {"streamSessionId": "...", ...}')
        flags = {k: body.get(k, d) for k, d in (("private", False), ("hls", True), ("record", False))}
        if not all(isinstance(v, bool) for v in flags.values()):
            return _error(400, "ValidationException", "private, hls and record must be booleans")
        session_id = body["streamSessionId"].rsplit("/", 1)[-1]  # accept the ARN too
        if not await self._may_manage(request, who, session_id):
            return _error(404, "ResourceNotFoundException", f"stream session {session_id} not found")
        try:
            row = await _broadcasts(request).create(session_id, who.user_id, BroadcastOptions(**flags))
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
                                                  "viewerCount", "private")})

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/broadcasts", self.create, methods=["POST"]),
            Route("/v1/broadcasts/{broadcast_id}", self.get, methods=["GET"]),
            Route("/v1/broadcasts/{broadcast_id}", self.delete, methods=["DELETE"]),
            Route("/v1/broadcasts/{broadcast_id}/status", self.public_status, methods=["GET"]),
        ]
