"""The in-process bus: history in this process's memory, delivery by direct call. The default for one server.

No network, no threads; a publish delivers to local subscribers before it returns."""

from __future__ import annotations

import secrets
from typing import Any

from .base import Bus, BusListener
from .history import HistoryPolicy, MemoryHistory, Position, Recovery, StoredEvent


class MemoryBus(Bus):
    def __init__(self) -> None:
        self.replica_id = "local-" + secrets.token_hex(4)
        self.history = MemoryHistory()
        self._listener: BusListener | None = None

    async def start(self, listener: BusListener) -> None:
        self._listener = listener

    async def close(self) -> None:
        self._listener = None

    async def publish(self, channel: str, items: list[tuple[str, str]], policy: HistoryPolicy) -> list[StoredEvent]:
        stored = self.history.append(channel, items, policy)
        listener = self._listener
        if listener is not None:
            for event in stored:
                listener.on_event(event)
        return stored

    async def recover(self, channel: str, since: Position | None, policy: HistoryPolicy) -> Recovery:
        return self.history.recover(channel, since, policy)

    async def watch(self, key: str) -> None:
        return None

    async def unwatch(self, key: str) -> None:
        return None

    async def ask_others(self, message: dict[str, Any], timeout_s: float = 2.0) -> list[dict[str, Any]]:
        return []

    async def remote_subscriber_count(self, channel: str) -> int:
        return 0

    def sweep(self) -> int:
        return self.history.sweep()
