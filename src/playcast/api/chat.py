"""First-party chat REST under /v1: events tokens for browsers, room info, replay by time range, moderation
(delete message, ban/unban, disconnect) and viewer invitations (a signed link that gives a guest a cookie).

Authorizes (admin bearer, login cookie, guest cookie), parses and shapes JSON; the rules live in events/chat."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..events.chat import shapes
from ..events.chat.config import NAMESPACE
from ..events.chat.rooms import Room
from ..events.chat.service import ChatService
from ..events.hooks import Identity
from ..json_input import parse_json
from ..store.chat import MESSAGE, ChatEntryRow
from ..store.queries import get_or_create_secret
from .auth import COOKIE_NAME, CookieSigner, is_admin
from .json_body import TOO_LARGE, BodyRefused, json_object
from .urls import public_base

log = logging.getLogger(__name__)

GUEST_COOKIE = "playcast_guest"
INVITE_TTL_S = 24 * 3600
MAX_PAGE = 1000
MAX_BODY_BYTES = 16 * 1024  # a moderation action or an invitation to redeem
NAME_RE = re.compile(r"^[^\x00-\x1f\x7f<>]{1,32}$")

_STATUS = {"BadRequestException": 400, TOO_LARGE: 413, "UnauthorizedException": 403, "NotFoundException": 404,
           "ConflictException": 409, "RateLimitExceededException": 429, "MessageDeniedException": 403}


def _error(status: int, type_: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "message": message}}, status_code=status)


def _chat_error(exc: shapes.ChatError) -> JSONResponse:
    return _error(_STATUS.get(exc.code, 400), exc.code, exc.message)


def parse_time(raw: str | None, name: str, default: float) -> float:
    """ISO 8601 (with or without zone; no zone = UTC) or unix seconds / milliseconds."""
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        try:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name} must be an ISO 8601 time or unix seconds, got {raw!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    return value / 1000 if value > 1e11 else value  # milliseconds


def _page_token(row: ChatEntryRow) -> str:
    raw = json.dumps([row.created_at, row.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_page_token(token: str) -> tuple[float, str]:
    try:
        created, rid = parse_json(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)), max_bytes=1024)
        return float(created), str(rid)
    except (binascii.Error, ValueError, TypeError):
        raise ValueError("invalid nextToken") from None


class Invites:
    """Signed, expiring invitations to one room: '<room>.<expires>.<hmac>'; and the guest cookie they give."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self.guests = CookieSigner(hashlib.sha256(secret + b"guest-cookie").digest())

    def _mac(self, payload: str) -> str:
        return hmac.new(self._secret, f"invite:{payload}".encode(), hashlib.sha256).hexdigest()[:32]

    def mint(self, room: str, ttl_s: int = INVITE_TTL_S) -> tuple[str, float]:
        expires = int(time.time() + ttl_s)
        payload = f"{room}.{expires}"
        return f"{payload}.{self._mac(payload)}", float(expires)

    def verify(self, invite: str) -> str | None:
        """The room of a valid, unexpired invitation, else None."""
        parts = invite.split(".") if isinstance(invite, str) else []
        if len(parts) != 3 or not shapes.ROOM_ID_RE.match(parts[0]) or not parts[1].isdigit():
            return None
        if not hmac.compare_digest(parts[2].encode("utf-8", "surrogatepass"),
                                   self._mac(f"{parts[0]}.{parts[1]}").encode()):
            return None
        return parts[0] if int(parts[1]) >= time.time() else None

    @staticmethod
    def new_guest(room: str) -> str:
        return f"g-{room}-{secrets.token_hex(6)}"


