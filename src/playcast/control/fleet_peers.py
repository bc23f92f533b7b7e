"""The other control-plane replicas, as this replica's Fleet needs them: which replica holds a host's connection,
requests for that host forwarded to it (and theirs served here), warm targets told to all, and a snapshot of the
hosts they hold (from the database, refreshed every second) for the reads that must not wait.

Encodes requests with the host protocol's codec and carries them over bus/replica_calls; it opens no sockets and
chooses no hosts (the Fleet does)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import select

from playcast.bus.replica_calls import MAX_CALL_BYTES, ReplicaCalls, ReplicaUnreachable
from playcast.control.fleet_directory import FleetDirectory, HostView
from playcast.hostproto import codec
from playcast.hostproto.messages import SessionState
from playcast.hostproto.types import PlacementError, SignalError
from playcast.json_input import parse_json
from playcast.store.db import Database
from playcast.store.hosts import HostRow
from playcast.store.models import StreamSessionRow

log = logging.getLogger(__name__)

REFRESH_S = 1.0
REPLICA_STALE_S = 6.0  # a replica whose heartbeat (every 2 s) is older than this is dead
FORWARD_SLACK_S = 5.0  # beyond the request's own timeout, for the hop between replicas



class PeerServed(Protocol):
    """What this replica's Fleet does for the other replicas' calls."""

    async def serve_forwarded(self, host_id: str, op: str, args: dict[str, Any], timeout_s: float) -> Any:
        """A host request for a host held here (raises LookupError when it is not)."""

    async def apply_target(self, stream_group_id: str, location: str, launches: list[Any], count: int,
                           pause_idle: bool) -> None: ...

    async def peers_changed(self, locations: set[str]) -> None:
        """The hosts other replicas hold in these locations changed (warm shares move)."""

    async def admin_here(self, action: str, host_id: str) -> None:
        """'drain' or 'remove' a host held here (LookupError when it is not); 'recheck' every host's token."""


def _error_to_wire(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, PlacementError):
        return {"kind": "placement", "reason": exc.reason, "message": str(exc)}
    if isinstance(exc, SignalError):
        return {"kind": "signal", "message": str(exc)}
    if isinstance(exc, LookupError):
        return {"kind": "lookup", "message": str(exc.args[0]) if exc.args else "not found"}
    if isinstance(exc, TimeoutError):
        return {"kind": "timeout", "message": "the host did not answer in time"}
    return {"kind": "runtime", "message": f"{type(exc).__name__}: {exc}"[:500]}


def _error_from_wire(err: dict[str, Any]) -> Exception:
    kind, message = err.get("kind"), str(err.get("message", ""))[:2000]
    if kind == "placement":
        return PlacementError(str(err.get("reason") or "internalError"), message)
    if kind == "signal":
        return SignalError(message)
    if kind == "lookup":
        return LookupError(message)
    if kind == "timeout":
        return TimeoutError(message)
    return RuntimeError(message)


