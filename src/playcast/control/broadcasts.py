"""Broadcasts: show a running stream session to viewers without a second encode.

Creates/ends broadcasts, checks viewer access, asks the HostPool for receive-only viewers, ends broadcasts when
their session ends. No HTTP, no media."""

from __future__ import annotations

import hmac
import logging
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from playcast.control.errors import ConflictError, NotFoundError
from playcast.hostproto.media_endpoint import HostMediaEndpoint
from playcast.hostproto.types import EgressStatus, SessionEvent, SessionEventKind, StageState
from playcast.store.broadcasts import BroadcastRow

log = logging.getLogger(__name__)

LIVE, ENDED = "LIVE", "ENDED"
_RUNNING = ("ACTIVE", "CONNECTED", "PENDING_CLIENT_RECONNECTION", "RECONNECTING")
_ALNUM = string.ascii_letters + string.digits


class AccessDenied(Exception):
    """Missing (`missing=True`) or wrong viewer token for a private broadcast."""

    def __init__(self, message: str, missing: bool) -> None:
        super().__init__(message)
        self.missing = missing


class NotLive(Exception):
    """The broadcast exists but nothing is being shown (ended, or its session is not running)."""


@dataclass
class BroadcastOptions:
    private: bool = False
    hls: bool = True
    record: bool = False


@dataclass(frozen=True)
class WhipEgressRequest:
    """Push the broadcast to an external WHIP endpoint (IVS stage, LiveKit, MediaMTX, another playcast ...)."""

    url: str
    token: str | None = None


@dataclass(frozen=True)
class ViewerAccess:
    """Who may view one broadcast: anyone (public), or whoever holds its viewer token (private)."""

    private: bool
    viewer_token: str = field(repr=False)

    def check(self, token: str | None) -> None:
        """Raises AccessDenied unless the broadcast is public or `token` is its viewer token."""
        if not self.private:
            return
        if not token:
            raise AccessDenied("this broadcast is private: send Authorization: Bearer <viewerToken>", True)
        if not hmac.compare_digest(token.encode(), self.viewer_token.encode()):
            raise AccessDenied("wrong viewer token", False)


@dataclass
class _Live:
    session_id: str
    access: ViewerAccess  # known at start, so that LL-HLS requests are checked without the database
    viewers: set[str] = field(default_factory=set)
    egress: set[str] = field(default_factory=set)  # WHIP egress ids started for this broadcast


