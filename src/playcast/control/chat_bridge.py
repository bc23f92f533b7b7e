"""The bridge between a stream session's chat room and its game: chat messages and reactions go to the game as
JSON application messages from client id 0; what the game sends to client id 0 is published on /chat/<id>/game.

Glue between the HostPool and the chat service only: no chat rules, no sockets, no HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from playcast.control.host_pool import HostPool
from playcast.hostproto.types import SessionEvent, SessionEventKind

from ..events.chat import shapes

if TYPE_CHECKING:
    from ..events.chat.service import ChatService
    from ..store.db import Database

log = logging.getLogger(__name__)

MAX_PENDING = 256  # per session; beyond it new chat for that game is dropped (with a warning), never reordered


class ChatSide(Protocol):
    def add_listener(self, listener: Any) -> None: ...

    @property
    def rooms(self) -> Any: ...


class ChatGameBridge:
    def __init__(self, host_pool: HostPool, chat: ChatSide) -> None:
        self.host_pool = host_pool
        self.chat = chat
        self._pending: dict[str, deque[bytes]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        self.sent = 0  # messages the game accepted
        self.dropped = 0

    def start(self) -> None:
        self.host_pool.on_event(self._on_session_event)
        self.chat.add_listener(self._on_chat)

    async def close(self) -> None:
        self._closed = True
        workers = list(self._workers.values())
        for t in workers:
            t.cancel()
        for t in workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._workers.clear()
        self._pending.clear()

    # -- chat -> game -------------------------------------------------------------------------------

    def _on_chat(self, room_id: str, event: dict[str, Any]) -> None:
        if self._closed:
            return
        payload = shapes.game_payload(event)
        if payload is None:
            return
        queue = self._pending.setdefault(room_id, deque())
        if len(queue) >= MAX_PENDING:
            self.dropped += 1
            log.warning("game of session %s is not taking chat fast enough: %s %s dropped", room_id,
                        event.get("type"), event.get("id"))
            return
        queue.append(payload)
        if room_id not in self._workers:
            self._workers[room_id] = asyncio.get_running_loop().create_task(self._drain(room_id),
                                                                            name=f"chat-to-game-{room_id}")

    async def _drain(self, room_id: str) -> None:
        """Send one session's queue in order; exits when it is empty (a new message starts a new worker)."""
        queue = self._pending.get(room_id)
        try:
            while queue:
                payload = queue.popleft()
                try:
                    ok = await self.host_pool.send_app_message(room_id, payload)
                except Exception:  # noqa: BLE001 - a host problem must not stop the bridge
                    log.exception("sending chat to the game of session %s failed", room_id)
                    ok = False
                if ok:
                    self.sent += 1
                else:
                    self.dropped += 1
                    log.debug("game of session %s did not take a chat message (not running here?)", room_id)
        finally:
            self._workers.pop(room_id, None)
            current = self._pending.get(room_id)
            if current is queue and not queue:
                self._pending.pop(room_id, None)
            elif current and not self._closed:  # the session's queue was replaced meanwhile: drain the new one
                self._workers[room_id] = asyncio.get_running_loop().create_task(self._drain(room_id))

    # -- game -> chat -------------------------------------------------------------------------------

    async def _on_session_event(self, event: SessionEvent) -> None:
        if self._closed:
            return
        if event.kind == SessionEventKind.ENDED:
            self._pending.pop(event.session_id, None)
            return
        if event.kind != SessionEventKind.APP_MESSAGE:
            return
        payload = event.detail.get("payload")
        if not isinstance(payload, bytes | bytearray):
            return
        try:
            await self.chat.rooms.deliver(event.session_id, shapes.from_game(bytes(payload), event.at), shapes.GAME)
        except Exception:  # noqa: BLE001 - the game keeps running whatever chat does
            log.exception("publishing a message of the game of session %s failed", event.session_id)


class RunningChat:
    """Chat plus its game bridge, as the server runs them; `close()` stops both."""

    def __init__(self, service: ChatService, bridge: ChatGameBridge | None) -> None:
        self.service = service
        self.bridge = bridge

    async def close(self) -> None:
        if self.bridge is not None:
            await self.bridge.close()
        await self.service.close()


async def start_chat(events: Any, db: Database, host_pool: HostPool) -> RunningChat | None:
    """Start chat on the events service (None when the server runs without one) and bridge it to the games.
    Settings come from PLAYCAST_CHAT_* (see ChatConfig.from_env); a bad value stops the server with its error."""
    if events is None:
        return None
    from ..events.chat.config import ChatConfig
    from ..events.chat.service import ChatService

    service = ChatService(events, db, ChatConfig.from_env())
    await service.start()
    bridge = None
    if service.config.bridge_to_game:
        bridge = ChatGameBridge(host_pool, service)
        bridge.start()
    return RunningChat(service, bridge)
