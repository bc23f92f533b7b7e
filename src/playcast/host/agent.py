"""The host agent: serves one machine's slot pool to a control plane over a host-protocol channel — says hello,
heartbeats, runs each request against the pool, reports session events, undoes cancelled requests.

Protocol glue only: what a slot does lives in pool.py and runtime.py; dialing and reconnecting (a WebSocket to a
remote server) is the caller's; the agent serves one channel until it closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from playcast.host.pool import LocalHostPool
from playcast.hostproto import codec
from playcast.hostproto.channel import Channel, ChannelClosed
from playcast.hostproto.messages import (
    BAD_REQUEST,
    INTERNAL,
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
    Welcome,
)
from playcast.hostproto.types import PlacementError, SessionEvent, SignalError, StageRefused, launch_key

log = logging.getLogger(__name__)

WELCOME_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class HostIdentity:
    """What a host tells the control plane about itself in its hello."""

    host_id: str
    token: str
    location: str
    version: str
    encoder: str
    gpu: str | None = None
    public_address: str | None = None
    host_key: str | None = None  # host/service.py host_key_of: the secret that makes the host id this machine's
    media_url: str | None = None  # its LL-HLS endpoint (host/hls_endpoint.py), when it runs one
    media_key: str | None = None


class HostRefused(Exception):
    """The control plane refused this host (the reason says why: a wrong or revoked token, ...)."""


class HostAgent:
    """Serves `pool` on a channel. One agent serves one channel at a time; `serve` returns when it closes."""

    def __init__(self, pool: LocalHostPool, identity: HostIdentity) -> None:
        self.pool = pool
        self.identity = identity
        self._channel: Channel | None = None
        self._send_lock = asyncio.Lock()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()
        self._seq = 0
        self.on_welcome: Callable[[Welcome], None] = lambda welcome: None  # e.g. where recordings go
        pool.on_event(self._on_pool_event)
        pool.on_state_change(self.changed)

    async def serve(self, channel: Channel) -> None:
        """Hello, then answer requests until the channel closes. Raises HostRefused if the server says no."""
        self._channel = channel
        heartbeat: asyncio.Task[None] | None = None
        try:
            await self._send(codec.encode(self._hello()))
            welcome = codec.decode_server(await asyncio.wait_for(channel.recv(), WELCOME_TIMEOUT_S))
            if isinstance(welcome, Refused):
                raise HostRefused(welcome.reason)
            if not isinstance(welcome, Welcome):
                raise codec.ProtocolError(f"expected welcome, got {type(welcome).__name__}")
            log.info("host %s joined the control plane", self.identity.host_id)
            self.on_welcome(welcome)
            heartbeat = asyncio.ensure_future(self._heartbeats(max(0.05, welcome.heartbeat_s)))
            while True:
                msg = codec.decode_server(await channel.recv())
                if isinstance(msg, Request):
                    self._start(msg)
                elif isinstance(msg, Cancel):
                    task = self._running.get(msg.id)
                    if task is not None:
                        task.cancel()
                elif isinstance(msg, Refused):  # drained, removed, or its token revoked: stop for good
                    raise HostRefused(msg.reason)
                else:
                    log.warning("host %s: unexpected %s after welcome", self.identity.host_id, type(msg).__name__)
        except ChannelClosed:
            log.info("host %s: channel to the control plane closed", self.identity.host_id)
        finally:
            self._channel = None
            if heartbeat is not None:
                heartbeat.cancel()
            for task in list(self._running.values()):  # nobody is waiting for these answers any more
                task.cancel()
            if self._running:
                await asyncio.wait(list(self._running.values()), timeout=30)

    # ------------------------------------------------------------------ requests
    def _start(self, request: Request) -> None:
        if request.id in self._running:
            log.warning("host %s: request id %d reused while running; ignored", self.identity.host_id, request.id)
            return
        task = asyncio.ensure_future(self._answer(request))
        self._running[request.id] = task
        task.add_done_callback(lambda _t: self._running.pop(request.id, None))

    async def _answer(self, request: Request) -> None:
        session_id: str | None = None
        try:
            args = codec.args_from_wire(request.op, codec.Fields(request.args, "args"))
            session_id = args["placement"].session_id if request.op == "place" else args.get("session_id")
            result = await self._run(request.op, args)
            reply = Reply(request.id, codec.result_to_wire(request.op, result))
        except asyncio.CancelledError:
            return  # the control plane gave up on it; the pool undid what it had started
        except codec.ProtocolError as exc:
            reply = Reply(request.id, error=HostError(BAD_REQUEST, str(exc)))
        except PlacementError as exc:
            reply = Reply(request.id, error=HostError(PLACEMENT, str(exc), exc.reason))
        except SignalError as exc:
            reply = Reply(request.id, error=HostError(SIGNAL, str(exc)))
        except LookupError as exc:
            reply = Reply(request.id, error=HostError(LOOKUP, str(exc)))
        except StageRefused as exc:
            reply = Reply(request.id, error=HostError(STAGE, exc.message, str(exc.status)))
        except Exception as exc:  # noqa: BLE001 - answer, never leave the control plane waiting
            log.exception("host %s: %s failed", self.identity.host_id, request.op)
            reply = Reply(request.id, error=HostError(INTERNAL, f"{request.op} failed on the host: {exc}"))
        if session_id is not None:
            state = self.pool.session_state(session_id)
            reply = Reply(reply.id, reply.result, reply.error, state, gone=state is None)
        with contextlib.suppress(ChannelClosed):
            await self._send(codec.encode(reply))
        self._changed.set()

    async def _run(self, op: str, args: dict[str, Any]) -> Any:
        pool = self.pool
        calls: dict[str, Callable[..., Awaitable[Any]]] = {
            "place": pool.place, "connect": pool.connect, "terminate": pool.terminate,
            "set_warm_target": pool.set_warm_target, "send_app_message": pool.send_app_message,
            "add_viewer": pool.add_viewer, "remove_viewer": pool.remove_viewer, "start_hls": pool.start_hls,
            "stop_hls": pool.stop_hls, "start_egress": pool.start_egress, "stop_egress": pool.stop_egress,
            "stage_publish": pool.stage_publish, "stage_unpublish": pool.stage_unpublish,
            "stage_trickle": pool.stage_trickle, "stage_add_viewer": pool.stage_add_viewer,
            "stage_remove_viewer": pool.stage_remove_viewer, "stage_end": pool.stage_end,
            "collect_files": pool.collect_files, "read_file": pool.read_file,
        }
        return await calls[op](**args)

    # ------------------------------------------------------------------ what the host tells
    def _hello(self) -> Hello:
        i = self.identity
        return Hello(i.host_id, i.token, i.location, len(self.pool.slots), i.version, i.encoder, i.gpu,
                     i.public_address, tuple(sorted(self.pool.running_sessions())), host_key=i.host_key,
                     media_url=i.media_url, media_key=i.media_key)

    def heartbeat(self) -> Heartbeat:
        self._seq += 1
        cap = self.pool.capacity(self.pool.location)
        states = [s for sid in sorted(self.pool.running_sessions()) if (s := self.pool.session_state(sid))]
        return Heartbeat(self._seq, cap.total_slots, cap.allocated - cap.idle, cap.idle,
                         tuple(launch_key(spec) for spec in self.pool.warm_launches()), tuple(states),
                         self.pool.paused_warm(), tuple(self.pool.idle_warm_groups(self.pool.location)))

    async def _heartbeats(self, every_s: float) -> None:
        """Every `every_s`, and soon after anything changed (at most 20 a second)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), every_s)
            self._changed.clear()
            try:
                await self._send(codec.encode(self.heartbeat()))
            except ChannelClosed:
                return
            await asyncio.sleep(0.05)

    async def _on_pool_event(self, event: SessionEvent) -> None:
        self._changed.set()
        try:
            await self._send(codec.encode(Event(event)))
        except ChannelClosed:
            log.info("host %s: %s of %s not delivered (no control plane)", self.identity.host_id, event.kind,
                     event.session_id)

    async def _send(self, text: str) -> None:
        channel = self._channel
        if channel is None:
            raise ChannelClosed("not connected")
        async with self._send_lock:
            await channel.send(text)

    def changed(self) -> None:
        """Something the heartbeat reports changed outside a request (a warm launch finished): report it soon."""
        self._changed.set()
