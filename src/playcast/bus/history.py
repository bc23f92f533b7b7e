"""What the bus carries and keeps: positions (epoch, offset) in a channel's stream, published events as opaque
JSON payloads, a bounded recent history per channel, and Centrifugo-style recovery answers.

Transport types only (no event schema, no auth, no namespaces' configuration): the events core builds on them.
The memory bus keeps history with MemoryHistory; the Redis bus keeps the same shape in Redis. Recovery returns
every missed event or says it cannot (a gap), never a partial list."""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Position:
    """Where a channel's stream stands: `epoch` names one history incarnation, `offset` counts its events."""

    epoch: str
    offset: int

    def as_json(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "offset": self.offset}


@dataclass(frozen=True)
class HistoryPolicy:
    """How much of a channel's history the bus keeps: `size` events for `ttl_s`, its position `position_ttl_s`."""

    size: int
    ttl_s: float
    position_ttl_s: float

_UNPUBLISHED_TTL_S = 3600.0  # a position handed out for a channel nobody published to yet


def new_epoch() -> str:
    return secrets.token_hex(4)


@dataclass(frozen=True)
class StoredEvent:
    """One published event as every replica sees it."""

    channel: str
    position: Position
    id: str
    payload: str  # the event's JSON text


@dataclass(frozen=True)
class Recovery:
    """The answer to "what did I miss since `since`?": `top` is the channel's current position; `events` the
    missed ones in order when `recovered`; when not recovered, events before `top` may be lost (a gap)."""

    top: Position
    recovered: bool
    events: list[StoredEvent]


def plan_recovery(top: Position, since: Position | None, retained: list[StoredEvent]) -> Recovery:
    """Decide from the current position and the retained tail (offsets ascending, all > since)."""
    if since is None:
        return Recovery(top, True, [])
    if since.epoch != top.epoch or since.offset > top.offset:
        return Recovery(top, False, [])
    if since.offset == top.offset:
        return Recovery(top, True, [])
    if retained and retained[0].position.offset == since.offset + 1 and retained[-1].position.offset == top.offset:
        return Recovery(top, True, retained)
    return Recovery(top, False, [])


@dataclass
class _Channel:
    epoch: str
    top: int = 0
    events: deque[tuple[int, str, str, float]] = field(default_factory=deque)  # (offset, id, payload, at)
    last_publish: float = 0.0


class MemoryHistory:
    """Positions and retained events of every channel, in this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._channels: dict[str, _Channel] = {}
        self._clock = clock
        self._policies: dict[str, HistoryPolicy] = {}

    def _channel(self, channel: str, policy: HistoryPolicy | None) -> _Channel:
        state = self._channels.get(channel)
        now = self._clock()
        if state is not None:
            ttl = (policy or self._policies.get(channel))
            if ttl is not None and state.last_publish and now - state.last_publish > ttl.position_ttl_s:
                state = None  # the position itself expired: a new epoch starts
        if state is None:
            state = _Channel(new_epoch(), last_publish=now)
            self._channels[channel] = state
        return state

    def _trim(self, state: _Channel, policy: HistoryPolicy, now: float) -> None:
        events = state.events
        while len(events) > policy.size:
            events.popleft()
        while events and now - events[0][3] > policy.ttl_s:
            events.popleft()

    def append(self, channel: str, items: list[tuple[str, str]], policy: HistoryPolicy) -> list[StoredEvent]:
        """Record (id, payload) pairs; returns them with their positions."""
        self._policies[channel] = policy
        state = self._channel(channel, policy)
        now = self._clock()
        out: list[StoredEvent] = []
        for event_id, payload in items:
            state.top += 1
            if policy.size > 0:
                state.events.append((state.top, event_id, payload, now))
            out.append(StoredEvent(channel, Position(state.epoch, state.top), event_id, payload))
        state.last_publish = now
        self._trim(state, policy, now)
        return out

    def top(self, channel: str) -> Position:
        state = self._channel(channel, self._policies.get(channel))
        return Position(state.epoch, state.top)

    def recover(self, channel: str, since: Position | None, policy: HistoryPolicy | None = None) -> Recovery:
        policy = self._policies.setdefault(channel, policy) if policy is not None else self._policies.get(channel)
        state = self._channel(channel, policy)
        if policy is not None:
            self._trim(state, policy, self._clock())
        top = Position(state.epoch, state.top)
        retained: list[StoredEvent] = []
        if since is not None and since.epoch == state.epoch:
            retained = [StoredEvent(channel, Position(state.epoch, off), eid, payload)
                        for off, eid, payload, _ in state.events if off > since.offset]
        return plan_recovery(top, since, retained)

    def _position_ttl(self, channel: str) -> float:
        policy = self._policies.get(channel)
        return policy.position_ttl_s if policy is not None else _UNPUBLISHED_TTL_S

    def sweep(self) -> int:
        """Forget channels whose position expired; returns how many were dropped."""
        now = self._clock()
        dead = [name for name, st in self._channels.items()
                if now - st.last_publish > self._position_ttl(name)]
        for name in dead:
            del self._channels[name]
            self._policies.pop(name, None)
        for name, st in self._channels.items():
            p = self._policies.get(name)
            if p is not None:
                self._trim(st, p, now)
        return len(dead)

    def __len__(self) -> int:
        return len(self._channels)
