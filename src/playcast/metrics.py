"""Prometheus metrics of one playcast server: the metric families, read from live state at each scrape.

Reads what the parts already count (host pool, fan-outs, HLS origin, events service, database); never changes
that state, and media code never imports it. One registry per app (tests run several apps in one process)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy import func, select

from .control.sessions import FINAL, RUNNING
from .store.broadcasts import BroadcastRow
from .store.models import StreamSessionRow

if TYPE_CHECKING:
    from playcast.control.host_pool import HostPool

    from .api.hls import HlsOriginCounts
    from .control.plane import ControlPlane
    from .events.service import EventsService
    from .hostproto.types import VideoStats

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # text/plain; version=0.0.4; charset=utf-8
SESSION_STATUSES = (*RUNNING, *FINAL)
LIVE = "LIVE"


@runtime_checkable
class MediaHost(Protocol):
    """A host pool that runs sessions in this process (LocalHostPool) and so can tell their media figures."""

    def video_stats(self) -> dict[str, VideoStats]: ...


class _Snapshot:
    """What the database says at one scrape (read before rendering: collectors cannot await)."""

    def __init__(self, sessions: dict[str, int], live_broadcasts: list[str]) -> None:
        self.sessions = sessions
        self.live_broadcasts = live_broadcasts


class Metrics:
    """The registry of one app and the sources its collector reads; `await render()` answers a scrape."""

    def __init__(self, host_pool: HostPool, plane: Callable[[], ControlPlane | None]) -> None:
        self.host_pool = host_pool
        self._plane = plane
        self.events: EventsService | None = None
        self.hls: HlsOriginCounts | None = None
        self._snapshot: _Snapshot | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.registry.register(_PlaycastCollector(self))

    def watch(self, *, events: EventsService | None = None, hls: HlsOriginCounts | None = None) -> None:
        """Also report the events service and the LL-HLS origin's request counts (wired by `playcast up`)."""
        if events is not None:
            self.events = events
        if hls is not None:
            self.hls = hls

    async def render(self) -> bytes:
        """The text exposition format (version 0.0.4) of every family, with the database read just now."""
        self._snapshot = await self._read_database()
        return generate_latest(self.registry)

    async def _read_database(self) -> _Snapshot | None:
        plane = self._plane()
        if plane is None or not plane.db.is_open:
            return None
        try:
            async with plane.db.session() as s:
                rows = (await s.execute(select(StreamSessionRow.status, func.count())
                                        .group_by(StreamSessionRow.status))).all()
                live = (await s.execute(select(BroadcastRow.id).where(BroadcastRow.status == LIVE))).scalars()
                live_ids = sorted(live)
        except Exception as exc:  # noqa: BLE001 - a database hiccup must not fail the scrape: leave them out
            log.warning("metrics: database not readable: %r", exc)
            return None
        sessions = dict.fromkeys(SESSION_STATUSES, 0)
        sessions.update({status: int(n) for status, n in rows})
        return _Snapshot(sessions, live_ids)

    # ------------------------------------------------------------------ families (called by the collector)
    def families(self) -> Iterator[Metric]:
        yield from self._control()
        yield from self._host()
        yield from self._broadcasts()
        yield from self._hls()
        yield from self._events()

    def _control(self) -> Iterator[Metric]:
        snap = self._snapshot
        if snap is None:
            return
        g = GaugeMetricFamily("playcast_sessions", "Stream sessions in the database by status (the same on "
                              "every replica).", labels=["status"])
        for status, n in sorted(snap.sessions.items()):
            g.add_metric([status], n)
        yield g
        yield GaugeMetricFamily("playcast_broadcasts_live", "Live broadcasts in the database (the same on "
                                "every replica).", value=len(snap.live_broadcasts))

    def _host(self) -> Iterator[Metric]:
        pool = self.host_pool
        where = ["location"]
        total = GaugeMetricFamily("playcast_host_slots", "Stream slots of the hosts joined to this replica.", labels=where)
        busy = GaugeMetricFamily("playcast_host_slots_busy", "Slots running a stream session.", labels=where)
        warm = GaugeMetricFamily("playcast_host_slots_warm", "Slots with the application launched, waiting "
                                 "for a session.", labels=where)
        plane = self._plane()
        for location in plane.locations() if plane is not None else pool.locations():  # the primary one too
            cap = pool.capacity(location)
            total.add_metric([location], cap.total_slots)
            busy.add_metric([location], cap.allocated - cap.idle)
            warm.add_metric([location], cap.idle)
        yield from (total, busy, warm)
        times = getattr(pool, "start_times", None)
        if times is not None:
            s = SummaryMetricFamily("playcast_session_start_seconds", "Seconds from placement to the answer, "
                                    "on a warm slot or a cold launch.", labels=["warm"])
            s.add_metric(["true"], len(times.warm), sum(times.warm))
            s.add_metric(["false"], len(times.cold), sum(times.cold))
            yield s
        if isinstance(pool, MediaHost):
            yield from _video(pool.video_stats())

    def _broadcasts(self) -> Iterator[Metric]:
        snap, plane = self._snapshot, self._plane()
        if snap is None or plane is None:
            return
        g = GaugeMetricFamily("playcast_whep_viewers", "WHEP viewers of each live broadcast served here.",
                              labels=["broadcast"])
        for broadcast_id in snap.live_broadcasts:
            if plane.broadcasts.live_session(broadcast_id) is not None:
                g.add_metric([broadcast_id], plane.broadcasts.viewer_count(broadcast_id))
        yield g

    def _hls(self) -> Iterator[Metric]:
        counts = self.hls
        if counts is None:
            return
        c = CounterMetricFamily("playcast_hls_requests", "LL-HLS origin GET/HEAD requests by kind.",
                                labels=["kind"])
        for kind, n in counts.requests.items():
            c.add_metric([kind], n)
        yield c
        t = CounterMetricFamily("playcast_hls_blocked_timeouts", "Blocking LL-HLS requests (playlist reload, "
                                "preload-hinted part, open segment) that gave up with 503.", labels=["kind"])
        for kind, n in counts.timeouts.items():
            t.add_metric([kind], n)
        yield t

    def _events(self) -> Iterator[Metric]:
        service = self.events
        if service is None:
            return
        index = service.router.index
        subs = sum(len(b) for b in index.exact.values()) + sum(len(b) for b in index.prefixed.values())
        yield GaugeMetricFamily("playcast_events_connections", "Events WebSocket connections here.",
                                value=len(service.connections))
        yield GaugeMetricFamily("playcast_events_subscriptions", "Events subscriptions here.", value=subs)
        yield GaugeMetricFamily("playcast_events_channels", "Channels and wildcards with a subscriber here.",
                                value=len(index.exact) + len(index.prefixed))
        yield CounterMetricFamily("playcast_events_published", "Events published through this process.",
                                  value=service.published)
        yield CounterMetricFamily("playcast_events_deliveries", "Data messages written to subscribers here.",
                                  value=service.router.delivered)
        yield CounterMetricFamily("playcast_events_slow_consumer_disconnects", "Sockets closed because they "
                                  "did not read their events.", value=service.slow_consumers)


