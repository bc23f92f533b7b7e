"""In-process change notification per key (a stream session id), so waiters need not poll the database.

Only wakes waiters in this process; callers re-read the state themselves and keep a polling fallback."""

from __future__ import annotations

import asyncio
import contextlib


class ChangeWatch:
    """`arm(key)` before reading state, then `await wait(event, timeout)`; `notify(key)` wakes armed waiters."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def arm(self, key: str) -> asyncio.Event:
        ev = self._events.get(key)
        if ev is None:
            ev = self._events[key] = asyncio.Event()
        return ev

    def notify(self, key: str) -> None:
        ev = self._events.pop(key, None)
        if ev is not None:
            ev.set()

    @staticmethod
    async def wait(event: asyncio.Event, timeout: float) -> bool:
        """True if notified within `timeout` seconds."""
        if timeout <= 0:
            return event.is_set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return event.is_set()
