"""Viewer counts and join/leave for chat rooms: listens to the core's subscription changes and publishes a
coalesced PRESENCE event (counts per channel, who joined and left) on /chat/<room>/presence.

Bookkeeping and publishing only; counts come from the core (cluster-wide), never from its own tallies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..hooks import Identity
from . import shapes
from .rooms import ChatRooms

log = logging.getLogger(__name__)

MAX_NAMES = 20  # join/leave names listed per presence event (the counts are always exact)


@dataclass
class _Pending:
    joined: dict[str, str] = field(default_factory=dict)  # user id -> display name
    left: dict[str, str] = field(default_factory=dict)


class Presence:
    def __init__(self, rooms: ChatRooms, interval_s: float = 0.25) -> None:
        self.rooms = rooms
        self.interval_s = interval_s
        self._pending: dict[str, _Pending] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    @staticmethod
    def _room_of(channel: str) -> tuple[str, str] | None:
        segs = channel.strip("/").split("/")
        if len(segs) < 2 or segs[0] != "chat" or segs[1] == "*" or not shapes.ROOM_ID_RE.match(segs[1]):
            return None
        return segs[1], segs[2] if len(segs) > 2 else shapes.ROOM

    async def on_change(self, channel: str, identity: Identity, joined: bool) -> None:
        """The core's PresenceListener: a subscription on `channel` started (joined) or ended."""
        where = self._room_of(channel)
        if where is None or self._closed:
            return
        room, sub = where
        if sub == shapes.PRESENCE:
            return  # watching the counts is not being in the room
        pending = self._pending.setdefault(room, _Pending())
        if sub in (shapes.ROOM, "*") and identity.user_id is not None:
            name = identity.display_name or identity.user_id
            mine, other = (pending.joined, pending.left) if joined else (pending.left, pending.joined)
            if identity.user_id in other:
                other.pop(identity.user_id)  # joined and left within one interval: no news
            else:
                mine[identity.user_id] = name
        if room not in self._tasks:
            self._tasks[room] = asyncio.get_running_loop().create_task(self._flush_later(room),
                                                                       name=f"chat-presence-{room}")

    async def counts(self, room: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for sub in shapes.SUB_CHANNELS:
            out[sub or "room"] = await self.rooms.events.subscriber_count(shapes.room_channel(room, sub))
        return out

    async def snapshot(self, room: str) -> dict[str, Any]:
        counts = await self.counts(room)
        now = time.time()
        return {"type": "PRESENCE", "id": shapes.new_id(), "roomId": room, "viewers": counts["room"],
                "counts": counts, "sendTime": shapes.iso(now), "ts": round(now, 6)}

    async def _flush_later(self, room: str) -> None:
        try:
            await asyncio.sleep(self.interval_s)
            pending = self._pending.pop(room, _Pending())
            self._tasks.pop(room, None)
            event = await self.snapshot(room)
            event["joined"] = [{"userId": u, "displayName": n} for u, n in list(pending.joined.items())[:MAX_NAMES]]
            event["left"] = [{"userId": u, "displayName": n} for u, n in list(pending.left.items())[:MAX_NAMES]]
            await self.rooms.deliver(room, event, shapes.PRESENCE)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - presence is best effort; the next change publishes again
            log.exception("presence update for chat room %s failed", room)
        finally:
            if self._tasks.get(room) is asyncio.current_task():
                self._tasks.pop(room, None)

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
