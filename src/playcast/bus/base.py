"""The bus contract between the events core and its transports: publish with history, recovery, fan-out.

Interface and shared types only. Implementations: memory.py (one process) and redis.py (many replicas)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol

from .history import HistoryPolicy, Position, Recovery, StoredEvent


class BusUnavailable(Exception):
    """The bus cannot take a publish or answer a recovery right now (e.g. Redis is restarting)."""


class BusListener(Protocol):
    """What the events core gives the bus: where delivered events, gaps and cluster requests go."""

    def on_event(self, event: StoredEvent) -> None:
        """An event for a watched channel, per channel in offset order, each exactly once."""

    def on_gap(self, channel: str, top: Position | None) -> None:
        """Events of `channel` may have been lost here; the stream continues after `top`. channel may be a
        wildcard path ('/ns/*') with top None when the bus cannot say which channels were affected."""

    async def on_request(self, message: dict[str, Any]) -> dict[str, Any]:
        """A request from another replica (ask_others); the reply goes back to it."""

    def local_counts(self) -> dict[str, int]:
        """Subscriptions per exact channel on this replica (for cluster-wide subscriber counts)."""


class Bus(ABC):
    """Moves published events to every replica that has subscribers, and keeps per-channel history."""

    replica_id: str

    @abstractmethod
    async def start(self, listener: BusListener) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def publish(self, channel: str, items: list[tuple[str, str]], policy: HistoryPolicy) -> list[StoredEvent]:
        """Record (id, payload JSON) pairs in the channel's history and deliver them on every replica watching
        the channel (this one included). Returns them with their positions. Raises BusUnavailable."""

    @abstractmethod
    async def recover(self, channel: str, since: Position | None, policy: HistoryPolicy) -> Recovery:
        """The channel's current position and, if `since` is given, every event after it (or a gap)."""

    @abstractmethod
    async def watch(self, key: str) -> None:
        """Start receiving events of an exact channel ('/ns/a') or of every channel below a wildcard ('/ns/*').
        Called once per key (the core counts its own subscribers). Returns when delivery is active."""

    @abstractmethod
    async def unwatch(self, key: str) -> None: ...

    @abstractmethod
    async def ask_others(self, message: dict[str, Any], timeout_s: float = 2.0) -> list[dict[str, Any]]:
        """Send a request to every other replica and collect their replies (those that answer in time)."""

    @abstractmethod
    async def remote_subscriber_count(self, channel: str) -> int:
        """Subscriptions to exactly `channel` on the other replicas (as they last reported)."""

    def counts_changed(self) -> None:  # noqa: B027 - optional hook, most buses need nothing
        """The local subscription counts changed (the Redis bus reports them to the others soon)."""
        return None

    @property
    def healthy(self) -> bool:
        return True
