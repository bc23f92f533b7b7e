"""The Fleet: the control plane's HostPool over every host joined through the host protocol — it lets hosts in
(hello → welcome or refusal), picks a host for each placement, routes each session's requests to its host, spreads
warm targets over the hosts of a location, and reads capacity and session figures from their heartbeats.

It speaks domain types to control/ and hostproto to hosts; no HTTP, no database (who may join is `authorize`'s)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from playcast.control.host_connection import HostConnection, HostGone
from playcast.hostproto import codec
from playcast.hostproto.channel import Channel, ChannelClosed
from playcast.hostproto.messages import PROTOCOL_VERSION, Hello, Refused, Welcome
from playcast.hostproto.types import (
    EgressStatus,
    LaunchSpec,
    LocationCapacity,
    Placement,
    PlacementError,
    PlacementResult,
    SessionEvent,
    SessionEventHandler,
    SessionEventKind,
    SignalError,
    VideoStats,
    launch_key,
)

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 30.0
PLACEMENT_GRACE_S = 10.0  # beyond the placement's own timeout, for the host's answer to travel
LOST_AFTER_S = 8.0  # a host heard from neither by frame nor by reconnect for this long is lost
WATCH_EVERY_S = 0.5
Authorize = Callable[[Hello], Awaitable[str | None]]  # None: may join; else the reason it may not
HostJoinedHandler = Callable[[str, set[str]], Awaitable[None]]  # (host id, the sessions it says it runs)


ONLINE, DRAINING, OFFLINE = "ONLINE", "DRAINING", "OFFLINE"


@dataclass
class HostRecord:
    """What the fleet knows of a host that joined, also after it left (until an operator removes it)."""

    host_id: str
    location: str
    slots: int
    version: str
    encoder: str
    status: str = ONLINE  # ONLINE | DRAINING | OFFLINE
    busy: int = 0
    warm: int = 0
    last_heartbeat_at: float | None = None  # unix time
    joined_at: float = 0.0


class FleetListener(Protocol):
    """Told of every change to the fleet's hosts (control/fleet_directory.py keeps them in the database)."""

    async def joined(self, conn: HostConnection, status: str) -> None: ...

    async def heard(self, conn: HostConnection) -> None: ...

    async def set_status(self, host_id: str, status: str) -> None: ...

    async def left(self, host_id: str) -> None: ...

    async def forget(self, host_id: str) -> None: ...


HEARD_WRITE_S = 0.2  # figures of one host are passed on at most this often (the last ones always are)


@dataclass
class StartTimes:
    """Placement-to-answer timings as the control plane saw them, warm and cold (seconds; read by metrics)."""

    warm: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)


