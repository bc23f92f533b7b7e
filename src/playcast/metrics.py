"""Prometheus metrics of one playcast server: the metric families, read from live state at each scrape.

Reads what the parts already count (host pool, fan-outs, HLS origin, events service, placement counts, the
database: sessions, the fleet's hosts, the capacity signal); never changes that state, and media code never imports
it. One registry per app (tests run several apps in one process). docs/fleet-metrics.md describes the fleet's."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy import func, select

from .control.capacity_signal import LocationDemand, location_demands
from .control.fleet_directory import DRAINING, OFFLINE, ONLINE, HostView
from .control.placement_stats import REASONS
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

    def __init__(self, sessions: dict[str, int], live_broadcasts: list[str], hosts: list[HostView] | None = None,
                 demands: list[LocationDemand] | None = None, now: float = 0.0) -> None:
        self.sessions = sessions
        self.live_broadcasts = live_broadcasts
        self.hosts = hosts  # None: this replica keeps no fleet in the database
        self.demands = demands or []
        self.now = now


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
        now = time.time()
        hosts: list[HostView] | None = None
        demands: list[LocationDemand] = []
        try:
            async with plane.db.session() as s:
                rows = (await s.execute(select(StreamSessionRow.status, func.count())
                                        .group_by(StreamSessionRow.status))).all()
                live = (await s.execute(select(BroadcastRow.id).where(BroadcastRow.status == LIVE))).scalars()
                live_ids = sorted(live)
            if plane.fleet_directory is not None:
                hosts = await plane.fleet_directory.hosts()
                refused = await plane.placement_stats.recent_refusals(plane.settings.capacity_window_s)
                async with plane.db.session() as s:
                    demands = await location_demands(s, hosts, refused, now=now,
                                                     lost_after_s=float(plane.settings.host_lost_after_s))
        except Exception as exc:  # noqa: BLE001 - a database hiccup must not fail the scrape: leave them out
            log.warning("metrics: database not readable: %r", exc)
            return None
        sessions = dict.fromkeys(SESSION_STATUSES, 0)
        sessions.update({status: int(n) for status, n in rows})
        return _Snapshot(sessions, live_ids, hosts, demands, now)

    # ------------------------------------------------------------------ families (called by the collector)
    def families(self) -> Iterator[Metric]:
        yield from self._control()
        yield from self._fleet()
        yield from self._placements()
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

    def _fleet(self) -> Iterator[Metric]:
        """Every host in the database, whichever replica holds it, and the capacity signal per location (the
        same on every replica: aggregate with max, not sum)."""
        snap = self._snapshot
        if snap is None or snap.hosts is None:
            return
        by = ["host", "location"]
        slots = GaugeMetricFamily("playcast_fleet_host_slots", "Stream slots of each host (last heartbeat).", labels=by)
        busy = GaugeMetricFamily("playcast_fleet_host_slots_busy", "Slots of each host running a session.", labels=by)
        warm = GaugeMetricFamily("playcast_fleet_host_slots_warm", "Idle warm slots of each host (application "
                                 "launched, no session).", labels=by)
        paused = GaugeMetricFamily("playcast_fleet_host_slots_warm_paused", "Idle warm slots of each host whose game "
                                   "is paused until claimed.", labels=by)
        age = GaugeMetricFamily("playcast_fleet_host_heartbeat_age_seconds", "Seconds since each host was last "
                                "heard from.", labels=by)
        status = GaugeMetricFamily("playcast_fleet_host_status", "1 for each host's status (ONLINE, DRAINING or "
                                   "OFFLINE), 0 for the others.", labels=[*by, "status"])
        for h in snap.hosts:
            where = [h.host_id, h.location]
            slots.add_metric(where, h.slots)
            busy.add_metric(where, h.busy)
            warm.add_metric(where, h.warm)
            paused.add_metric(where, h.paused)
            age.add_metric(where, max(0.0, snap.now - h.heartbeat_at))
            for name in (ONLINE, DRAINING, OFFLINE):
                status.add_metric([*where, name], 1 if h.status == name else 0)
        yield from (slots, busy, warm, paused, age, status)
        at = ["location"]
        wanted = GaugeMetricFamily("playcast_location_slots_wanted", "Host slots wanted but not there: in use + "
                                   "waiting + refused in the capacity window + warm wanted - online slots, at "
                                   "least 0 (the autoscaling signal).", labels=at)
        needed = GaugeMetricFamily("playcast_location_slots_needed", "Host slots asked of the location in all: in "
                                   "use + waiting + refused in the capacity window + warm wanted.", labels=at)
        online = GaugeMetricFamily("playcast_location_slots_online", "Slots of the ONLINE hosts heard from in time.",
                                   labels=at)
        in_use = GaugeMetricFamily("playcast_location_slots_in_use", "Sessions placed or being placed on those "
                                   "hosts.", labels=at)
        waiting = GaugeMetricFamily("playcast_location_sessions_waiting", "Sessions waiting for a host where none "
                                    "is online.", labels=at)
        refused = GaugeMetricFamily("playcast_location_sessions_refused_recent", "Sessions refused for want of a "
                                    "slot within PLAYCAST_CAPACITY_WINDOW_S.", labels=at)
        warm_wanted = GaugeMetricFamily("playcast_location_slots_warm_wanted", "Idle slots the stream groups keep "
                                        "beyond their sessions (AlwaysOnCapacity, TargetIdleCapacity).", labels=at)
        for d in snap.demands:
            wanted.add_metric([d.location], d.wanted)
            needed.add_metric([d.location], d.needed)
            online.add_metric([d.location], d.slots)
            in_use.add_metric([d.location], d.in_use)
            waiting.add_metric([d.location], d.waiting)
            refused.add_metric([d.location], d.refused)
            warm_wanted.add_metric([d.location], d.warm_wanted)
        yield from (wanted, needed, online, in_use, waiting, refused, warm_wanted)

    def _placements(self) -> Iterator[Metric]:
        """What this replica's placements did (counters: sum them over replicas)."""
        plane = self._plane()
        if plane is None:
            return
        stats = plane.placement_stats
        placed = CounterMetricFamily("playcast_placements", "Sessions placed on a host by this replica.",
                                     labels=["location", "warm"])
        for (location, was_warm), n in sorted(stats.placed.items()):
            placed.add_metric([location, "true" if was_warm else "false"], n)
        yield placed
        failed = CounterMetricFamily("playcast_placement_failures", "Placements by this replica that failed, by "
                                     "reason (no_capacity, no_host, host_error, timeout, group_maximum, internal).",
                                     labels=["location", "reason"])
        locations = {loc for loc, _ in stats.failed} | {loc for loc, _ in stats.placed}
        for location in sorted(locations):
            for reason in REASONS:
                failed.add_metric([location, reason], stats.failed.get((location, reason), 0))
        yield failed
        seconds = HistogramMetricFamily("playcast_placement_duration_seconds", "From StartStreamSession's "
                                        "placement to ACTIVE (result warm or cold) or to the failure (failed).",
                                        labels=["location", "result"])
        for (location, result), h in sorted(stats.durations.items()):
            seconds.add_metric([location, result], h.buckets(), h.total_s)
        yield seconds

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
