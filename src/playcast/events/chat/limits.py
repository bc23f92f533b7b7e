"""Sliding-window rate limits for chat: per room (all senders together, as IVS chat) and per user.

Counting only, in this process; no clocks of its own beyond time.monotonic and no I/O."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """At most `count` accepted actions in any window of `per_s` seconds."""

    count: int
    per_s: float = 1.0

    def __post_init__(self) -> None:
        if self.count < 1 or self.per_s <= 0:
            raise ValueError(f"a rate needs count >= 1 and per_s > 0, got {self.count}/{self.per_s}s")

    def describe(self) -> str:
        per = "s" if self.per_s == 1 else f"{self.per_s:g} s"
        return f"{self.count} per {per}"


class Window:
    """Timestamps of the actions accepted in the current window."""

    __slots__ = ("rate", "_times")

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self._times: deque[float] = deque()

    def _trim(self, now: float) -> None:
        edge = now - self.rate.per_s
        while self._times and self._times[0] <= edge:
            self._times.popleft()

    def allows(self, now: float) -> bool:
        self._trim(now)
        return len(self._times) < self.rate.count

    def take(self, now: float) -> None:
        self._times.append(now)

    def retry_after(self, now: float) -> float:
        """Seconds until one more action would be allowed."""
        self._trim(now)
        if len(self._times) < self.rate.count:
            return 0.0
        return max(0.0, self._times[0] + self.rate.per_s - now)

    @property
    def idle(self) -> bool:
        return not self._times


class RateLimited(Exception):
    def __init__(self, scope: str, rate: Rate, retry_after_s: float) -> None:
        super().__init__(f"{scope} rate limit reached ({rate.describe()}); retry in {retry_after_s:.2f} s")
        self.scope = scope
        self.rate = rate
        self.retry_after_s = retry_after_s


class Limiter:
    """One room-wide window per room and one window per (room, user); both must allow an action, and an
    action refused by either is not counted by the other."""

    def __init__(self, room_rate: Rate, user_rate: Rate, max_keys: int = 100_000) -> None:
        self.room_rate = room_rate
        self.user_rate = user_rate
        self.max_keys = max_keys
        self._rooms: dict[str, Window] = {}
        self._users: dict[tuple[str, str], Window] = {}

    def check(self, room: str, user: str | None, now: float | None = None) -> None:
        """Count one action or raise RateLimited (user limit first: one flooder does not use up the room)."""
        now = time.monotonic() if now is None else now
        user_w = None
        if user is not None:
            user_w = self._users.get((room, user))
            if user_w is None:
                user_w = self._users[(room, user)] = Window(self.user_rate)
            if not user_w.allows(now):
                raise RateLimited("user", self.user_rate, user_w.retry_after(now))
        room_w = self._rooms.get(room)
        if room_w is None:
            room_w = self._rooms[room] = Window(self.room_rate)
        if not room_w.allows(now):
            raise RateLimited("room", self.room_rate, room_w.retry_after(now))
        room_w.take(now)
        if user_w is not None:
            user_w.take(now)
        if len(self._users) + len(self._rooms) > self.max_keys:
            self.sweep(now)

    def sweep(self, now: float | None = None) -> None:
        """Forget idle windows (keeps memory bounded with many users and rooms)."""
        now = time.monotonic() if now is None else now
        for key, w in list(self._users.items()):
            w._trim(now)
            if w.idle:
                del self._users[key]
        for room, w in list(self._rooms.items()):
            w._trim(now)
            if w.idle:
                del self._rooms[room]

    def forget_room(self, room: str) -> None:
        self._rooms.pop(room, None)
        for key in [k for k in self._users if k[0] == room]:
            del self._users[key]
