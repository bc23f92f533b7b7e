"""Chat rooms (one per stream session): who may do what, and each chat action — send, react, metadata, delete,
disconnect, ban, unban — validated, rate-limited, reviewed and persisted.

The logic both the namespace handler and the REST API call; it returns event payloads and never touches sockets."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select

from ...store.chat import (
    BAN_USER,
    DELETE_MESSAGE,
    DISCONNECT_USER,
    EVENT,
    MESSAGE,
    REACTION,
    UNBAN_USER,
    ChatStore,
)
from ...store.db import Database
from ...store.models import StreamSessionRow
from ..hooks import Identity
from . import shapes
from .config import ChatConfig
from .limits import Limiter, RateLimited
from .review import Reviewer, ReviewRequest
from .shapes import ChatError, bad, denied

log = logging.getLogger(__name__)

SERVER_IDENTITY = Identity(auth_mode="SERVER", display_name="playcast", roles=frozenset({"system"}))
BAN_CACHE_S = 2.0

ChatListener = Callable[[str, dict[str, Any]], None]
"""(room id, event payload): called for every accepted chat message and reaction (the game bridge)."""


class EventsPublisher(Protocol):
    """The part of the events core chat needs."""

    async def publish(self, channel: str, payloads: list[Any], identity: Identity | None = None) -> Any: ...

    async def disconnect_user(self, user_id: str, reason: str) -> int: ...

    async def subscriber_count(self, channel: str) -> int: ...


class RoomDirectory(Protocol):
    async def player_of(self, room_id: str) -> tuple[bool, str | None]:
        """(room exists, user id of the session's player or None)."""


class SessionDirectory:
    """Rooms are stream sessions: a room exists when the session does; its player is the session's UserId."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._known: dict[str, str | None] = {}

    async def player_of(self, room_id: str) -> tuple[bool, str | None]:
        if room_id in self._known:
            return True, self._known[room_id]
        async with self.db.session() as s:
            row = (await s.execute(select(StreamSessionRow.user_id).where(StreamSessionRow.id == room_id))).first()
        if row is None:
            return False, None
        if len(self._known) > 50_000:
            self._known.clear()
        self._known[room_id] = row[0]  # a session's user never changes
        return True, row[0]


@dataclass(frozen=True)
class Room:
    id: str
    player: str | None


class ChatRooms:
    def __init__(self, config: ChatConfig, store: ChatStore, directory: RoomDirectory,
                 events: EventsPublisher) -> None:
        self.config = config
        self.store = store
        self.directory = directory
        self.events = events
        self.messages = Limiter(config.room_rate, config.user_rate)
        self.reactions = Limiter(config.reaction_room_rate, config.reaction_user_rate)
        self.reviewer = Reviewer(config.review_hook, config.review_budget_s, config.review_fallback,
                                 config.max_message_length)
        self._bans: dict[str, tuple[float, set[str]]] = {}
        self._listeners: list[ChatListener] = []

    def add_listener(self, listener: ChatListener) -> None:
        self._listeners.append(listener)

    def _notify(self, room_id: str, event: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(room_id, event)
            except Exception:  # noqa: BLE001 - a listener must not break chat
                log.exception("chat listener failed")

    # -- access -------------------------------------------------------------------------------------

    async def room(self, room_id: str) -> Room:
        if not shapes.ROOM_ID_RE.match(room_id):
            raise bad(f"invalid chat room id {room_id!r}")
        exists, player = await self.directory.player_of(room_id)
        if not exists:
            raise ChatError("NotFoundException", f"no chat room {room_id!r}: there is no such stream session")
        return Room(room_id, player)

    async def banned(self, room_id: str) -> set[str]:
        now = time.monotonic()
        cached = self._bans.get(room_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        users = await self.store.banned_users(room_id)
        if len(self._bans) > 10_000:
            self._bans.clear()
        self._bans[room_id] = (now + BAN_CACHE_S, users)
        return users

    @staticmethod
    def is_backend(identity: Identity) -> bool:
        return identity.auth_mode in ("SERVER", "API_KEY")

    def role_of(self, room: Room, identity: Identity) -> str:
        if self.is_backend(identity):
            return shapes.SYSTEM
        if "admin" in identity.roles:
            return shapes.ADMIN
        if identity.user_id is not None and identity.user_id == room.player:
            return shapes.PLAYER
        if "moderator" in identity.roles:
            return shapes.MODERATOR
        return shapes.VIEWER

    def can_moderate(self, room: Room, identity: Identity) -> bool:
        return self.role_of(room, identity) != shapes.VIEWER

    async def check_access(self, room_id: str, identity: Identity) -> Room:
        """The room, if this identity may read and write in it (not banned, a guest only in its own room)."""
        room = await self.room(room_id)
        if self.is_backend(identity):
            return room
        guest_of = shapes.guest_room(identity.user_id)
        if guest_of is not None and guest_of != room_id:
            raise denied("this invitation is for another stream")
        if identity.user_id is None:
            raise denied("chat needs a user token")
        if identity.user_id in await self.banned(room_id):
            raise denied("you are banned from this chat room")
        return room

    # -- actions ------------------------------------------------------------------------------------

    async def send_message(self, room: Room, identity: Identity, content: str, attributes: dict[str, str],
                           request_id: str | None = None) -> dict[str, Any]:
        who = shapes.sender(identity, self.role_of(room, identity))
        if len(content) > self.config.max_message_length:
            raise bad(f"content is {len(content)} characters; the limit is {self.config.max_message_length}")
        self._rate(self.messages, room.id, identity)
        now = time.time()
        entry = shapes.entry_for(MESSAGE, room.id, who, now, content=content, attributes=attributes)
        decision = await self.reviewer.review(ReviewRequest(room.id, entry.id, content, attributes,
                                                            who["userId"], who["displayName"], who["role"]))
        if not decision.allowed:
            raise ChatError("MessageDeniedException", decision.reason or "denied by review")
        try:
            attrs = shapes.attributes(decision.attributes, self.config.max_attributes_bytes)
        except ChatError:
            log.warning("review hook returned invalid attributes for message %s; keeping the original", entry.id)
            attrs = attributes
        entry = dataclasses.replace(entry, content=decision.content, attributes=attrs)  # same id the hook saw
        await self.store.record(entry)
        event = shapes.event_of(entry, request_id=request_id)
        self._notify(room.id, event)
        return event

    async def react(self, room: Room, identity: Identity, kind: str) -> dict[str, Any]:
        if kind not in self.config.reactions:
            raise bad(f"unknown reaction {kind!r}; use one of {', '.join(sorted(self.config.reactions))}")
        who = shapes.sender(identity, self.role_of(room, identity))
        self._rate(self.reactions, room.id, identity)
        entry = shapes.entry_for(REACTION, room.id, who, time.time(), content=kind)
        await self.store.record(entry)
        event = shapes.event_of(entry, self.config.reactions)
        self._notify(room.id, event)
        return event

    async def metadata(self, room: Room, identity: Identity, name: str,
                       attributes: dict[str, str]) -> dict[str, Any]:
        if not self.can_moderate(room, identity):
            raise denied("only the player, moderators and the server publish metadata events")
        who = shapes.sender(identity, self.role_of(room, identity))
        entry = shapes.entry_for(EVENT, room.id, who, time.time(), content=name, attributes=attributes)
        await self.store.record(entry)
        return shapes.event_of(entry)

    async def delete_message(self, room: Room, actor: Identity, message_id: str,
                             reason: str | None) -> dict[str, Any]:
        who = self._moderator(room, actor)
        deletion = shapes.entry_for(DELETE_MESSAGE, room.id, who, time.time(), target_id=message_id, reason=reason)
        row = await self.store.delete_message(room.id, message_id, deletion)
        if row is None:
            raise ChatError("NotFoundException", f"no message {message_id!r} in this room")
        if row.deleted_by != deletion.id:
            raise ChatError("ConflictException", f"message {message_id!r} was already deleted")
        log.info("chat %s: message %s deleted by %s", room.id, message_id, who["userId"] or who["role"])
        return shapes.event_of(deletion)

    async def disconnect(self, room: Room, actor: Identity, user_id: str, reason: str | None) -> dict[str, Any]:
        who = self._moderator(room, actor)
        self._not_self_or_player(room, actor, user_id, "disconnect")
        entry = shapes.entry_for(DISCONNECT_USER, room.id, who, time.time(), target_id=user_id, reason=reason)
        await self.store.record(entry)
        closed = await self.events.disconnect_user(user_id, reason or "disconnected by a moderator")
        log.info("chat %s: user %s disconnected by %s (%d connections)", room.id, user_id, who["userId"], closed)
        return {**shapes.event_of(entry), "connections": closed}

    async def ban(self, room: Room, actor: Identity, user_id: str, reason: str | None) -> dict[str, Any]:
        who = self._moderator(room, actor)
        self._not_self_or_player(room, actor, user_id, "ban")
        entry = shapes.entry_for(BAN_USER, room.id, who, time.time(), target_id=user_id, reason=reason)
        if not await self.store.ban(room.id, user_id, entry):
            raise ChatError("ConflictException", f"user {user_id!r} is already banned from this room")
        self._bans.pop(room.id, None)
        closed = await self.events.disconnect_user(user_id, reason or "banned from the chat room")
        log.info("chat %s: user %s banned by %s (%d connections closed)", room.id, user_id, who["userId"], closed)
        return {**shapes.event_of(entry), "connections": closed}

    async def unban(self, room: Room, actor: Identity, user_id: str, reason: str | None) -> dict[str, Any]:
        who = self._moderator(room, actor)
        entry = shapes.entry_for(UNBAN_USER, room.id, who, time.time(), target_id=user_id, reason=reason)
        if not await self.store.unban(room.id, user_id, entry):
            raise ChatError("NotFoundException", f"user {user_id!r} is not banned from this room")
        self._bans.pop(room.id, None)
        return shapes.event_of(entry)

    async def deliver(self, room_id: str, event: dict[str, Any], sub: str = shapes.ROOM) -> None:
        """Publish an event the server made (REST moderation, presence, game) to the room's subscribers."""
        await self.events.publish(shapes.room_channel(room_id, sub), [event], SERVER_IDENTITY)

    # -- helpers ------------------------------------------------------------------------------------

    def _rate(self, limiter: Limiter, room_id: str, identity: Identity) -> None:
        try:
            limiter.check(room_id, None if self.is_backend(identity) else identity.user_id)
        except RateLimited as exc:
            raise ChatError("RateLimitExceededException", str(exc)) from None

    def _moderator(self, room: Room, actor: Identity) -> dict[str, Any]:
        if not self.can_moderate(room, actor):
            raise denied("only the player, moderators and admins moderate this chat room")
        return shapes.sender(actor, self.role_of(room, actor))

    @staticmethod
    def _not_self_or_player(room: Room, actor: Identity, user_id: str, what: str) -> None:
        if actor.user_id is not None and actor.user_id == user_id:
            raise bad(f"you cannot {what} yourself")
        if user_id == room.player:
            raise bad(f"the player of this stream cannot be {what}{'ned' if what == 'ban' else 'ed'}")
