"""The Fleet: the control plane's HostPool over every host joined through the host protocol — it lets hosts in
(hello → welcome or refusal), picks a host for each placement, routes each session's requests to its host, spreads
warm targets over the hosts of a location, and reads capacity and session figures from their heartbeats.

It speaks domain types to control/ and hostproto to hosts; no HTTP, no database (who may join is `authorize`'s)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from playcast.control.fleet_directory import key_digest
from playcast.control.fleet_peers import FleetPeers
from playcast.control.host_connection import HostConnection, HostGone
from playcast.hostproto import codec
from playcast.hostproto.channel import Channel, ChannelClosed
from playcast.hostproto.media_endpoint import HostMediaEndpoint
from playcast.hostproto.messages import PROTOCOL_VERSION, Hello, Refused, Welcome
from playcast.hostproto.types import (
    EgressStatus,
    FileBundle,
    LaunchSpec,
    LocationCapacity,
    Placement,
    PlacementError,
    PlacementResult,
    SessionEvent,
    SessionEventHandler,
    SessionEventKind,
    SignalError,
    StageState,
    VideoStats,
    for_remote_host,
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

    async def key_of(self, host_id: str) -> str | None:
        """The SHA-256 of the host key this host id was first joined with, if any."""


HEARD_WRITE_S = 0.2  # figures of one host are passed on at most this often (the last ones always are)


@dataclass
class StartTimes:
    """Placement-to-answer timings as the control plane saw them, warm and cold (seconds; read by metrics)."""

    warm: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)


class Fleet:
    """Hosts by id. `serve(channel)` runs one host's connection until it closes; the rest is the HostPool."""

    def __init__(self, authorize: Authorize, *, heartbeat_s: float = 2.0, lost_after_s: float = LOST_AFTER_S,
                 clock: Callable[[], float] = time.monotonic, recordings_url: str | None = None) -> None:
        self.authorize = authorize
        self.recordings_url = recordings_url  # told to hosts in the welcome: an s3:// storage they write to
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
        self.peers: FleetPeers | None = None  # the other replicas (None: this replica is the only one)
        self._keys: dict[str, str] = {}  # host id -> SHA-256 of the host key it first joined with

    async def join_peers(self, peers: FleetPeers | None) -> None:
        """From now on, requests for hosts held by other replicas go to them, theirs for ours are served here,
        and the reads count the hosts they hold; None: alone again."""
        if self.peers is not None:
            await self.peers.close()
        self.peers = peers
        if peers is not None:
            await peers.start(self)

    async def serve_forwarded(self, host_id: str, op: str, args: dict[str, Any], timeout_s: float) -> Any:
        """Another replica's request for a host held here."""
        conn = self.hosts.get(host_id)
        if conn is None:
            raise LookupError(f"host {host_id} is not connected to replica {self.replica_id}")
        if op == "place":
            placement: Placement = args["placement"]
            if placement.host_id != host_id:
                raise PlacementError("internalError", "a forwarded placement names another host")
            return await self._place_on(conn, placement, args["timeout_s"])
        if op == "set_warm_target":
            raise LookupError("warm targets are told, not forwarded")
        session_id = args.get("session_id")
        if session_id is not None:
            self._session_host.setdefault(session_id, host_id)
        try:
            return await conn.request(op, args, timeout_s)
        except HostGone:
            raise LookupError(f"host {host_id} went away") from None

    async def peers_changed(self, locations: set[str]) -> None:
        for location in sorted(locations):
            await self._spread_warm(location)

    async def apply_target(self, stream_group_id: str, location: str, launches: list[Any], count: int,
                           pause_idle: bool) -> None:
        await self._set_target(stream_group_id, location, launches, count, pause_idle)

    async def admin_here(self, action: str, host_id: str) -> None:
        if action == "recheck":
            await self._recheck_here()
        elif host_id not in self.hosts:
            raise LookupError(f"host {host_id} is not connected to replica {self.replica_id}")
        elif action == "drain":
            await self.drain(host_id)
        elif action == "remove":
            await self.remove(host_id)

    # ------------------------------------------------------------------ hosts joining and leaving
    async def serve(self, channel: Channel, *, shares_disk: bool = False) -> None:
        """Let one host in and serve it until its channel closes; a refused host gets Refused and the channel
        is closed. Returns when the host is gone (its sessions are then reported ENDED). `shares_disk`: the host
        runs on the control plane's machine (the embedded host) and is sent its paths; any other host gets only
        content references and fetches the content."""
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
        conn = HostConnection(hello, channel, lambda event, host=hello.host_id: self._emit_from(host, event),
                              self.clock, on_heard=self._heard)
        conn.shares_disk = shares_disk
        if self._away.pop(hello.host_id, None) is not None:
            log.info("host %s is back in time: its sessions carry on", hello.host_id)
        previous = self.hosts.get(hello.host_id)
        if previous is not None:  # the same host again on a new channel: the old one is dead
            log.info("host %s reconnected; closing its previous channel", hello.host_id)
            await previous.close()
        self.hosts[hello.host_id] = conn
        for session_id in hello.sessions:  # not one another connected host runs: a host cannot take it over
            owner = self._session_host.get(session_id)
            if owner not in (None, hello.host_id) and owner in self.hosts:
                log.warning("host %s claims session %s, which runs on host %s: ignored", hello.host_id,
                            session_id, owner)
                continue
            self._session_host[session_id] = hello.host_id
        self.records[hello.host_id] = HostRecord(hello.host_id, hello.location, hello.slots, hello.version,
                                                 hello.encoder, DRAINING if hello.host_id in self._draining else ONLINE,
                                                 joined_at=time.time(), last_heartbeat_at=time.time())
        # recorded (its key bound to its id) before it hears it may stay: a restart right after keeps the binding
        await self._tell("joined", conn, self.records[hello.host_id].status)
        try:
            await channel.send(codec.encode(Welcome(hello.host_id, self.heartbeat_s, self.recordings_url)))
        except ChannelClosed:
            if self.hosts.get(hello.host_id) is conn:
                del self.hosts[hello.host_id]
                self.records[hello.host_id].status = OFFLINE
                await self._tell("left", hello.host_id)
            return
        log.info("host %s joined (location %s, %d slots)", hello.host_id, hello.location, hello.slots)
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
        reason = await self.authorize(hello)
        if reason is not None:
            return reason
        known = self._keys.get(hello.host_id)
        if known is None and self._listener is not None:
            try:
                known = await self._listener.key_of(hello.host_id)
            except Exception:  # noqa: BLE001 - the database is away: no host joins on a guess
                log.warning("host %s: its key cannot be checked now", hello.host_id, exc_info=True)
                return "the control plane cannot check this host's key now; try again"
        given = key_digest(hello.host_key) if hello.host_key else None
        if known is not None and (given is None or not hmac.compare_digest(given, known)):
            return (f"host id {hello.host_id} belongs to another machine (its host key differs): give this machine "
                    "a data dir of its own")
        if given is not None:
            self._keys.setdefault(hello.host_id, given)
        return None

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
                if await self._held_elsewhere(host_id):
                    log.info("host %s dialled another replica: its sessions carry on there", host_id)
                    continue
                await self._lost(conn)

    async def _held_elsewhere(self, host_id: str) -> bool:
        if self.peers is None:
            return False
        try:
            return await self.peers.replica_of(host_id) is not None
        except Exception:  # noqa: BLE001 - the database is unreachable: do not end sessions on a guess
            log.warning("host %s: cannot tell whether another replica holds it; keeping it away", host_id)
            return True

    def on_host_joined(self, handler: HostJoinedHandler) -> None:
        """`handler(host_id, sessions)` after each (re)join, with the sessions the host says it runs."""
        self._joined_handlers.append(handler)

    def hosts_online(self) -> set[str]:
        """Hosts joined to this replica, and to the others (as of the peers' last snapshot)."""
        return set(self.hosts) | ({v.host_id for v in self.peers.hosts()} if self.peers is not None else set())

    async def all_host_records(self) -> list[HostRecord]:
        """Every host any replica knows (from the database when there are other replicas; OFFLINE once its
        heartbeat is older than lost_after_s), this replica's own as it hears them now."""
        local = {r.host_id: r for r in self.host_records()}
        if self.peers is None:
            return list(local.values())
        now = time.time()
        out = dict(local)
        for v in await self.peers.directory.hosts():
            if v.host_id in local:
                continue
            fresh = v.fresh(now, self.lost_after_s) and v.replica_id in self.peers.others()
            out[v.host_id] = HostRecord(v.host_id, v.location, v.slots, v.version, v.encoder,
                                        v.status if fresh else OFFLINE, v.busy if fresh else 0,
                                        v.warm if fresh else 0, v.heartbeat_at)
        return sorted(out.values(), key=lambda r: (r.location, r.host_id))

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
        A host another replica holds is drained there. Raises LookupError for a host the fleet does not know."""
        record = self.records.get(host_id)
        if record is None and self.peers is not None:
            await self.peers.admin(host_id, "drain")
            found = next((r for r in await self.all_host_records() if r.host_id == host_id), None)
            if found is None:
                raise LookupError(f"host {host_id} not found")
            found.status = DRAINING
            return found
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
        """Forget the host; if it is connected, it is told to leave now (its sessions end); one another replica
        holds is removed there, one nobody holds is forgotten. Raises LookupError."""
        if host_id not in self.records and self.peers is not None:
            try:
                await self.peers.admin(host_id, "remove")
                return
            except LookupError:
                if not any(v.host_id == host_id for v in await self.peers.directory.hosts()):
                    raise LookupError(f"host {host_id} not found") from None
                await self.peers.directory.forget(host_id)  # offline: only its row is left
                return
        if host_id not in self.records:
            raise LookupError(f"host {host_id} not found")
        conn = self.hosts.get(host_id)
        del self.records[host_id]
        self._draining.discard(host_id)
        self._keys.pop(host_id, None)  # the id is free again
        await self._tell("forget", host_id)
        if conn is not None:
            await conn.refuse("removed from the fleet by an operator")

    async def recheck(self) -> None:
        """Ask `authorize` again for every connected host, on every replica (after a token was revoked): those it
        now refuses are told why and disconnected."""
        await self._recheck_here()
        if self.peers is not None:
            await self.peers.recheck()

    async def _recheck_here(self) -> None:
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

    async def _emit_from(self, host_id: str, event: SessionEvent) -> None:
        """An event a host reports: only about a session that runs there (as placed, or reported at its hello)."""
        if self._session_host.get(event.session_id) != host_id:
            log.warning("host %s reported %s of session %s, which does not run there: ignored", host_id,
                        event.kind.value if hasattr(event.kind, "value") else event.kind, event.session_id)
            return
        await self._emit(event)

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
        return sorted({c.location for c in self.hosts.values()} | {v.location for v in self._peer_hosts()})

    def _peer_hosts(self) -> list[Any]:
        """Hosts other replicas hold (not also joined here), from the peers' last snapshot."""
        if self.peers is None:
            return []
        return [v for v in self.peers.hosts() if v.host_id not in self.hosts]

    def capacity(self, location: str) -> LocationCapacity:
        figures = [(c.slots, c.busy, c.warm) for c in self.hosts.values() if c.location == location]
        figures += [(v.slots, v.busy, v.warm) for v in self._peer_hosts() if v.location == location]
        total = sum(slots for slots, _, _ in figures)
        busy = sum(min(b, slots) for slots, b, _ in figures)
        idle = sum(min(w, slots - min(b, slots)) for slots, b, w in figures)
        return LocationCapacity(location, total, busy + idle, idle)

    def running_sessions(self) -> set[str]:
        """Sessions on joined hosts, on hosts away for less than lost_after_s (they may come back), and on the
        hosts other replicas hold."""
        conns = [*self.hosts.values(), *self._away.values()]
        return set(self._session_host) | {sid for c in conns for sid in c.sessions} | {
            sid for v in self._peer_hosts() for sid in v.sessions}

    def viewer_count(self, session_id: str) -> int:
        state = self._state(session_id)
        return state.viewers if state is not None else 0

    def recording_status(self, session_id: str, broadcast_id: str) -> dict[str, object] | None:
        state = self._state(session_id)
        return state.recordings.get(broadcast_id) if state is not None else None

    def egress_status(self, session_id: str) -> list[EgressStatus]:
        state = self._state(session_id)
        return list(state.egress) if state is not None else []

    def hls_endpoint(self, session_id: str) -> HostMediaEndpoint | None:
        """The LL-HLS endpoint of the host running the session (None: unknown, or a host in this process)."""
        conn = self._host_of(session_id)
        if conn is None or conn.hello.media_url is None or conn.hello.media_key is None:
            return None
        return HostMediaEndpoint(conn.hello.media_url, conn.hello.media_key)

    def video_stats(self) -> dict[str, VideoStats]:
        return {sid: s.video for c in self.hosts.values() for sid, s in c.sessions.items() if s.video is not None}

    def _state(self, session_id: str):  # type: ignore[no-untyped-def]
        conn = self._host_of(session_id)
        if conn is not None:
            return conn.sessions.get(session_id)
        return self.peers.session_state(session_id) if self.peers is not None else None

    def _host_of(self, session_id: str) -> HostConnection | None:
        """The connected host the session was placed on or that reported it at its hello (never one that merely
        lists it in a heartbeat: a host cannot take another's session over)."""
        host_id = self._session_host.get(session_id)
        return self.hosts.get(host_id) if host_id is not None else None

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
                return await self._place_elsewhere(placement, timeout_s)
        else:
            conn = self._choose(placement)
        if conn is None:
            where = ", ".join(placement.locations) if placement.locations else "any location"
            raise PlacementError("placementTimeout", f"no host is connected in {where}")
        return await self._place_on(conn, placement, timeout_s)

    async def _place_elsewhere(self, placement: Placement, timeout_s: float) -> PlacementResult:
        host_id = placement.host_id
        assert host_id is not None
        if self.peers is None:
            raise PlacementError("internalError", f"host {host_id} is not connected to this replica")
        started = time.monotonic()
        try:
            result = await self.peers.request(host_id, "place", {"placement": placement, "timeout_s": timeout_s},
                                              timeout_s + PLACEMENT_GRACE_S)
        except LookupError as exc:
            raise PlacementError("internalError", str(exc)) from None
        assert isinstance(result, PlacementResult)
        (self.start_times.warm if result.warm else self.start_times.cold).append(time.monotonic() - started)
        return result

    async def _place_on(self, conn: HostConnection, placement: Placement, timeout_s: float) -> PlacementResult:
        started = time.monotonic()
        conn.pending_placements += 1
        self._session_host[placement.session_id] = conn.host_id
        try:
            sent = placement if conn.shares_disk else replace(placement, launch=for_remote_host(placement.launch))
            result = await conn.request("place", {"placement": sent, "timeout_s": timeout_s},
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
            host_id = await self._peer_host_of(session_id)
            if host_id is None:
                raise missing(f"session {session_id} is not running on any connected host")
            try:
                return await self.peers.request(host_id, op, {"session_id": session_id, **args},  # type: ignore[union-attr]
                                                REQUEST_TIMEOUT_S)
            except LookupError as exc:
                if missing is LookupError:
                    raise
                raise missing(str(exc)) from None
        try:
            return await conn.request(op, {"session_id": session_id, **args}, REQUEST_TIMEOUT_S)
        except HostGone:
            raise missing(f"the host of session {session_id} went away") from None

    async def connect(self, session_id: str, signal_request: str) -> str:
        return await self._ask(session_id, "connect", {"signal_request": signal_request}, SignalError)

    async def _peer_host_of(self, session_id: str) -> str | None:
        """The host of a session this replica holds no host of, when another replica holds that host."""
        if self.peers is None:
            return None
        host_id = await self.peers.host_of_session(session_id)
        return host_id if host_id is not None and host_id not in self.hosts else None

    async def terminate_on(self, host_id: str, session_id: str) -> None:
        """Have that host, and only it, stop a session the control plane does not run there (one it still had
        after the session ended, or one it claims that runs elsewhere). Nothing is reported ENDED for it."""
        if self._session_host.get(session_id) == host_id:
            del self._session_host[session_id]
        conn = self.hosts.get(host_id)
        if conn is None:
            if self.peers is not None:
                with contextlib.suppress(LookupError):
                    await self.peers.request(host_id, "terminate", {"session_id": session_id,
                                                                    "reason": "terminated"}, REQUEST_TIMEOUT_S)
            return
        conn.forget(session_id)
        with contextlib.suppress(HostGone, LookupError):
            await conn.request("terminate", {"session_id": session_id, "reason": "terminated"}, REQUEST_TIMEOUT_S)

    async def terminate(self, session_id: str, reason: str = "terminated") -> None:
        conn = self._host_of(session_id)
        if conn is None:
            host_id = await self._peer_host_of(session_id)
            if host_id is not None:
                try:  # its host's replica reports it ENDED
                    await self.peers.request(host_id, "terminate",  # type: ignore[union-attr]
                                             {"session_id": session_id, "reason": reason}, REQUEST_TIMEOUT_S)
                    return
                except LookupError:
                    pass
            await self._emit(SessionEvent(session_id, SessionEventKind.ENDED, time.time()))  # nothing runs it
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

    async def collect_files(self, session_id: str, log_paths: list[str], export: bool) -> list[FileBundle]:
        return await self._ask(session_id, "collect_files", {"log_paths": log_paths, "export": export}, LookupError)

    async def read_file(self, session_id: str, name: str, offset: int) -> bytes:
        return await self._ask(session_id, "read_file", {"name": name, "offset": offset}, LookupError)

    # ------------------------------------------------------------------ warm capacity
    # ------------------------------------------------------------------ broadcast stages, on the session's host
    async def stage_publish(self, session_id: str, broadcast_id: str, offer_sdp: str) -> tuple[str, str, str]:
        return await self._ask(session_id, "stage_publish", {"broadcast_id": broadcast_id, "offer_sdp": offer_sdp},
                               LookupError)

    async def stage_unpublish(self, session_id: str, broadcast_id: str, publisher_id: str) -> bool:
        try:
            return await self._ask(session_id, "stage_unpublish", {"broadcast_id": broadcast_id,
                                                                   "publisher_id": publisher_id}, LookupError)
        except LookupError:
            return False

    async def stage_trickle(self, session_id: str, broadcast_id: str, publisher_id: str, fragment: str) -> int:
        return await self._ask(session_id, "stage_trickle", {"broadcast_id": broadcast_id,
                                                             "publisher_id": publisher_id, "fragment": fragment},
                               LookupError)

    async def stage_add_viewer(self, session_id: str, broadcast_id: str, offer_sdp: str) -> tuple[str, str]:
        return await self._ask(session_id, "stage_add_viewer", {"broadcast_id": broadcast_id,
                                                                "offer_sdp": offer_sdp}, LookupError)

    async def stage_remove_viewer(self, session_id: str, broadcast_id: str, viewer_id: str) -> bool:
        try:
            return await self._ask(session_id, "stage_remove_viewer", {"broadcast_id": broadcast_id,
                                                                       "viewer_id": viewer_id}, LookupError)
        except LookupError:
            return False

    async def stage_end(self, session_id: str, broadcast_id: str) -> None:
        with contextlib.suppress(LookupError):
            await self._ask(session_id, "stage_end", {"broadcast_id": broadcast_id}, LookupError)

    def stage_state(self, session_id: str, broadcast_id: str) -> StageState | None:
        state = self._state(session_id)
        stages = state.stages if state is not None else ()
        return next((st for st in stages if st.broadcast_id == broadcast_id), None)

    async def set_warm_target(self, stream_group_id: str, location: str, launches: list[LaunchSpec],
                              count: int, pause_idle: bool = True) -> None:
        await self._set_target(stream_group_id, location, launches, count, pause_idle)
        if self.peers is not None:  # every replica deals the same target over all the location's hosts
            await self.peers.tell_targets(stream_group_id, location, launches, count, pause_idle)

    async def _set_target(self, stream_group_id: str, location: str, launches: list[LaunchSpec],
                          count: int, pause_idle: bool) -> None:
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
        # each slot goes to the host with the most room; the deal runs over every host of the location, those
        # other replicas hold too (each replica tells only its own hosts their share)
        room = {c.host_id: max(0, c.slots - c.busy) for c in hosts}
        for v in self._peer_hosts():
            if v.location == location and v.status == ONLINE:
                room.setdefault(v.host_id, max(0, v.slots - v.busy))
        dealt = sorted(room)
        shares: dict[str, dict[str, int]] = {}
        for group in groups:
            _launches, count, _pause = self._targets.get((group, location), ([], 0, True))
            shares[group] = {host_id: 0 for host_id in dealt}
            for _ in range(count if dealt else 0):
                best = max(dealt, key=lambda h: (room[h], -dealt.index(h)))
                shares[group][best] += 1
                room[best] -= 1
        for group in groups:
            launches, count, pause_idle = self._targets.get((group, location), ([], 0, True))
            share = shares[group]
            for conn in [*hosts, *draining]:
                share.setdefault(conn.host_id, 0)
                try:
                    await conn.request("set_warm_target", {"stream_group_id": group, "location": location,
                                                           "launches": _launches_for(conn, launches)
                                                           if share[conn.host_id] else [],
                                                           "count": share[conn.host_id],
                                                           "pause_idle": pause_idle}, REQUEST_TIMEOUT_S)
                except (HostGone, RuntimeError, TimeoutError) as exc:
                    log.warning("host %s: warm target for group %s not set: %s", conn.host_id, group, exc)


def _launches_for(conn: HostConnection, launches: list[LaunchSpec]) -> list[LaunchSpec]:
    return launches if conn.shares_disk else [for_remote_host(spec) for spec in launches]
