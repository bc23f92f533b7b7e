"""One host as the control plane sees it over its channel: its hello, its last heartbeat and sessions, requests in
flight with their replies, and the events it reports.

Talks the host protocol only (hostproto.codec); choosing hosts and the HostPool surface are fleet.py's."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from playcast.hostproto import codec
from playcast.hostproto.channel import Channel, ChannelClosed
from playcast.hostproto.messages import (
    LOOKUP,
    PLACEMENT,
    SIGNAL,
    STAGE,
    Cancel,
    Event,
    Heartbeat,
    Hello,
    HostError,
    Refused,
    Reply,
    Request,
    SessionState,
)
from playcast.hostproto.types import PlacementError, SessionEvent, SignalError, StageRefused

log = logging.getLogger(__name__)

MAX_BAD_FRAMES = 10  # a host that keeps sending garbage is cut off


class HostGone(Exception):
    """The host's channel closed before it answered."""


class HostConnection:
    """A joined host. `run()` reads its frames until the channel closes; `request()` asks it something."""

    def __init__(self, hello: Hello, channel: Channel, on_event: Callable[[SessionEvent], Awaitable[None]],
                 clock: Callable[[], float] = time.monotonic,
                 on_heard: Callable[[HostConnection], None] | None = None) -> None:
        self.hello = hello
        self.channel = channel
        self.shares_disk = False  # on the control plane's machine: sent server paths (see Fleet.serve)
        self.clock = clock
        self.heartbeat: Heartbeat | None = None
        self.last_seen = clock()
        self.sessions: dict[str, SessionState] = {sid: SessionState(sid) for sid in hello.sessions}
        self.pending_placements = 0  # placements sent and not answered (heartbeats do not show them yet)
        self.closed = False
        self._on_event = on_event
        self._on_heard = on_heard  # its figures changed (a heartbeat, a reply about a session)
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Reply]] = {}
        self._send_lock = asyncio.Lock()
        self._bad_frames = 0

    @property
    def host_id(self) -> str:
        return self.hello.host_id

    @property
    def location(self) -> str:
        return self.hello.location

    @property
    def slots(self) -> int:
        return self.heartbeat.slots if self.heartbeat is not None else self.hello.slots

    @property
    def paused(self) -> int:
        return self.heartbeat.paused if self.heartbeat is not None else 0

    @property
    def busy(self) -> int:
        hb = self.heartbeat
        return max(hb.busy if hb is not None else 0, len(self.sessions)) + self.pending_placements

    @property
    def warm(self) -> int:
        return self.heartbeat.warm if self.heartbeat is not None else 0

    def has_warm(self, key: str) -> bool:
        return self.heartbeat is not None and key in self.heartbeat.warm_launches

    # ------------------------------------------------------------------ requests
    async def request(self, op: str, args: dict[str, Any], timeout_s: float) -> Any:
        """Send one request and wait for its reply: the result, or the host's error raised as PlacementError,
        SignalError or LookupError (RuntimeError for the rest). HostGone when the channel closes first,
        TimeoutError after `timeout_s` (the host is told to cancel, as on any cancellation)."""
        if self.closed:
            raise HostGone(f"host {self.host_id} is not connected")
        request_id = next(self._ids)
        reply_future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = reply_future
        try:
            await self._send(codec.encode(Request(request_id, op, codec.args_to_wire(op, args))))
            reply = await asyncio.wait_for(reply_future, timeout_s)
        except (asyncio.CancelledError, TimeoutError):
            if not self.closed:
                with contextlib.suppress(ChannelClosed):
                    await asyncio.shield(self._send(codec.encode(Cancel(request_id))))
            raise
        except ChannelClosed:
            raise HostGone(f"host {self.host_id} went away") from None
        finally:
            self._waiting.pop(request_id, None)
        about = args["placement"].session_id if op == "place" else args.get("session_id")
        if reply.gone and about is not None:
            self.sessions.pop(about, None)
        if reply.error is not None:
            raise _error(reply.error)
        try:
            return codec.result_of(op, reply.result)
        except codec.ProtocolError as exc:
            raise RuntimeError(f"host {self.host_id} answered {op} with {exc}") from None

    async def _send(self, text: str) -> None:
        async with self._send_lock:
            await self.channel.send(text)

    # ------------------------------------------------------------------ what the host says
    async def run(self) -> None:
        """Read frames until the channel closes (or the host sends too many bad ones); then fail every request
        still waiting with HostGone."""
        try:
            while True:
                text = await self.channel.recv()
                try:
                    msg = codec.decode_host(text)
                except codec.ProtocolError as exc:
                    self._bad_frames += 1
                    log.warning("host %s sent a bad frame: %s", self.host_id, exc)
                    if self._bad_frames >= MAX_BAD_FRAMES:
                        log.error("host %s: too many bad frames; disconnecting it", self.host_id)
                        return
                    continue
                self.last_seen = self.clock()
                await self._handle(msg)
        except ChannelClosed:
            pass
        finally:
            self.closed = True
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ChannelClosed("host went away"))
            await self.channel.close()

    async def _handle(self, msg: object) -> None:
        if isinstance(msg, Reply):
            future = self._waiting.get(msg.id)
            if future is None or future.done():
                log.info("host %s: reply to request %d that nobody waits for", self.host_id, msg.id)
            if msg.session is not None:
                self.sessions[msg.session.session_id] = msg.session
            if future is not None and not future.done():
                future.set_result(msg)
            if self._on_heard is not None:
                self._on_heard(self)
        elif isinstance(msg, Heartbeat):
            if self.heartbeat is not None and msg.seq <= self.heartbeat.seq:
                return  # out of order: an older picture than the one we have
            self.heartbeat = msg
            self.sessions = {s.session_id: s for s in msg.sessions}
            if self._on_heard is not None:
                self._on_heard(self)
        elif isinstance(msg, Event):
            await self._on_event(msg.event)
        else:
            log.warning("host %s: unexpected %s after hello", self.host_id, type(msg).__name__)

    def forget(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)

    async def close(self) -> None:
        await self.channel.close()

    async def refuse(self, reason: str) -> None:
        """Tell the host it may not stay (it stops reconnecting), then close its channel."""
        with contextlib.suppress(ChannelClosed):
            await self._send(codec.encode(Refused(reason)))
        await self.channel.close()


def _error(error: HostError) -> Exception:
    if error.kind == PLACEMENT:
        return PlacementError(error.reason or "internalError", error.message)
    if error.kind == SIGNAL:
        return SignalError(error.message)
    if error.kind == LOOKUP:
        return LookupError(error.message)
    if error.kind == STAGE:
        status = int(error.reason) if error.reason in ("400", "409", "422") else 422
        return StageRefused(status, error.message)
    return RuntimeError(error.message)