class Broadcasts:
    def __init__(self, plane) -> None:  # type: ignore[no-untyped-def]
        self.plane = plane
        self._live: dict[str, _Live] = {}
        self.on_end: list[Callable[[str], Awaitable[None]]] = []  # called with the broadcast id when it ends

    async def start(self) -> None:
        """Broadcasts whose session is no longer running end (their session ended while no replica watched);
        the others stay live: they run on their session's host, whichever replica started them."""
        self.plane.host_pool.on_event(self._on_session_event)
        async with self.plane.db.sessionmaker() as db:
            rows = (await db.execute(select(BroadcastRow).where(BroadcastRow.status == LIVE))).scalars().all()
            for row in rows:
                session = await self.plane.sessions.row(row.stream_session_id)
                if session is None or session.status not in _RUNNING:
                    row.status, row.ended_at, row.end_reason = ENDED, time.time(), "serverRestart"
            await db.commit()

    async def _live_of(self, broadcast_id: str) -> _Live | None:
        """The broadcast as this replica drives it: from memory, or (one another replica started, or one from
        before a restart) from its row while it is LIVE."""
        live = self._live.get(broadcast_id)
        if live is not None:
            return live
        row = await self.get(broadcast_id)
        if row is None or row.status != LIVE:
            return None
        return self._live.setdefault(broadcast_id, _Live(row.stream_session_id,
                                                         ViewerAccess(row.private, row.viewer_token)))

    async def create(self, session_id: str, owner: str, options: BroadcastOptions,
                     egress: WhipEgressRequest | None = None) -> BroadcastRow:
        """Start (or return the session's live) broadcast; `egress` also pushes it to a WHIP endpoint."""
        row = await self._create(session_id, owner, options)
        live = self._live.get(row.id)
        if egress is not None and live is not None:
            try:
                live.egress.add(await self.plane.host_pool.start_egress(live.session_id, egress.url, egress.token))
            except LookupError:
                raise ConflictError(f"stream session {session_id} is not running on a host") from None
        return row

    async def _create(self, session_id: str, owner: str, options: BroadcastOptions) -> BroadcastRow:
        session = await self.plane.sessions.row(session_id)
        if session is None:
            raise NotFoundError(f"stream session {session_id} not found")
        if session.status not in _RUNNING:
            raise ConflictError(f"stream session {session_id} is {session.status}; only running sessions broadcast")
        async with self.plane.db.sessionmaker() as db:
            existing = (await db.execute(select(BroadcastRow).where(
                BroadcastRow.stream_session_id == session_id, BroadcastRow.status == LIVE))).scalars().first()
            if existing is not None:
                return existing  # one live broadcast per session: creating again returns it
            row = BroadcastRow(
                id="b-" + "".join(secrets.choice(_ALNUM) for _ in range(12)), stream_session_id=session_id,
                stream_group_id=session.stream_group_id, owner=owner, status=LIVE, private=options.private,
                viewer_token=secrets.token_urlsafe(24), publish_token=secrets.token_urlsafe(24), hls=options.hls, record=options.record,
                created_at=time.time())
            db.add(row)
            await db.commit()
        self._live[row.id] = _Live(session_id, ViewerAccess(row.private, row.viewer_token))
        if row.hls:
            try:
                await self.plane.host_pool.start_hls(session_id, row.id, record=row.record)
            except Exception:  # the WebRTC broadcast still works without LL-HLS
                log.exception("LL-HLS could not start", extra={"broadcast": row.id})
        log.info("broadcast started", extra={"broadcast": row.id, "session": session_id})
        return row

    async def get(self, broadcast_id: str) -> BroadcastRow | None:
        async with self.plane.db.sessionmaker() as db:
            return await db.get(BroadcastRow, broadcast_id)

    async def list_for_session(self, session_id: str) -> list[BroadcastRow]:
        async with self.plane.db.sessionmaker() as db:
            return list((await db.execute(select(BroadcastRow).where(
                BroadcastRow.stream_session_id == session_id).order_by(BroadcastRow.created_at))).scalars())

    async def end(self, broadcast_id: str, reason: str = "apiEnded") -> BroadcastRow:
        async with self.plane.db.sessionmaker() as db:
            row = await db.get(BroadcastRow, broadcast_id)
            if row is None:
                raise NotFoundError(f"broadcast {broadcast_id} not found")
            ended_now = row.status == LIVE
            if ended_now:
                row.status, row.ended_at, row.end_reason = ENDED, time.time(), reason
                await db.commit()
        live = self._live.pop(broadcast_id, None)
        if live is None and ended_now:  # started by another replica (or before a restart): stopped from here
            live = _Live(row.stream_session_id, ViewerAccess(row.private, row.viewer_token))
        if live is not None:
            if row.hls:
                rec = self.plane.host_pool.recording_status(live.session_id, broadcast_id)
                await self.plane.host_pool.stop_hls(live.session_id, broadcast_id)
                if rec is not None:
                    # prefixed: a bare "message" key would clash with the LogRecord's own (KeyError)
                    log.info("recording finished", extra={"broadcast": broadcast_id,
                                                          **{f"recording_{k}": v for k, v in rec.items()}})
            for viewer_id in list(live.viewers):
                await self.plane.host_pool.remove_viewer(live.session_id, viewer_id)
            for egress_id in list(live.egress):
                await self.plane.host_pool.stop_egress(live.session_id, egress_id)
            await self.plane.host_pool.stage_end(live.session_id, broadcast_id)
            for hook in list(self.on_end):
                try:
                    await hook(broadcast_id)
                except Exception:
                    log.exception("broadcast end hook failed", extra={"broadcast": broadcast_id})
            log.info("broadcast ended", extra={"broadcast": broadcast_id, "reason": reason})
        return row

    async def uploader_refusal(self, row: BroadcastRow, host_id: str, host_key: str) -> str | None:
        """None when host `host_id`, proved by its host key, runs the broadcast's session (so may upload its
        recording); else why not. Another host's token is no key to this broadcast."""
        directory = self.plane.fleet_directory
        if directory is None or not await directory.proves(host_id, host_key):
            return f"host {host_id} is not known by that key"
        session = await self.plane.sessions.row(row.stream_session_id)
        if session is None or session.host_id != host_id:
            return f"broadcast {row.id} is not recorded on host {host_id}"
        return None

    def check_access(self, row: BroadcastRow, token: str | None) -> None:
        """Raises AccessDenied unless `token` may view the broadcast of `row`."""
        ViewerAccess(row.private, row.viewer_token).check(token)

    def live_access(self, broadcast_id: str) -> ViewerAccess | None:
        """The access rule of a broadcast live in this process, from memory; None when it is not one of them."""
        live = self._live.get(broadcast_id)
        return live.access if live is not None else None

    async def viewer_access(self, broadcast_id: str) -> ViewerAccess | None:
        """live_access(), else read from the database (None: no such broadcast)."""
        access = self.live_access(broadcast_id)
        if access is not None:
            return access
        row = await self.get(broadcast_id)
        return ViewerAccess(row.private, row.viewer_token) if row is not None else None

    async def add_viewer(self, broadcast_id: str, offer_sdp: str, token: str | None) -> tuple[str, str]:
        """(viewer id, answer SDP). Raises NotFoundError, AccessDenied, NotLive, SignalError."""
        row = await self.get(broadcast_id)
        if row is None:
            raise NotFoundError(f"broadcast {broadcast_id} not found")
        self.check_access(row, token)
        live = await self._live_of(broadcast_id) if row.status == LIVE else None
        if live is None:
            raise NotLive(f"broadcast {broadcast_id} is not live")
        try:
            viewer_id, answer = await self.plane.host_pool.add_viewer(live.session_id, offer_sdp)
        except LookupError as exc:
            raise NotLive(f"broadcast {broadcast_id}: its session is not running ({exc})") from None
        live.viewers.add(viewer_id)
        return viewer_id, answer

    async def remove_viewer(self, broadcast_id: str, viewer_id: str) -> bool:
        live = self._live.get(broadcast_id)
        if live is None or viewer_id not in live.viewers:
            return False
        live.viewers.discard(viewer_id)
        return await self.plane.host_pool.remove_viewer(live.session_id, viewer_id)

    def viewer_count(self, broadcast_id: str) -> int:
        live = self._live.get(broadcast_id)
        return self.plane.host_pool.viewer_count(live.session_id) if live is not None else 0

    def recording_status(self, broadcast_id: str) -> dict[str, object] | None:
        live = self._live.get(broadcast_id)
        return self.plane.host_pool.recording_status(live.session_id, broadcast_id) if live is not None else None

    def egress_status(self, broadcast_id: str) -> list[EgressStatus]:
        """The WHIP egresses of the broadcast's session (started by the API or by IVS_WHIP_ENDPOINT)."""
        live = self._live.get(broadcast_id)
        return self.plane.host_pool.egress_status(live.session_id) if live is not None else []

    async def hls_source(self, broadcast_id: str) -> HostMediaEndpoint | None:
        """Where a live broadcast's LL-HLS is packaged when that is on a remote host: from the Fleet for one live
        in this process, else (a broadcast another replica started) from the database's hosts."""
        live = self._live.get(broadcast_id)
        if live is not None:
            return self.plane.host_pool.hls_endpoint(live.session_id)
        directory = self.plane.fleet_directory
        if directory is None:
            return None
        row = await self.get(broadcast_id)
        if row is None or row.status != LIVE or not row.hls:
            return None
        return await directory.media_endpoint(row.stream_session_id)

    # ------------------------------------------------------------------ the stage (WHIP ingest), on the session's host
    async def _live_session(self, broadcast_id: str) -> str:
        live = await self._live_of(broadcast_id)
        if live is None:
            raise NotLive(f"broadcast {broadcast_id} has ended")
        return live.session_id

    async def stage_publish(self, broadcast_id: str, offer_sdp: str) -> tuple[str, str, str]:
        """(publisher id, ETag, answer SDP). Raises NotLive, StageRefused."""
        try:
            return await self.plane.host_pool.stage_publish(await self._live_session(broadcast_id), broadcast_id,
                                                            offer_sdp)
        except LookupError as exc:
            raise NotLive(f"broadcast {broadcast_id}: its session is not running ({exc})") from None

    async def stage_unpublish(self, broadcast_id: str, publisher_id: str) -> bool:
        live = self._live.get(broadcast_id)
        return live is not None and await self.plane.host_pool.stage_unpublish(live.session_id, broadcast_id,
                                                                               publisher_id)

    async def stage_trickle(self, broadcast_id: str, publisher_id: str, fragment: str) -> int:
        """Raises NotLive (no such publisher any more), StageRefused."""
        try:
            return await self.plane.host_pool.stage_trickle(await self._live_session(broadcast_id), broadcast_id,
                                                            publisher_id, fragment)
        except LookupError as exc:
            raise NotLive(str(exc)) from None

    async def stage_add_viewer(self, broadcast_id: str, offer_sdp: str) -> tuple[str, str]:
        """(viewer id, answer SDP). Raises NotLive, StageRefused (409 when nothing is published)."""
        try:
            return await self.plane.host_pool.stage_add_viewer(await self._live_session(broadcast_id), broadcast_id,
                                                               offer_sdp)
        except LookupError as exc:
            raise NotLive(f"broadcast {broadcast_id}: its session is not running ({exc})") from None

    async def stage_remove_viewer(self, broadcast_id: str, viewer_id: str) -> bool:
        live = self._live.get(broadcast_id)
        return live is not None and await self.plane.host_pool.stage_remove_viewer(live.session_id, broadcast_id,
                                                                                   viewer_id)

    def stage_state(self, broadcast_id: str) -> StageState | None:
        """The broadcast's stage as its host last reported it."""
        live = self._live.get(broadcast_id)
        return self.plane.host_pool.stage_state(live.session_id, broadcast_id) if live is not None else None

    def live_session(self, broadcast_id: str) -> str | None:
        live = self._live.get(broadcast_id)
        return live.session_id if live is not None else None

    async def _on_session_event(self, event: SessionEvent) -> None:
        """The session's broadcasts end with it, also those another replica started (this replica holds the
        session's host, so it hears the end)."""
        if event.kind not in (SessionEventKind.ENDED, SessionEventKind.APP_EXITED):
            return
        ids = {bid for bid, live in self._live.items() if live.session_id == event.session_id}
        async with self.plane.db.sessionmaker() as db:
            ids |= set((await db.execute(select(BroadcastRow.id).where(
                BroadcastRow.stream_session_id == event.session_id, BroadcastRow.status == LIVE))).scalars())
        for broadcast_id in sorted(ids):
            await self.end(broadcast_id, "sessionEnded")
