"""Chat on top of the events core: defines the `chat` namespace, registers the handler and presence listener,
and owns the chat store; the one object the server wires in (`ChatService.start`/`close`) and the API calls.

Assembly and lifecycle only; rules are in rooms.py, protocol mapping in handler.py."""

from __future__ import annotations

import logging
from typing import Any

from ...store.chat import ChatStore
from ...store.db import Database
from .config import NAMESPACE, ChatConfig
from .handler import ChatHandler
from .presence import Presence
from .rooms import ChatListener, ChatRooms, RoomDirectory, SessionDirectory

log = logging.getLogger(__name__)


class ChatService:
    """`events` is the EventsService (define_namespace, register_handler, add_presence_listener, publish,
    disconnect_user, subscriber_count, auth)."""

    def __init__(self, events: Any, db: Database, config: ChatConfig | None = None,
                 directory: RoomDirectory | None = None) -> None:
        self.events = events
        self.config = config or ChatConfig()
        self.store = ChatStore(db)
        self.rooms = ChatRooms(self.config, self.store, directory or SessionDirectory(db), events)
        self.presence = Presence(self.rooms, self.config.presence_interval_s)
        self.handler = ChatHandler(self.rooms)
        self._started = False

    def add_listener(self, listener: ChatListener) -> None:
        """Called with (room id, event) for every accepted chat message and reaction (e.g. the game bridge)."""
        self.rooms.add_listener(listener)

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.store.start()
        self.events.define_namespace(namespace_config())
        self.events.register_handler(NAMESPACE, self.handler)
        self.events.add_presence_listener(self.presence.on_change)
        log.info("chat started (namespace %s, room rate %s, user rate %s, review hook %s)", NAMESPACE,
                 self.config.room_rate.describe(), self.config.user_rate.describe(),
                 "on" if self.config.review_hook else "off")

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.presence.close()
        await self.store.close()


def namespace_config() -> Any:
    """`chat`: user tokens (browsers) and the API key (backends) may connect, publish and subscribe; the handler
    decides per room."""
    from ..namespaces import NamespaceConfig

    modes = ["USER_TOKEN", "API_KEY"]
    return NamespaceConfig(name=NAMESPACE, publish_auth_modes=modes, subscribe_auth_modes=modes)
