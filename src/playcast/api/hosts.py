"""The fleet over HTTP: the endpoint hosts dial (`/v1/hosts/connect`, a WebSocket carrying the host protocol to the
control plane's Fleet), the archives hosts fetch application content from (`/v1/hosts/content/{sha256}`, for a
host token), and the admin's `/v1/hosts` (list, drain, remove) and `/v1/hosts/tokens` (mint, list, revoke).

HTTP only: auth, JSON shapes, the Starlette WebSocket as a hostproto Channel; the rules are control's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any, BinaryIO

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from playcast.api.auth import is_admin
from playcast.api.json_body import BodyRefused, json_object
from playcast.control.errors import ControlError
from playcast.control.fleet import Fleet, HostRecord
from playcast.control.host_tokens import HostToken
from playcast.hostproto.channel import ChannelClosed
from playcast.hostproto.types import CONTENT_PATH
from playcast.hostproto.websocket import CONNECT_PATH
from playcast.storage import ObjectNotFound, StorageError

log = logging.getLogger(__name__)


class StarletteChannel:
    """A Channel over one accepted Starlette WebSocket (the control plane's end of a host's connection)."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self._closed = False

    async def send(self, text: str) -> None:
        if self._closed:
            raise ChannelClosed("closed")
        try:
            await self.ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            self._closed = True
            raise ChannelClosed(f"the host's connection closed ({exc})") from None

    async def recv(self) -> str:
        if self._closed:
            raise ChannelClosed("closed")
        try:
            message = await self.ws.receive()
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            self._closed = True
            raise ChannelClosed(f"the host's connection closed ({exc})") from None
        if message["type"] == "websocket.disconnect":
            self._closed = True
            raise ChannelClosed("the host closed its connection")
        text = message.get("text")
        if text is None:
            await self.close(1003)
            raise ChannelClosed("the host sent a binary frame: the host protocol speaks text")
        return text

    async def close(self, code: int = 1000) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await self.ws.close(code)


async def host_socket(ws: WebSocket) -> None:
    fleet = getattr(ws.app.state, "host_pool", None)
    if not isinstance(fleet, Fleet):
        await ws.close(4404, "this server takes no hosts")
        return
    await ws.accept()
    await fleet.serve(StarletteChannel(ws))


MAX_BODY_BYTES = 4096
CONTENT_CHUNK_BYTES = 1 << 20


def _error(status: int, type_: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "message": message}}, status_code=status)


def _host_doc(r: HostRecord) -> dict[str, Any]:
    return {"hostId": r.host_id, "location": r.location, "slots": r.slots, "busy": r.busy, "warm": r.warm,
            "status": r.status, "lastHeartbeatAt": r.last_heartbeat_at, "version": r.version, "encoder": r.encoder}


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _chunks(archive: BinaryIO) -> Iterator[bytes]:
    """The archive in chunks (read in Starlette's thread pool), closed at the end or when the host hangs up."""
    with archive:
        while chunk := archive.read(CONTENT_CHUNK_BYTES):
            yield chunk


async def content_archive(request: Request) -> Response:
    """GET /v1/hosts/content/{sha256}: an application's archive, streamed, for a host's token (and no other)."""
    plane = getattr(request.app.state, "plane", None)
    token = _bearer(request)
    if plane is None or token is None:
        return _error(401, "UnauthorizedException", "send Authorization: Bearer <host token>")
    refused = await plane.host_tokens.check(token)
    if refused is not None:
        return _error(401, "UnauthorizedException", refused)
    sha256 = request.path_params["sha256"]
    try:
        archive = await asyncio.to_thread(plane.applications.archives.open, sha256)
    except ValueError:
        return _error(400, "ValidationException", "a content archive is named by 64 lowercase hex digits")
    except ObjectNotFound:
        return _error(404, "ResourceNotFoundException", f"no content archive {sha256} in this server's content "
                      "storage (server replicas must share one PLAYCAST_CONTENT_STORAGE)")
    except StorageError as exc:
        log.warning("content archive %s unreadable: %s", sha256, exc)
        return _error(503, "ServiceUnavailableException", "the content storage cannot be read now; try again")
    return StreamingResponse(_chunks(archive), media_type="application/gzip")


def _token_doc(t: HostToken) -> dict[str, Any]:
    return {"tokenId": t.token_id, "description": t.description, "createdAt": t.created_at,
            "revokedAt": t.revoked_at, "status": "REVOKED" if t.revoked_at is not None else "ACTIVE"}


class HostsApi:
    """`/v1/hosts…` for the admin (Bearer admin token)."""

    def __init__(self, admin_token: str) -> None:
        self.admin_token = admin_token

    def _refused(self, request: Request) -> Response | None:
        if not is_admin(request, self.admin_token):
            return _error(401, "UnauthorizedException", "send Authorization: Bearer <admin_token>")
        if not isinstance(getattr(request.app.state, "host_pool", None), Fleet):
            return _error(404, "ResourceNotFoundException", "this server takes no hosts")
        return None

    @staticmethod
    def _fleet(request: Request) -> Fleet:
        return request.app.state.host_pool

    async def list_hosts(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        return JSONResponse({"items": [_host_doc(r) for r in await self._fleet(request).all_host_records()]})

    async def drain(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            record = await self._fleet(request).drain(request.path_params["host_id"])
        except LookupError as exc:
            return _error(404, "ResourceNotFoundException", str(exc).strip("'"))
        return JSONResponse(_host_doc(record))

    async def remove(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            await self._fleet(request).remove(request.path_params["host_id"])
        except LookupError as exc:
            return _error(404, "ResourceNotFoundException", str(exc).strip("'"))
        return Response(status_code=204)

    async def create_token(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            body = await json_object(request, MAX_BODY_BYTES, empty_ok=True)
            token, secret = await request.app.state.plane.host_tokens.create(body.get("description") or "")
        except BodyRefused as exc:
            return _error(exc.status, exc.type, exc.message)
        except ControlError as exc:
            return _error(400, exc.code, exc.message)
        return JSONResponse({**_token_doc(token), "token": secret}, status_code=201)

    async def list_tokens(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        return JSONResponse({"items": [_token_doc(t) for t in await request.app.state.plane.host_tokens.list()]})

    async def revoke_token(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            await request.app.state.plane.host_tokens.revoke(request.path_params["token_id"])
        except ControlError as exc:
            return _error(404, exc.code, exc.message)
        await self._fleet(request).recheck()  # hosts that joined with it leave now
        return Response(status_code=204)

    def routes(self) -> list[BaseRoute]:
        return [
            WebSocketRoute(CONNECT_PATH, host_socket),
            Route(CONTENT_PATH + "{sha256}", content_archive, methods=["GET"]),
            Route("/v1/hosts", self.list_hosts, methods=["GET"]),
            Route("/v1/hosts/tokens", self.create_token, methods=["POST"]),
            Route("/v1/hosts/tokens", self.list_tokens, methods=["GET"]),
            Route("/v1/hosts/tokens/{token_id}", self.revoke_token, methods=["DELETE"]),
            Route("/v1/hosts/{host_id}/drain", self.drain, methods=["POST"]),
            Route("/v1/hosts/{host_id}", self.remove, methods=["DELETE"]),
        ]