class Fleet:
    """Hosts by id. `serve(channel)` runs one host's connection until it closes; the rest is the HostPool."""

    def __init__(self, authorize: Authorize, *, heartbeat_s: float = 2.0, lost_after_s: float = LOST_AFTER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.authorize = authorize
        self.heartbeat_s = heartbeat_s
        self.lost_after_s = lost_after_s
        self.clock = clock
        self.hosts: dict[str, HostConnection] = {}
        self.start_times = StartTimes()
        self._session_host: dict[str, str] = {}
        self._targets: dict[tuple[str, str], tuple[list[LaunchSpec], int, bool]] = {}  # + pause_idle
        self._handlers: list[SessionEventHandler] = []
        self._joined = asyncio.Condition()
        self._closed = False
        self.records: dict[str, HostRecord] = {}
        self._draining: set[str] = set()
        self._away: dict[str, HostConnection] = {}  # connection closed, not lost yet: it may come back in time
        self._joined_handlers: list[HostJoinedHandler] = []
        self._watchdog: asyncio.Task[None] | None = None
        self.replica_id = "r-" + uuid.uuid4().hex[:12]  # this process, as other replicas address it
        self._listener: FleetListener | None = None
        self._heard_pending: dict[str, asyncio.Task[None]] = {}

    # ------------------------------------------------------------------ hosts joining and leaving
    async def serve(self, channel: Channel) -> None:
        """Let one host in and serve it until its channel closes; a refused host gets Refused and the channel
        is closed. Returns when the host is gone (its sessions are then reported ENDED)."""
        try:
            hello = codec.decode_host(await asyncio.wait_for(channel.recv(), HELLO_TIMEOUT_S))
            if not isinstance(hello, Hello):
                raise codec.ProtocolError(f"a host starts with hello, not {type(hello).__name__}")
        except (TimeoutError, ChannelClosed, codec.ProtocolError) as exc:
            log.warning("a host was turned away before its hello: %s", exc or type(exc).__name__)
            with contextlib.suppress(ChannelClosed):
                await channel.send(codec.encode(Refused(f"expected a hello: {exc}")))
            await channel.close()
            return
        reason = await self._refusal(hello)
        if reason is not None:
            log.warning("host %s refused: %s", hello.host_id, reason)
            with contextlib.suppress(ChannelClosed):
                await channel.send(codec.encode(Refused(reason)))
            await channel.close()
            return
        conn = HostConnection(hello, channel, self._emit, self.clock, on_heard=self._heard)
        if self._away.pop(hello.host_id, None) is not None:
            log.info("host %s is back in time: its sessions carry on", hello.host_id)
        previous = self.hosts.get(hello.host_id)
        if previous is not None:  # the same host again on a new channel: the old one is dead
            log.info("host %s reconnected; closing its previous channel", hello.host_id)
            await previous.close()
        self.hosts[hello.host_id] = conn
        for session_id in hello.sessions:
            self._session_host[session_id] = hello.host_id
        try:
            await channel.send(codec.encode(Welcome(hello.host_id, self.heartbeat_s)))
        except ChannelClosed:
            self.hosts.pop(hello.host_id, None)
            return
        self.records[hello.host_id] = HostRecord(hello.host_id, hello.location, hello.slots, hello.version,
                                                 hello.encoder, DRAINING if hello.host_id in self._draining else ONLINE,
                                                 joined_at=time.time(), last_heartbeat_at=time.time())
        log.info("host %s joined (location %s, %d slots)", hello.host_id, hello.location, hello.slots)
        await self._tell("joined", conn, self.records[hello.host_id].status)
        reading = asyncio.ensure_future(conn.run())  # replies arrive through it: start it before asking anything
        self._ensure_watchdog()
        async with self._joined:
            self._joined.notify_all()
        try:
            for handler in list(self._joined_handlers):
                try:
                    await handler(hello.host_id, set(hello.sessions))
                except Exception:
                    log.exception("host-joined handler failed for %s", hello.host_id)
            await self._spread_warm(hello.location)
            await reading
        finally:
            if not reading.done():
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading
            if self.hosts.get(hello.host_id) is conn:
                del self.hosts[hello.host_id]
                record = self.records.get(hello.host_id)
                if record is not None:
                    record.status = OFFLINE
                await self._tell("left", hello.host_id)
                if self._closed or hello.host_id not in self.records:  # stopping, or removed by an operator
                    await self._lost(conn)
                else:  # it may reconnect: lost only once nothing was heard of it for lost_after_s
                    self._away[hello.host_id] = conn
                    await self._spread_warm(conn.location)

    async def _refusal(self, hello: Hello) -> str | None:
        if hello.protocol != PROTOCOL_VERSION:
            return f"host protocol {hello.protocol} is not spoken here (this control plane speaks {PROTOCOL_VERSION})"
        if not hello.host_id or not hello.location:
            return "a host needs an id and a location"
        return await self.authorize(hello)

    async def _lost(self, conn: HostConnection) -> None:
        """The host is gone: each of its sessions is over (reported ENDED with why); its warm share moves on."""
        if self._closed:
            return
        sessions = {sid for sid, host in self._session_host.items() if host == conn.host_id} | set(conn.sessions)
        log.warning("host %s left with %d session(s)", conn.host_id, len(sessions))
        now = time.time()
        for session_id in sorted(sessions):
            self._session_host.pop(session_id, None)
            await self._emit(SessionEvent(session_id, SessionEventKind.ENDED, now,
                                          {"message": f"its host {conn.host_id} was lost"}))
        await self._spread_warm(conn.location)

    async def attach(self, listener: FleetListener | None) -> None:
        """From now on tell `listener` of every change (and, at once, of the hosts joined already); None stops."""
        self._listener = listener
        if listener is not None:
            for conn in list(self.hosts.values()):
                await self._tell("joined", conn, self.records[conn.host_id].status)
                await self._tell("heard", conn)

    async def _tell(self, what: str, *args: Any) -> None:
        listener = self._listener
        if listener is None:
            return
        try:
            await getattr(listener, what)(*args)
        except Exception:
            log.exception("fleet listener failed on %s", what)

    def _heard(self, conn: HostConnection) -> None:
        """A host's figures changed: pass them on soon (coalesced; a write already waiting takes the newest)."""
        if self._listener is None or conn.host_id in self._heard_pending:
            return

        async def later() -> None:
            try:
                await asyncio.sleep(HEARD_WRITE_S)
                if self.hosts.get(conn.host_id) is conn:
                    await self._tell("heard", conn)
            finally:
                self._heard_pending.pop(conn.host_id, None)

        self._heard_pending[conn.host_id] = asyncio.ensure_future(later())

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        """Every WATCH_EVERY_S: a connected host silent for lost_after_s is cut off; a host away (its connection
        closed) that long is lost, and its sessions with it."""
        while not self._closed:
            await asyncio.sleep(WATCH_EVERY_S)
            try:
                await self.check_hosts()
            except Exception:
                log.exception("host watchdog failed")

    async def check_hosts(self) -> None:
        now = self.clock()
        for conn in list(self.hosts.values()):
            if now - conn.last_seen > self.lost_after_s:
                log.warning("host %s: nothing heard for %.1f s; cutting it off", conn.host_id, now - conn.last_seen)
                await conn.close()
        for host_id, conn in list(self._away.items()):
            if now - conn.last_seen > self.lost_after_s and self._away.get(host_id) is conn:
                del self._away[host_id]
                await self._lost(conn)

    def on_host_joined(self, handler: HostJoinedHandler) -> None:
        """`handler(host_id, sessions)` after each (re)join, with the sessions the host says it runs."""
        self._joined_handlers.append(handler)

    def hosts_online(self) -> set[str]:
        return set(self.hosts)

    def host_records(self) -> list[HostRecord]:
        """Every host that joined, online or not, with its figures from the last heartbeat."""
        for host_id, conn in self.hosts.items():
            record = self.records.get(host_id)
            if record is not None:
                record.slots, record.busy, record.warm = conn.slots, min(conn.busy, conn.slots), conn.warm
                record.last_heartbeat_at = time.time() - (self.clock() - conn.last_seen)
        return sorted(self.records.values(), key=lambda r: (r.location, r.host_id))

    async def drain(self, host_id: str) -> HostRecord:
        """No new sessions or warm slots on this host; it is told to leave once its last session has ended.
        Raises LookupError for a host the fleet does not know."""
        record = self.records.get(host_id)
        if record is None:
            raise LookupError(f"host {host_id} not found")
        self._draining.add(host_id)
        if record.status == ONLINE:
            record.status = DRAINING
            await self._tell("set_status", host_id, DRAINING)
        await self._spread_warm(record.location)
        await self._leave_if_drained(host_id)
        return record

    async def remove(self, host_id: str) -> None:
        """Forget the host; if it is connected, it is told to leave now (its sessions end). Raises LookupError."""
        if host_id not in self.records:
            raise LookupError(f"host {host_id} not found")
        conn = self.hosts.get(host_id)
        del self.records[host_id]
        self._draining.discard(host_id)
        await self._tell("forget", host_id)
        if conn is not None:
            await conn.refuse("removed from the fleet by an operator")

    async def recheck(self) -> None:
        """Ask `authorize` again for every connected host (after a token was revoked): those it now refuses are
        told why and disconnected."""
        for conn in list(self.hosts.values()):
            reason = await self.authorize(conn.hello)
            if reason is not None:
                log.warning("host %s disconnected: %s", conn.host_id, reason)
                await conn.refuse(reason)

    async def _leave_if_drained(self, host_id: str) -> None:
        conn = self.hosts.get(host_id)
        if conn is None or host_id not in self._draining:
            return
        if not any(h == host_id for h in self._session_host.values()) and not conn.sessions \
                and conn.pending_placements == 0:
            log.info("host %s is drained: telling it to leave", host_id)
            await conn.refuse("drained: the host's last session has ended")

    async def wait_for_host(self, host_id: str, timeout_s: float) -> None:
        """Until `host_id` has joined. Raises TimeoutError."""
        async with self._joined:
            await asyncio.wait_for(self._joined.wait_for(lambda: host_id in self.hosts), timeout_s)

    async def close(self) -> None:
        """Disconnect every host (the control plane is stopping: their sessions are not reported ENDED)."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for conn in list(self.hosts.values()):
            await conn.close()

    # ------------------------------------------------------------------ events
    def on_event(self, handler: SessionEventHandler) -> None:
        self._handlers.append(handler)

    async def _emit(self, event: SessionEvent) -> None:
        drained: str | None = None
        if event.kind == SessionEventKind.ENDED:
            host_id = self._session_host.pop(event.session_id, None)
            if host_id is not None and host_id in self.hosts:
                self.hosts[host_id].forget(event.session_id)
                drained = host_id
        for handler in list(self._handlers):
            try:
                await handler(event)
            except Exception:
                log.exception("session event handler failed", extra={"event": event.kind})
        if drained is not None and drained in self._draining:
            asyncio.ensure_future(self._leave_if_drained(drained))

    # ------------------------------------------------------------------ reads (from heartbeats)
    def locations(self) -> list[str]:
        return sorted({c.location for c in self.hosts.values()})

    def capacity(self, location: str) -> LocationCapacity:
        hosts = [c for c in self.hosts.values() if c.location == location]
        total = sum(c.slots for c in hosts)
        busy = sum(min(c.busy, c.slots) for c in hosts)
        idle = sum(min(c.warm, c.slots - min(c.busy, c.slots)) for c in hosts)
        return LocationCapacity(location, total, busy + idle, idle)

    def running_sessions(self) -> set[str]:
        """Sessions on joined hosts, and on hosts away for less than lost_after_s (they may come back)."""
        conns = [*self.hosts.values(), *self._away.values()]
        return set(self._session_host) | {sid for c in conns for sid in c.sessions}

    def viewer_count(self, session_id: str) -> int:
        state = self._state(session_id)
        return state.viewers if state is not None else 0

    def recording_status(self, session_id: str, broadcast_id: str) -> dict[str, object] | None:
        state = self._state(session_id)
        return state.recordings.get(broadcast_id) if state is not None else None

    def egress_status(self, session_id: str) -> list[EgressStatus]:
        state = self._state(session_id)
        return list(state.egress) if state is not None else []

    def video_stats(self) -> dict[str, VideoStats]:
        return {sid: s.video for c in self.hosts.values() for sid, s in c.sessions.items() if s.video is not None}

    def _state(self, session_id: str):  # type: ignore[no-untyped-def]
        conn = self._host_of(session_id)
        return conn.sessions.get(session_id) if conn is not None else None

    def _host_of(self, session_id: str) -> HostConnection | None:
        host_id = self._session_host.get(session_id)
        if host_id is not None:
            return self.hosts.get(host_id)
        return next((c for c in self.hosts.values() if session_id in c.sessions), None)

    # ------------------------------------------------------------------ placement
    def _choose(self, placement: Placement) -> HostConnection | None:
        """In the placement's locations in order, the first with room: a host there with a warm slot of this launch,
        else its least loaded host with a free slot. When no location has room, the least loaded host of the first
        location that has hosts (it waits for a slot or evicts another group's warm one)."""
        key = launch_key(placement.launch)
        fallback: HostConnection | None = None
        for location in list(placement.locations) or self.locations():
            hosts = sorted((c for c in self.hosts.values()
                            if c.location == location and not c.closed and c.host_id not in self._draining),
                           key=lambda c: (c.busy / max(1, c.slots), c.host_id))
            warm = [c for c in hosts if c.has_warm(key) and c.pending_placements == 0]
            if warm:
                return warm[0]
            free = [c for c in hosts if c.busy < c.slots]
            if free:
                return free[0]
            fallback = fallback or (hosts[0] if hosts else None)
        return fallback

    async def place(self, placement: Placement, timeout_s: float) -> PlacementResult:
        if placement.host_id is not None:  # the control plane reserved a slot there
            conn = self.hosts.get(placement.host_id)
            if conn is None:
                raise PlacementError("internalError", f"host {placement.host_id} is not connected to this replica")
        else:
            conn = self._choose(placement)
        if conn is None:
            where = ", ".join(placement.locations) if placement.locations else "any location"
            raise PlacementError("placementTimeout", f"no host is connected in {where}")
        started = time.monotonic()
        conn.pending_placements += 1
        self._session_host[placement.session_id] = conn.host_id
        try:
            result = await conn.request("place", {"placement": placement, "timeout_s": timeout_s},
                                        timeout_s + PLACEMENT_GRACE_S)
        except HostGone:
            self._session_host.pop(placement.session_id, None)
            raise PlacementError("internalError", f"host {conn.host_id} went away during placement") from None
        except BaseException:
            self._session_host.pop(placement.session_id, None)
            raise
        finally:
            conn.pending_placements -= 1
        assert isinstance(result, PlacementResult)
        (self.start_times.warm if result.warm else self.start_times.cold).append(time.monotonic() - started)
        return result

    # ------------------------------------------------------------------ a session's requests
    async def _ask(self, session_id: str, op: str, args: dict[str, Any], missing: type[Exception]) -> Any:
        conn = self._host_of(session_id)
        if conn is None:
            raise missing(f"session {session_id} is not running on any connected host")
        try:
            return await conn.request(op, {"session_id": session_id, **args}, REQUEST_TIMEOUT_S)
        except HostGone:
            raise missing(f"the host of session {session_id} went away") from None

    async def connect(self, session_id: str, signal_request: str) -> str:
        return await self._ask(session_id, "connect", {"signal_request": signal_request}, SignalError)

    async def terminate(self, session_id: str, reason: str = "terminated") -> None:
        conn = self._host_of(session_id)
        if conn is None:  # nothing runs it any more: it is over
            await self._emit(SessionEvent(session_id, SessionEventKind.ENDED, time.time()))
            return
        try:
            await conn.request("terminate", {"session_id": session_id, "reason": reason}, REQUEST_TIMEOUT_S)
        except HostGone:
            pass  # _lost reports it ENDED

    async def send_app_message(self, session_id: str, payload: bytes) -> bool:
        try:
            return await self._ask(session_id, "send_app_message", {"payload": payload}, LookupError)
        except LookupError:
            return False

    async def add_viewer(self, session_id: str, offer_sdp: str) -> tuple[str, str]:
        return await self._ask(session_id, "add_viewer", {"offer_sdp": offer_sdp}, LookupError)

    async def remove_viewer(self, session_id: str, viewer_id: str) -> bool:
        try:
            return await self._ask(session_id, "remove_viewer", {"viewer_id": viewer_id}, LookupError)
        except LookupError:
            return False

    async def start_hls(self, session_id: str, broadcast_id: str, record: bool = False) -> None:
        await self._ask(session_id, "start_hls", {"broadcast_id": broadcast_id, "record": record}, LookupError)

    async def stop_hls(self, session_id: str, broadcast_id: str) -> None:
        with contextlib.suppress(LookupError):
            await self._ask(session_id, "stop_hls", {"broadcast_id": broadcast_id}, LookupError)

    async def start_egress(self, session_id: str, url: str, token: str | None) -> str:
        return await self._ask(session_id, "start_egress", {"url": url, "token": token}, LookupError)

    async def stop_egress(self, session_id: str, egress_id: str) -> bool:
        try:
            return await self._ask(session_id, "stop_egress", {"egress_id": egress_id}, LookupError)
        except LookupError:
            return False

    # ------------------------------------------------------------------ warm capacity
    async def set_warm_target(self, stream_group_id: str, location: str, launches: list[LaunchSpec],
                              count: int, pause_idle: bool = True) -> None:
        if count <= 0 or not launches:
            self._targets.pop((stream_group_id, location), None)
        else:
            self._targets[(stream_group_id, location)] = (list(launches), count, pause_idle)
        await self._spread_warm(location, only_group=stream_group_id)

    async def _spread_warm(self, location: str, only_group: str | None = None) -> None:
        """The groups' warm targets in `location` dealt together, one slot at a time, each to the host with the most
        room left (slots less sessions less slots dealt already; then by id), so that no host is given more warm
        slots than it has free while another has room; each host is told every group's share (0 to those with
        none). The control plane keeps the targets' sum within the location's slots (control/capacity.py)."""
        hosts = sorted((c for c in self.hosts.values() if c.location == location and c.host_id not in self._draining),
                       key=lambda c: c.host_id)
        draining = [c for c in self.hosts.values() if c.location == location and c.host_id in self._draining]
        groups = sorted({g for (g, loc) in self._targets if loc == location} | ({only_group} if only_group else set()))
        room = {c.host_id: max(0, c.slots - c.busy) for c in hosts}
        shares: dict[str, dict[str, int]] = {}
        for group in groups:
            _launches, count, _pause = self._targets.get((group, location), ([], 0, True))
            shares[group] = {c.host_id: 0 for c in hosts}
            for _ in range(count if hosts else 0):
                best = max(hosts, key=lambda c: (room[c.host_id], -hosts.index(c)))
                shares[group][best.host_id] += 1
                room[best.host_id] -= 1
        for group in groups:
            launches, count, pause_idle = self._targets.get((group, location), ([], 0, True))
            share = shares[group]
            for conn in [*hosts, *draining]:
                share.setdefault(conn.host_id, 0)
                try:
                    await conn.request("set_warm_target", {"stream_group_id": group, "location": location,
                                                           "launches": launches if share[conn.host_id] else [],
                                                           "count": share[conn.host_id],
                                                           "pause_idle": pause_idle}, REQUEST_TIMEOUT_S)
                except (HostGone, RuntimeError, TimeoutError) as exc:
                    log.warning("host %s: warm target for group %s not set: %s", conn.host_id, group, exc)
