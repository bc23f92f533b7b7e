"""First-party endpoints for the web player page: one-time login link -> signed cookie, and /v1/play/*.

Authorizes the browser user (who never holds the API secret) and calls the control plane; no page rendering."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..control.errors import ControlError
from ..control.login_tokens import LoginTokens
from ..control.sessions import ACTIVATING, PLACED, RESUMABLE, SHUTTING_DOWN
from ..control.stream_groups import USABLE
from ..store.models import ApplicationRow, AssociationRow, StreamGroupRow, StreamSessionRow
from .auth import COOKIE_NAME, CookieSigner, Identity, identify
from .aws.model import service_model
from .aws.validate import InputInvalid, validate
from .json_body import BodyRefused, json_object

log = logging.getLogger(__name__)

ERROR_STATUS = {"ValidationException": 400, "ResourceNotFoundException": 404, "ConflictException": 409,
                "ServiceQuotaExceededException": 429, "InternalServerException": 500}
MAX_BODY_BYTES = 256 * 1024  # a SignalRequest (a WebRTC offer, as a JSON string) and a few ids
SESSION_ERROR_STATUS = {"invalidSignalRequest": 400, "placementTimeout": 503, "applicationExit": 502,
                        "apiTerminated": 409}
SETTLE_SLACK_S = 2.0  # beyond the placement limit: one timer tick for the backstop to end a stuck session


def _error(status: int, type_: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "message": message, **extra}}, status_code=status)


def _not_logged_in() -> JSONResponse:
    return _error(401, "Unauthorized", "log in first (open the login link)")


def _control_error(exc: ControlError) -> JSONResponse:
    return _error(ERROR_STATUS.get(exc.code, 500), exc.code, exc.message)


class PlayerApi:
    def __init__(self, admin_token: str, login_tokens: LoginTokens) -> None:
        self.admin_token = admin_token
        self.login_tokens = login_tokens

    # -- helpers --------------------------------------------------------------------------------------

    @staticmethod
    def _signer(request: Request) -> CookieSigner:
        return request.app.state.cookie_signer

    def _who(self, request: Request) -> Identity | None:
        return identify(request, self._signer(request), self.admin_token)

    async def _session(self, request: Request) -> StreamSessionRow | JSONResponse:
        """The path's session when the caller may use it (the admin, or the user who started it); else 401/404."""
        who = self._who(request)
        if who is None:
            return _not_logged_in()
        row = await request.app.state.plane.sessions.row(request.path_params["session_id"])
        if row is None or (not who.admin and row.user_id != who.user_id):
            return _error(404, "ResourceNotFoundException", "no such session")
        return row

    @staticmethod
    async def _json(request: Request) -> dict[str, Any] | JSONResponse:
        """The body as a JSON object, or the 400/413 to send (call it once the caller is known)."""
        try:
            return await json_object(request, MAX_BODY_BYTES)
        except BodyRefused as exc:
            return _error(exc.status, exc.type, exc.message)

    # -- login ----------------------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        signer = self._signer(request)
        token = request.query_params.get("token")
        if not await self.login_tokens.consume(token):
            if signer.verify(request.cookies.get(COOKIE_NAME)):
                return RedirectResponse("/play", status_code=303)
            return PlainTextResponse("This login link is invalid, expired or was already used. "
                                     "Ask the operator for a new one.", status_code=403)
        user_id = signer.new_user_id()
        response = RedirectResponse("/play", status_code=303)
        secure = request.app.state.settings.base_url.startswith("https://")
        response.set_cookie(COOKIE_NAME, signer.sign(user_id), max_age=signer.max_age_s, httponly=True,
                            samesite="lax", secure=secure, path="/")
        log.info("browser user %s logged in", user_id)
        return response

    # -- /v1/play -------------------------------------------------------------------------------------

    async def apps(self, request: Request) -> Response:
        if self._who(request) is None:
            return _not_logged_in()
        plane = request.app.state.plane
        async with plane.db.session() as s:
            rows = (await s.execute(
                select(ApplicationRow, StreamGroupRow)
                .join(AssociationRow, AssociationRow.application_id == ApplicationRow.id)
                .join(StreamGroupRow, StreamGroupRow.id == AssociationRow.stream_group_id)
                .where(ApplicationRow.status == "READY", StreamGroupRow.status.in_(USABLE))
                .order_by(ApplicationRow.created_at, StreamGroupRow.created_at))).all()
        chosen: dict[str, tuple[ApplicationRow, StreamGroupRow]] = {}
        for app, group in rows:  # one entry per app: a group where it is the default wins, else the oldest
            if app.id not in chosen or (group.default_application_id == app.id
                                        and chosen[app.id][1].default_application_id != app.id):
                chosen[app.id] = (app, group)
        return JSONResponse({"applications": [
            {"id": a.id, "arn": a.arn, "description": a.description, "streamGroupId": g.id}
            for a, g in chosen.values()]})

    async def _group_for(self, request: Request, app_id: str) -> str | None:
        plane = request.app.state.plane
        app_id = plane.arns.resolve(app_id, "application")
        async with plane.db.session() as s:
            groups = (await s.execute(
                select(StreamGroupRow).join(AssociationRow, AssociationRow.stream_group_id == StreamGroupRow.id)
                .where(AssociationRow.application_id == app_id, StreamGroupRow.status.in_(USABLE))
                .order_by(StreamGroupRow.created_at))).scalars().all()
        if not groups:
            return None
        default = [g for g in groups if g.default_application_id == app_id]
        return (default or groups)[0].id

    async def start(self, request: Request) -> Response:
        who = self._who(request)
        if who is None:
            return _not_logged_in()
        plane = request.app.state.plane
        body = await self._json(request)
        if isinstance(body, Response):
            return body
        app_id, signal, group_id = body.get("applicationId"), body.get("signalRequest"), body.get("streamGroupId")
        if not isinstance(app_id, str) or not isinstance(signal, str):
            return _error(400, "ValidationException", "applicationId and signalRequest (strings) are required")
        try:
            if group_id is None:
                group_id = await self._group_for(request, app_id)
                if group_id is None:
                    return _error(404, "ResourceNotFoundException",
                                  f"Application {app_id} is not available in any active stream group")
            params = {"Identifier": group_id, "ApplicationIdentifier": app_id, "Protocol": "WebRTC",
                      "SignalRequest": signal, "UserId": who.user_id}
            validate(service_model().operation_model("StartStreamSession").input_shape, params)
            started = await plane.sessions.start(group_id, params)
        except InputInvalid as exc:
            return _error(400, "ValidationException", exc.message)
        except ControlError as exc:
            return _control_error(exc)
        session_id = started["Arn"].rsplit("/", 1)[-1]
        # Placement ends ACTIVATING (placed, failed, cancelled, or by the timers' backstop); this wait is bounded
        # by that limit, and a session that is somehow still ACTIVATING after it is ended here.
        row = await plane.sessions.wait_for(session_id, lambda r: r.status != ACTIVATING,
                                            plane.sessions.placement_limit_s + SETTLE_SLACK_S)
        if row is None:
            return _error(500, "InternalServerException", "the session disappeared")
        if row.status == ACTIVATING:
            await plane.sessions.terminate(row.stream_group_id, row.id, cancel_placement=True)
            return _error(504, "placementTimeout", "the session did not start in time", sessionId=session_id)
        if row.status not in PLACED:  # ERROR, TERMINATING or TERMINATED: it will not run
            if plane.stopping:
                return _error(503, "ServiceUnavailable", SHUTTING_DOWN, sessionId=session_id)
            reason = row.status_reason or "internalError"
            return _error(SESSION_ERROR_STATUS.get(reason, 500), reason,
                          row.status_message or f"the session ended: {row.status} {reason}", sessionId=session_id)
        return JSONResponse({"sessionArn": row.arn, "sessionId": row.id, "streamGroupId": row.stream_group_id,
                             "status": row.status, "signalResponse": row.signal_response or ""}, status_code=201)

    async def reconnect(self, request: Request) -> Response:
        row = await self._session(request)
        if isinstance(row, Response):
            return row
        body = await self._json(request)
        if isinstance(body, Response):
            return body
        signal = body.get("signalRequest")
        if not isinstance(signal, str) or not signal:
            return _error(400, "ValidationException", "signalRequest (a string) is required")
        try:
            out = await request.app.state.plane.sessions.connect(row.stream_group_id, row.id, signal)
        except ControlError as exc:
            return _control_error(exc)
        return JSONResponse({"signalResponse": out.get("SignalResponse", "")})

    async def status(self, request: Request) -> Response:
        row = await self._session(request)
        if isinstance(row, Response):
            return row
        return JSONResponse({"sessionId": row.id, "status": row.status, "statusReason": row.status_reason})

    async def list(self, request: Request) -> Response:
        who = self._who(request)
        if who is None:
            return _not_logged_in()
        plane = request.app.state.plane
        active = request.query_params.get("active") in ("1", "true", "yes")
        async with plane.db.session() as s:
            stmt = select(StreamSessionRow).order_by(StreamSessionRow.created_at.desc()).limit(100)
            if not who.admin:
                stmt = stmt.where(StreamSessionRow.user_id == who.user_id)
            if active:
                stmt = stmt.where(StreamSessionRow.status.in_(RESUMABLE))
            rows = (await s.execute(stmt)).scalars().all()
        return JSONResponse({"sessions": [
            {"sessionId": r.id, "sessionArn": r.arn, "streamGroupId": r.stream_group_id,
             "applicationId": r.application_id, "status": r.status, "statusReason": r.status_reason,
             "createdAt": r.created_at} for r in rows]})

    async def terminate(self, request: Request) -> Response:
        row = await self._session(request)
        if isinstance(row, Response):
            return row
        try:
            # unlike TerminateStreamSession, the player may end a session still ACTIVATING: its placement is cancelled
            await request.app.state.plane.sessions.terminate(row.stream_group_id, row.id, cancel_placement=True)
        except ControlError as exc:
            return _control_error(exc)
        return Response(status_code=204)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/login", self.login, methods=["GET"]),
            Route("/v1/play/apps", self.apps, methods=["GET"]),
            Route("/v1/play/sessions", self.start, methods=["POST"]),
            Route("/v1/play/sessions", self.list, methods=["GET"]),
            Route("/v1/play/sessions/{session_id}", self.status, methods=["GET"]),
            Route("/v1/play/sessions/{session_id}", self.terminate, methods=["DELETE"]),
            Route("/v1/play/sessions/{session_id}/connection", self.reconnect, methods=["POST"]),
        ]

