"""The contract between the events core (protocol, routing, auth, history) and namespace handlers (chat, ...).

Types only: the core calls handlers with these; handlers never see sockets or the bus."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Identity:
    """Who is connected/publishing. auth_mode: "API_KEY" | "USER_TOKEN" | "SERVER" (in-process publishes)."""

    auth_mode: str
    user_id: str | None = None
    display_name: str | None = None
    roles: frozenset[str] = frozenset()  # e.g. {"viewer"}, {"player"}, {"moderator"}, {"admin"}
    connection_id: str | None = None  # None for HTTP publishes and server-side publishes
    claims: dict[str, Any] = field(default_factory=dict)  # the verified token's claims, if any

    @property
    def is_moderator(self) -> bool:
        return bool(self.roles & {"moderator", "admin"})


@dataclass(frozen=True)
class ChannelPath:
    """'/ns/a/b' -> segments ('ns', 'a', 'b'); namespace 'ns'. Subscriptions may end in '*'."""

    path: str
    segments: tuple[str, ...]

    @property
    def namespace(self) -> str:
        return self.segments[0]

    @property
    def is_wildcard(self) -> bool:
        return self.segments[-1] == "*"


@dataclass
class IncomingEvent:
    id: str  # server-assigned per event
    payload: Any  # the parsed JSON value of the published (stringified) event


@dataclass
class OutgoingEvent:
    """What a handler lets through. `error` set = this event fails (reported per event in publish_success)."""

    id: str
    payload: Any = None
    error: str | None = None


@dataclass
class PublishContext:
    channel: ChannelPath
    identity: Identity
    events: list[IncomingEvent]
    received_at: float  # unix time


@dataclass
class SubscribeContext:
    channel: ChannelPath
    identity: Identity


class HandlerError(Exception):
    """Reject the whole publish/subscribe: becomes an AppSync `error` with this errorType and message."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class NamespaceHandler(Protocol):
    async def on_publish(self, ctx: PublishContext) -> list[OutgoingEvent] | None:
        """Filter/transform/reject before fan-out. None = deliver unchanged. Raise HandlerError to refuse."""

    async def on_subscribe(self, ctx: SubscribeContext) -> None:
        """Authorize a subscription. Raise HandlerError to refuse."""

    async def on_unsubscribe(self, ctx: SubscribeContext) -> None:
        """A subscription ended (unsubscribe, socket closed, kicked): presence bookkeeping."""


PresenceListener = Callable[[str, Identity, bool], Awaitable[None]]
"""(channel path, identity, joined?) — called by the core when a subscription starts/ends."""
