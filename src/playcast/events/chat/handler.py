"""The `chat` namespace handler: maps AppSync publishes and subscriptions on /chat/<room>[/sub] to chat actions.

Translation only (channel -> action, ChatError -> per-event error or HandlerError); the rules live in rooms.py."""

from __future__ import annotations

import logging
from typing import Any

from ..hooks import HandlerError, OutgoingEvent, PublishContext, SubscribeContext
from . import shapes
from .rooms import ChatRooms, Room
from .shapes import SEND_MESSAGE, ChatError

log = logging.getLogger(__name__)


def _refuse(exc: ChatError) -> HandlerError:
    return HandlerError(exc.code, exc.message)


class ChatHandler:
    """NamespaceHandler for `chat`. Server-side publishes (identity SERVER) pass through unchanged."""

    def __init__(self, rooms: ChatRooms) -> None:
        self.rooms = rooms

    async def on_subscribe(self, ctx: SubscribeContext) -> None:
        try:
            room, _sub = shapes.parse_channel(ctx.channel)
            if room is None:
                if not (self.rooms.is_backend(ctx.identity) or "admin" in ctx.identity.roles):
                    raise shapes.denied("only admins and backends subscribe to every chat room (/chat/*)")
                return
            await self.rooms.check_access(room, ctx.identity)
        except ChatError as exc:
            raise _refuse(exc) from None

    async def on_unsubscribe(self, ctx: SubscribeContext) -> None:
        return None  # presence is kept by the presence listener

    async def on_publish(self, ctx: PublishContext) -> list[OutgoingEvent] | None:
        if ctx.identity.auth_mode == "SERVER":
            return None
        try:
            room_id, sub = shapes.parse_channel(ctx.channel)
            if room_id is None or sub == "*":
                raise shapes.bad("publish to one chat channel, not a wildcard")
            if sub in (shapes.PRESENCE, shapes.GAME):
                raise shapes.denied(f"only the server publishes on /chat/<room>/{sub}")
            room = await self.rooms.check_access(room_id, ctx.identity)
        except ChatError as exc:
            raise _refuse(exc) from None
        out: list[OutgoingEvent] = []
        for ev in ctx.events:
            try:
                out.append(OutgoingEvent(ev.id, await self._one(room, sub, ctx, ev.payload)))
            except ChatError as exc:
                out.append(OutgoingEvent(ev.id, error=str(exc)))
        return out

    async def _one(self, room: Room, sub: str, ctx: PublishContext, payload: object) -> dict[str, Any]:
        cfg = self.rooms.config
        who = ctx.identity
        if sub == shapes.REACTIONS:
            return await self.rooms.react(room, who, shapes.parse_reaction(payload, cfg.reactions))
        if sub == shapes.META:
            name, attrs = shapes.parse_meta(payload, cfg.max_attributes_bytes)
            return await self.rooms.metadata(room, who, name, attrs)
        act = shapes.parse_room_action(payload, cfg.max_message_length, cfg.max_attributes_bytes)
        action = act["action"]
        if action == SEND_MESSAGE:
            return await self.rooms.send_message(room, who, act["content"], act["attributes"], act["requestId"])
        if action == shapes.DELETE_MESSAGE:
            event = await self.rooms.delete_message(room, who, act["messageId"], act["reason"])
        elif action == shapes.DISCONNECT_USER:
            event = await self.rooms.disconnect(room, who, act["userId"], act["reason"])
        elif action == shapes.BAN_USER:
            event = await self.rooms.ban(room, who, act["userId"], act["reason"])
        else:
            event = await self.rooms.unban(room, who, act["userId"], act["reason"])
        if act["requestId"]:
            event["requestId"] = act["requestId"]
        return event