class ChatApi:
    def __init__(self, admin_token: str) -> None:
        self.admin_token = admin_token
        self._invites: Invites | None = None

    # -- helpers ------------------------------------------------------------------------------------

    @staticmethod
    def _chat(request: Request) -> ChatService | None:
        return getattr(request.app.state, "chat", None)

    async def _invites_for(self, request: Request) -> Invites:
        if self._invites is None:
            secret = await get_or_create_secret(request.app.state.db.sessionmaker, "chat-invites")
            self._invites = Invites(bytes.fromhex(secret))
        return self._invites

    async def _who(self, request: Request) -> Identity | None:
        """Admin (bearer), a logged-in browser user (cookie of /login) or an invited guest (guest cookie)."""
        if is_admin(request, self.admin_token):
            return Identity("USER_TOKEN", "admin", "admin", frozenset({"admin"}))
        user = request.app.state.cookie_signer.verify(request.cookies.get(COOKIE_NAME))
        if user:
            return Identity("USER_TOKEN", user, None, frozenset({"viewer"}))
        guest = (await self._invites_for(request)).guests.verify(request.cookies.get(GUEST_COOKIE))
        if guest and shapes.guest_room(guest):
            return Identity("USER_TOKEN", guest, None, frozenset({"viewer"}))
        return None

    async def _begin(self, request: Request) -> tuple[ChatService, Identity] | JSONResponse:
        chat = self._chat(request)
        if chat is None:
            return _error(503, "ServiceUnavailable", "chat is not running on this server")
        who = await self._who(request)
        if who is None:
            return _error(401, "Unauthorized", "sign in first (the login link or a viewer invitation)")
        return chat, who

    async def _enter(self, request: Request,
                     moderating: str | None = None) -> tuple[ChatService, Identity, Room] | JSONResponse:
        """_begin, then the path's room when the caller may use it (and moderate it, if `moderating`: the 403's
        message, is given)."""
        begun = await self._begin(request)
        if isinstance(begun, JSONResponse):
            return begun
        chat, who = begun
        try:
            room = await chat.rooms.check_access(request.path_params["room"], who)
            if moderating is not None and not chat.rooms.can_moderate(room, who):
                raise shapes.denied(moderating)
        except shapes.ChatError as exc:
            return _chat_error(exc)
        return chat, who, room

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        """The optional JSON object body (read once the caller is authorized, if the route has callers to check)."""
        try:
            return await json_object(request, MAX_BODY_BYTES, bad_type="BadRequestException", empty_ok=True)
        except BodyRefused as exc:
            raise shapes.ChatError(exc.type, exc.message) from None

    @staticmethod
    def _base(request: Request) -> str:
        return public_base(request)

    # -- tokens -------------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        begun = await self._begin(request)
        if isinstance(begun, JSONResponse):
            return begun
        chat, who = begun
        name = request.query_params.get("displayName") or None
        if name is not None:
            name = name.strip()
            if not NAME_RE.match(name):
                return _error(400, "BadRequestException", "displayName must be 1-32 printable characters")
        room_doc = None
        room_id = request.query_params.get("room")
        if room_id:
            try:
                room = await chat.rooms.check_access(room_id, who)
            except shapes.ChatError as exc:
                return _chat_error(exc)
            room_doc = self._room_doc(chat, room, who)
        elif shapes.guest_room(who.user_id):
            return _error(400, "BadRequestException", "guests ask for a token with ?room=<streamSessionId>")
        if name is None:
            role = room_doc["role"] if room_doc else ("admin" if "admin" in who.roles else "viewer")
            kind = "guest" if shapes.guest_room(who.user_id) else role
            name = {"admin": "Admin", "player": "Player"}.get(kind, f"{kind}-{who.user_id[-4:]}")
        who = Identity(who.auth_mode, who.user_id, name, who.roles)
        ttl = chat.config.token_ttl_s
        token = chat.events.auth.issue_user_token(who.user_id, name, sorted(who.roles),
                                                  {NAMESPACE: {"pub": True, "sub": True}}, ttl)
        base = self._base(request)
        ws = "wss://" + base[len("https://"):] if base.startswith("https://") else \
            "ws://" + base.removeprefix("http://")
        return JSONResponse({"token": token, "realtimeUrl": f"{ws}/event/realtime", "httpUrl": f"{base}/event",
                             "userId": who.user_id, "displayName": name, "roles": sorted(who.roles),
                             "expiresAt": int(time.time() + ttl), "room": room_doc},
                            headers={"Cache-Control": "no-store"})

    def _room_doc(self, chat: ChatService, room: Room, who: Identity) -> dict[str, Any]:
        role = chat.rooms.role_of(room, who)
        return {"id": room.id, "role": role, "canModerate": chat.rooms.can_moderate(room, who),
                "channel": shapes.room_channel(room.id), "reactions": chat.config.reactions,
                "maxMessageLength": chat.config.max_message_length}

    # -- rooms --------------------------------------------------------------------------------------

    async def room(self, request: Request) -> Response:
        entered = await self._enter(request)
        if isinstance(entered, JSONResponse):
            return entered
        chat, who, room = entered
        doc = self._room_doc(chat, room, who)
        counts = await chat.presence.counts(room.id)
        doc.update(viewers=counts["room"], counts=counts)
        if doc["canModerate"]:
            doc["bans"] = [{"userId": b.user_id, "reason": b.reason, "bannedBy": b.banned_by,
                            "at": shapes.iso(b.created_at)} for b in await chat.store.bans(room.id)]
        return JSONResponse(doc)

    async def messages(self, request: Request) -> Response:
        """Replay: entries of a time range (messages, reactions, metadata, moderation), oldest first; a deleted
        message comes with its deletion (and, for non-moderators, without its content)."""
        entered = await self._enter(request)
        if isinstance(entered, JSONResponse):
            return entered
        chat, who, room = entered
        q = request.query_params
        try:
            now = time.time()
            start = parse_time(q.get("from"), "from", 0.0)
            end = parse_time(q.get("to"), "to", now + 1)
            if end < start:
                raise shapes.bad("to must not be before from")
            limit = int(q.get("limit") or 200)
            latest = int(q["latest"]) if q.get("latest") else None
            if not 1 <= limit <= MAX_PAGE or (latest is not None and not 1 <= latest <= MAX_PAGE):
                raise shapes.bad(f"limit and latest must be between 1 and {MAX_PAGE}")
            after = _parse_page_token(q["nextToken"]) if q.get("nextToken") else None
        except ValueError as exc:
            return _error(400, "BadRequestException", str(exc))
        except shapes.ChatError as exc:
            return _chat_error(exc)
        if latest is not None:
            rows = await chat.store.latest(room.id, start, end, latest)
            next_token = None
        else:
            rows = await chat.store.entries(room.id, start, end, limit + 1, after)
            next_token = _page_token(rows[limit - 1]) if len(rows) > limit else None
            rows = rows[:limit]
        moderator = chat.rooms.can_moderate(room, who)
        deletions = await chat.store.entries_by_id([r.deleted_by for r in rows if r.deleted_by])
        items = []
        for row in rows:
            item = shapes.event_of(row, chat.config.reactions)
            if row.kind == MESSAGE and row.deleted_by:
                deletion = deletions.get(row.deleted_by)
                item["deleted"] = shapes.event_of(deletion) if deletion is not None else {"type": "DELETE_MESSAGE"}
                if not moderator:
                    item["content"] = None
                    item["attributes"] = {}
            items.append(item)
        return JSONResponse({"roomId": room.id, "from": shapes.iso(start), "to": shapes.iso(min(end, now)),
                             "items": items, "nextToken": next_token})

    # -- moderation ---------------------------------------------------------------------------------

    async def _moderate(self, request: Request, action: str, target: str | None = None) -> Response:
        begun = await self._begin(request)
        if isinstance(begun, JSONResponse):
            return begun
        chat, who = begun
        try:
            body = await self._body(request)
            reason = body.get("reason")
            if reason is not None and (not isinstance(reason, str) or len(reason) > 256):
                raise shapes.bad("reason must be a string of at most 256 characters")
            if target is None:
                target = body.get("userId")
                if not isinstance(target, str) or not shapes.USER_ID_RE.match(target):
                    raise shapes.bad("userId is required")
            room = await chat.rooms.check_access(request.path_params["room"], who)
            if not chat.rooms.can_moderate(room, who):
                raise shapes.denied("only the player, moderators and admins moderate this chat room")
            if action == "delete":
                event = await chat.rooms.delete_message(room, who, target, reason)
            elif action == "ban":
                event = await chat.rooms.ban(room, who, target, reason)
            elif action == "unban":
                event = await chat.rooms.unban(room, who, target, reason)
            else:
                event = await chat.rooms.disconnect(room, who, target, reason)
        except shapes.ChatError as exc:
            return _chat_error(exc)
        await chat.rooms.deliver(room.id, event)
        return JSONResponse(event, status_code=201 if action == "ban" else 200)

    async def delete_message(self, request: Request) -> Response:
        return await self._moderate(request, "delete", request.path_params["message_id"])

    async def ban(self, request: Request) -> Response:
        return await self._moderate(request, "ban")

    async def unban(self, request: Request) -> Response:
        return await self._moderate(request, "unban", request.path_params["user_id"])

    async def disconnect(self, request: Request) -> Response:
        return await self._moderate(request, "disconnect")

    # -- invitations --------------------------------------------------------------------------------

    async def invite(self, request: Request) -> Response:
        """A share link for viewers of this room (the player, moderators, admin)."""
        entered = await self._enter(request, moderating="only the player, moderators and admins invite viewers")
        if isinstance(entered, JSONResponse):
            return entered
        chat, _, room = entered
        invite, expires = (await self._invites_for(request)).mint(room.id)
        url = f"{self._base(request)}/watch/{room.id}?invite={invite}"
        return JSONResponse({"url": url, "invite": invite, "expiresAt": shapes.iso(expires)}, status_code=201)

    async def redeem(self, request: Request) -> Response:
        """Turn an invitation into a guest cookie for its room (a logged-in user keeps their own identity)."""
        if self._chat(request) is None:
            return _error(503, "ServiceUnavailable", "chat is not running on this server")
        try:
            body = await self._body(request)
        except shapes.ChatError as exc:
            return _chat_error(exc)
        invites = await self._invites_for(request)
        room = invites.verify(body.get("invite", ""))
        if room is None:
            return _error(403, "UnauthorizedException", "this invitation is invalid or has expired")
        user = request.app.state.cookie_signer.verify(request.cookies.get(COOKIE_NAME))
        if user:
            return JSONResponse({"roomId": room, "userId": user, "guest": False})
        current = invites.guests.verify(request.cookies.get(GUEST_COOKIE))
        guest = current if current and shapes.guest_room(current) == room else Invites.new_guest(room)
        response = JSONResponse({"roomId": room, "userId": guest, "guest": True})
        response.set_cookie(GUEST_COOKIE, invites.guests.sign(guest), max_age=INVITE_TTL_S, httponly=True,
                            samesite="lax", secure=request.app.state.settings.base_url.startswith("https://"),
                            path="/")
        return response

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/events/token", self.token, methods=["GET"]),
            Route("/v1/chat/invites/redeem", self.redeem, methods=["POST"]),
            Route("/v1/chat/{room}", self.room, methods=["GET"]),
            Route("/v1/chat/{room}/messages", self.messages, methods=["GET"]),
            Route("/v1/chat/{room}/messages/{message_id}", self.delete_message, methods=["DELETE"]),
            Route("/v1/chat/{room}/bans", self.ban, methods=["POST"]),
            Route("/v1/chat/{room}/bans/{user_id}", self.unban, methods=["DELETE"]),
            Route("/v1/chat/{room}/disconnections", self.disconnect, methods=["POST"]),
            Route("/v1/chat/{room}/invites", self.invite, methods=["POST"]),
        ]