class FleetPeers:
    """This replica's view of the others. `start()` serves their calls and loads the first snapshot."""

    def __init__(self, db: Database, directory: FleetDirectory, calls: ReplicaCalls, *,
                 lost_after_s: float, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.directory = directory
        self.calls = calls
        self.lost_after_s = lost_after_s
        self.clock = clock
        self.replica_id = directory.replica_id
        self._hosts: dict[str, HostView] = {}  # fresh hosts held by other live replicas
        self._live: set[str] = set()
        self._served: PeerServed | None = None
        self._refresher: asyncio.Task[None] | None = None

    async def start(self, served: PeerServed) -> None:
        """Serve other replicas' calls with `served` (this replica's Fleet) and load the first snapshot."""
        self._served = served
        await self.calls.start(self._serve)
        with contextlib.suppress(Exception):
            await self.refresh()
        self._refresher = asyncio.ensure_future(self._refresh_loop())

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refresher
        await self.calls.close()

    # ------------------------------------------------------------------ the snapshot
    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except Exception:  # noqa: BLE001 - the database may be back next time; the old snapshot stays
                log.warning("fleet peers: snapshot refresh failed", exc_info=True)

    async def refresh(self) -> None:
        now = self.clock()
        live = await self.directory.live_replicas(REPLICA_STALE_S)
        listening = await self.calls.listening(live - {self.replica_id})
        if listening is not None:  # a replica killed a moment ago still has a recent heartbeat, but nobody listens
            live = listening | {self.replica_id}
        views = await self.directory.hosts()
        hosts = {v.host_id: v for v in views if v.replica_id not in (None, self.replica_id)
                 and v.replica_id in live and v.fresh(now, self.lost_after_s)}
        before = {(v.host_id, v.location, v.status) for v in self._hosts.values()}
        after = {(v.host_id, v.location, v.status) for v in hosts.values()}
        self._hosts, self._live = hosts, live - {self.replica_id}
        if before != after:
            log.info("hosts held by other replicas: %s", ", ".join(
                f"{v.host_id} ({v.location}, {v.status}, on {v.replica_id})" for v in hosts.values()) or "none")
            if self._served is not None:
                await self._served.peers_changed({loc for _, loc, _ in before ^ after})

    def hosts(self) -> list[HostView]:
        """Hosts other live replicas hold, as of the last snapshot."""
        return list(self._hosts.values())

    def session_state(self, session_id: str) -> SessionState | None:
        for view in self._hosts.values():
            raw = view.sessions.get(session_id)
            if raw is not None:
                try:
                    return codec.state_from_wire(codec.Fields(raw, "session"))
                except codec.ProtocolError:
                    return SessionState(session_id)
        return None

    def others(self) -> set[str]:
        return set(self._live)

    # ------------------------------------------------------------------ where things are now
    async def replica_of(self, host_id: str) -> str | None:
        """The other live replica holding `host_id`'s connection now (read from the database), or None."""
        async with self.db.session() as s:
            row = await s.get(HostRow, host_id)
        if row is None or row.replica_id in (None, self.replica_id) or row.status == "OFFLINE":
            return None
        if self.clock() - row.heartbeat_at > self.lost_after_s:
            return None
        live = await self.directory.live_replicas(REPLICA_STALE_S)
        return row.replica_id if row.replica_id in live else None

    async def host_of_session(self, session_id: str) -> str | None:
        async with self.db.session() as s:
            return (await s.execute(select(StreamSessionRow.host_id).where(
                StreamSessionRow.id == session_id))).scalar_one_or_none()

    # ------------------------------------------------------------------ calls out
    async def request(self, host_id: str, op: str, args: dict[str, Any], timeout_s: float) -> Any:
        """Run a host request on the replica that holds the host. Raises LookupError when no live replica
        does; otherwise what the host's request raises (PlacementError, SignalError, LookupError, ...)."""
        replica = await self.replica_of(host_id)
        if replica is None:
            raise LookupError(f"host {host_id} is not connected to any replica")
        body = {"what": "request", "host_id": host_id, "op": op, "args": codec.args_to_wire(op, args),
                "timeout_s": timeout_s}
        try:
            raw = await self.calls.call(replica, json.dumps(body).encode(), timeout_s + FORWARD_SLACK_S)
        except ReplicaUnreachable as exc:
            raise LookupError(f"host {host_id}: its replica {replica} is unreachable ({exc})") from None
        reply = parse_json(raw, max_bytes=MAX_CALL_BYTES)
        if reply.get("error") is not None:
            raise _error_from_wire(reply["error"])
        try:
            return codec.result_of(op, reply.get("result"))
        except codec.ProtocolError as exc:
            raise RuntimeError(f"replica {replica} answered {op} with {exc}") from None

    async def tell_targets(self, stream_group_id: str, location: str, launches: list[Any], count: int,
                           pause_idle: bool) -> None:
        """Every other live replica applies the same warm target to the hosts it holds."""
        await self._tell_all({"what": "targets", **codec.args_to_wire("set_warm_target", {
            "stream_group_id": stream_group_id, "location": location, "launches": launches, "count": count,
            "pause_idle": pause_idle})})

    async def recheck(self) -> None:
        """Every other live replica asks again whether its hosts' tokens may stay (one was revoked)."""
        await self._tell_all({"what": "admin", "action": "recheck", "host_id": ""})

    async def admin(self, host_id: str, action: str) -> None:
        """`drain` or `remove` a host on the replica holding it. Raises LookupError when none does."""
        replica = await self.replica_of(host_id)
        if replica is None:
            raise LookupError(f"host {host_id} is not connected to any replica")
        try:
            raw = await self.calls.call(replica, json.dumps({"what": "admin", "action": action,
                                                             "host_id": host_id}).encode(), 10.0)
        except ReplicaUnreachable as exc:
            raise LookupError(f"host {host_id}: its replica {replica} is unreachable ({exc})") from None
        reply = parse_json(raw, max_bytes=MAX_CALL_BYTES)
        if reply.get("error") is not None:
            raise _error_from_wire(reply["error"])

    async def _tell_all(self, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        for replica in sorted(await self.directory.live_replicas(REPLICA_STALE_S) - {self.replica_id}):
            try:
                await self.calls.call(replica, payload, 10.0)
            except (ReplicaUnreachable, TimeoutError) as exc:
                log.warning("%s not told to replica %s: %s", body.get("what"), replica, exc)

    # ------------------------------------------------------------------ calls in
    async def _serve(self, payload: bytes) -> bytes:
        try:
            body = codec.Fields(parse_json(payload, max_bytes=MAX_CALL_BYTES), "call")
            what = body.str("what", max_len=32)
            if what == "request":
                op = body.str("op", max_len=64)
                raw_args = body.obj("args")
                if raw_args is None:
                    raise codec.ProtocolError("call.args is required")
                args = codec.args_from_wire(op, raw_args)
                host_id, timeout_s = body.str("host_id", max_len=128), body.float("timeout_s")
            elif what == "targets":
                op, args = "set_warm_target", codec.args_from_wire("set_warm_target", body)
            elif what == "admin":
                op = body.str("action", max_len=16)
                if op not in ("drain", "remove", "recheck"):
                    raise codec.ProtocolError(f"unknown action {op!r}")
                args = {"host_id": body.str("host_id", max_len=128)}
            else:
                raise codec.ProtocolError(f"unknown call {what[:32]!r}")
        except ValueError as exc:  # JsonInputError and codec.ProtocolError are ValueErrors
            return json.dumps({"error": {"kind": "runtime", "message": f"bad call: {exc}"}}).encode()
        served = self._served
        if served is None:
            return json.dumps({"error": {"kind": "lookup", "message": "this replica is stopping"}}).encode()
        try:
            if what == "targets":
                await served.apply_target(args["stream_group_id"], args["location"], args["launches"],
                                          args["count"], args["pause_idle"])
                return b"{}"
            if what == "admin":
                await served.admin_here(op, args["host_id"])
                return b"{}"
            result = await served.serve_forwarded(host_id, op, args, timeout_s)
            return json.dumps({"result": codec.result_to_wire(op, result)}).encode()
        except Exception as exc:  # noqa: BLE001 - the caller gets the error in its own terms
            return json.dumps({"error": _error_to_wire(exc)}).encode()