def _video(stats: dict[str, VideoStats]) -> Iterator[Metric]:
    """Per-session families of the shared encode (session ids as labels: a host runs few sessions)."""
    by = ["session"]
    packets = CounterMetricFamily("playcast_video_packets", "Encoded video packets (frames) from the "
                                  "encoder.", labels=by)
    keyframes = CounterMetricFamily("playcast_video_keyframes", "Keyframes from the encoder.", labels=by)
    requests = CounterMetricFamily("playcast_video_keyframe_requests", "Keyframes asked of the encoder "
                                   "(coalesced).", labels=by)
    sinks = GaugeMetricFamily("playcast_video_sinks", "Consumers of the encode (player, viewers, LL-HLS, "
                              "egress).", labels=by)
    dropped = CounterMetricFamily("playcast_video_dropped_packets", "Packets dropped by consumers that fell "
                                  "behind.", labels=by)
    encoder = InfoMetricFamily("playcast_video_encoder", "The session's H.264 encoder.", labels=by)
    for session_id, v in sorted(stats.items()):
        packets.add_metric([session_id], v.packets)
        keyframes.add_metric([session_id], v.keyframes)
        requests.add_metric([session_id], v.keyframe_requests)
        sinks.add_metric([session_id], v.sinks)
        dropped.add_metric([session_id], v.dropped)
        encoder.add_metric([session_id], {"encoder": v.encoder})
    yield from (packets, keyframes, requests, sinks, dropped, encoder)


class _PlaycastCollector:
    """Adapts Metrics to prometheus_client's Collector protocol."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()
