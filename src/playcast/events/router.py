"""Local fan-out: the subscriptions held on this server and delivery of bus events to their sockets.

The hot path. A `data` message's shared part is serialized once per event; each socket gets only its
subscription id prepended. No auth, no parsing of client input here."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from playcast.bus.history import Position, StoredEvent

from . import protocol
from .channels import SubscriptionIndex
from .hooks import ChannelPath, Identity

log = logging.getLogger(__name__)


class Peer(Protocol):
    """One client socket as the router sees it: non-blocking writes."""

    def write_data(self, head: bytes, tail: bytes) -> None:
        """Write one `data` message (head + tail) as a text frame."""

    def send_text(self, text: str) -> None:
        """Queue one text frame."""


class _Gap:
    __slots__ = ("channel", "top")

    def __init__(self, channel: str, top: Position | None) -> None:
        self.channel = channel
        self.top = top


class Subscription:
    """One `subscribe` of one socket. While `pending` is a list, deliveries are held back (the subscribe reply
    and any recovered events go first)."""

    __slots__ = ("id", "peer", "channel", "identity", "head", "pending", "joined", "__weakref__")

    def __init__(self, sub_id: str, peer: Peer, channel: ChannelPath, identity: Identity) -> None:
        self.id = sub_id
        self.peer = peer
        self.channel = channel
        self.identity = identity
        self.head = protocol.data_head(sub_id)
        self.pending: list[StoredEvent | _Gap] | None = []
        self.joined = False  # presence listeners were told it started

    def send_gap(self, channel: str, top: Position | None) -> None:
        self.peer.send_text(protocol.gap(self.id, channel, top))


def _path(channel: str) -> ChannelPath:
    return ChannelPath(channel, tuple(channel[1:].split("/")))


class Router:
    """Implements the bus listener's delivery side for the subscriptions of this process."""

    def __init__(self) -> None:
        self.index: SubscriptionIndex[Subscription] = SubscriptionIndex()
        self.delivered = 0  # data messages written (for metrics and the benchmark)

    # ------------------------------------------------------------------ subscriptions
    def add(self, sub: Subscription) -> bool:
        """Register (still pending). True when the bus must start watching this channel / wildcard."""
        return self.index.add(sub.channel, sub)

    def remove(self, sub: Subscription) -> bool:
        """Unregister. True when the bus may stop watching this channel / wildcard."""
        sub.pending = None
        return self.index.remove(sub.channel, sub)

    def activate(self, sub: Subscription, after: Position | None) -> None:
        """Deliver what arrived while the subscription was pending, skipping what recovery already sent
        (offsets <= `after`), then deliver live."""
        held, sub.pending = sub.pending or [], None
        last = after
        for item in held:
            if isinstance(item, _Gap):
                sub.send_gap(item.channel, item.top)
                continue
            if last is not None and item.channel == sub.channel.path:
                if item.position.epoch == last.epoch:
                    if item.position.offset <= last.offset:
                        continue
                    if item.position.offset > last.offset + 1:  # cannot happen with a correct bus; say so
                        sub.send_gap(item.channel, Position(last.epoch, item.position.offset - 1))
                else:
                    sub.send_gap(item.channel, Position(item.position.epoch, item.position.offset - 1))
                last = item.position
            sub.peer.write_data(sub.head, protocol.data_tail(item.payload, item.channel, item.position))
            self.delivered += 1

    # ------------------------------------------------------------------ bus listener (delivery side)
    def on_event(self, event: StoredEvent) -> None:
        subs = self.index.match(_path(event.channel))
        if not subs:
            return
        tail = protocol.data_tail(event.payload, event.channel, event.position)
        n = 0
        for sub in subs:
            pending = sub.pending
            if pending is not None:
                pending.append(event)
                continue
            sub.peer.write_data(sub.head, tail)
            n += 1
        self.delivered += n

    def on_gap(self, channel: str, top: Position | None) -> None:
        path = _path(channel)
        if path.is_wildcard:
            subs = list(self.index.prefixed.get(path.segments[:-1], ()))
        else:
            subs = self.index.match(path)
        log.warning("events may be lost on %s (stream continues at %s): telling %d subscriptions",
                    channel, top, len(subs))
        for sub in subs:
            if sub.pending is not None:
                sub.pending.append(_Gap(channel, top))
            else:
                sub.send_gap(channel, top)

    def local_counts(self) -> dict[str, int]:
        return self.index.exact_counts()

    def stats(self) -> dict[str, Any]:
        return {"channels": len(self.index.exact), "wildcards": len(self.index.prefixed),
                "delivered": self.delivered}
