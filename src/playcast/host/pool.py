"""LocalHostPool: the slots of one host machine (what the host agent runs; `playcast up` embeds one).

Keeps N slots; each slot is empty, warm (app launched, no session) or busy. Places sessions on a matching warm
slot first, launches cold otherwise, relaunches warm capacity fresh after each session. An idle warm slot is paused
once its game has drawn (unless its group's target says not to) and resumed when claimed. Nothing it starts outlives
the process that owns it, and `start()` cleans up what a dead predecessor on the same `state_dir` left
(host/containment.py). No HTTP, no database."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from playcast.host.app import LaunchError
from playcast.host.containment import HostContainment
from playcast.host.content import ContentCache
from playcast.host.runtime import RuntimeOptions, SessionRuntime
from playcast.hostproto.messages import SessionState
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
    StagePublisher,
    StageRefused,
    StageState,
    VideoStats,
)
from playcast.json_input import parse_json
from playcast.media.hls.registry import HlsRegistry
from playcast.media.peer import OfferError
from playcast.media.stage import NoPublisher, OfferRejected, Stage
from playcast.storage import Storage

log = logging.getLogger(__name__)


@dataclass
class Slot:
    slot_id: str
    runtime: SessionRuntime | None = None
    session_id: str | None = None
    launching: LaunchSpec | None = None  # a warm launch in progress
    warm_group: str | None = None

    @property
    def busy(self) -> bool:
        return self.session_id is not None

    @property
    def idle_warm(self) -> bool:
        return self.runtime is not None and self.session_id is None

    @property
    def free(self) -> bool:
        return self.runtime is None and self.session_id is None and self.launching is None


@dataclass
class WarmTarget:
    launches: list[LaunchSpec]
    count: int
    pause_idle: bool = True  # SIGSTOP idle warm games once they have drawn (off for games that cannot bear it)


@dataclass
class StartTimes:
    """Placement-to-answer timings, warm and cold separately (seconds)."""

    warm: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)


class LocalHostPool:
    """Slots on this machine, in one location. It has every method of control's HostPool (so tests may hand it to
    the control plane directly); `playcast up` and `playcast host` serve it through host/agent.py instead."""

    def __init__(self, location: str, slots: int, options: RuntimeOptions, host_id: str = "host-local",
                 hls_registry: HlsRegistry | None = None, recordings: Storage | None = None,
                 state_dir: Path | None = None, content: ContentCache | None = None) -> None:
        """`state_dir`: the host's data dir, where each session is recorded until it ends (see start()).
        `content`: where applications' archives are fetched to (a host on another machine than the control plane);
        without it, a LaunchSpec's source_dir is launched as is (the embedded host of `playcast up`)."""
        self.location = location
        self.recordings = recordings
        self.hls_registry = hls_registry if hls_registry is not None else HlsRegistry()
        self.host_id = host_id
        self.options = options
        self.slots = [Slot(f"slot-{i}") for i in range(slots)]
        self._handlers: list[SessionEventHandler] = []
        self._targets: dict[tuple[str, str], WarmTarget] = {}
        self._changed = asyncio.Condition()
        self._replenish_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[object]] = set()
        self._closed = False
        self.start_times = StartTimes()
        self.containment = HostContainment(state_dir)
        self._state_listeners: list[Callable[[], None]] = []
        self.content = content
        if content is not None:  # the cache never evicts a tree a slot runs from
            content.in_use = lambda: {Path(s.runtime.content_dir).name for s in self.slots if s.runtime is not None}

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Clean up after a dead host process on the same state dir (its processes, session dirs, X locks), probe
        for session cgroups, then keep warm capacity."""
        await asyncio.to_thread(self.containment.start)
        if self.content is not None:
            await asyncio.to_thread(self.content.clean)
        self._replenish_task = asyncio.ensure_future(self._replenish_loop())

    async def close(self) -> None:
        """Stop every runtime (sessions and warm slots)."""
        self._closed = True
        if self._replenish_task is not None:
            self._replenish_task.cancel()
        # Let launches in flight finish (they see _closed and stop themselves) rather than cancel them midway.
        if self._background:
            await asyncio.wait(list(self._background), timeout=30)
        runtimes = [s.runtime for s in self.slots if s.runtime is not None]
        await asyncio.gather(*(r.shutdown("terminated") for r in runtimes), return_exceptions=True)
        for slot in self.slots:
            slot.runtime = None
            slot.session_id = None

    # ------------------------------------------------------------------ the host operations
    def on_event(self, handler: SessionEventHandler) -> None:
        self._handlers.append(handler)

    def on_state_change(self, listener: Callable[[], None]) -> None:
        """`listener()` when what session_state() reports changed between requests (a stage's publisher connected,
        its sizes became known, a viewer left): the agent heartbeats soon after."""
        self._state_listeners.append(listener)

    def _state_changed(self) -> None:
        for listener in tuple(self._state_listeners):
            listener()

    def locations(self) -> list[str]:
        return [self.location]

    def capacity(self, location: str) -> LocationCapacity:
        if location != self.location:
            return LocationCapacity(location, 0, 0, 0)
        busy = sum(1 for s in self.slots if s.busy)
        idle = sum(1 for s in self.slots if s.idle_warm)
        return LocationCapacity(location, len(self.slots), busy + idle, idle)

    def video_stats(self) -> dict[str, VideoStats]:
        """Each running session's encode and fan-out figures, by session id (for metrics)."""
        out: dict[str, VideoStats] = {}
        for slot in self.slots:
            if slot.session_id is not None and slot.runtime is not None:
                stats = slot.runtime.video_stats()
                if stats is not None:
                    out[slot.session_id] = stats
        return out

    def running_sessions(self) -> set[str]:
        return {s.session_id for s in self.slots if s.session_id is not None}

    def hosts_online(self) -> set[str]:
        return {self.host_id}  # in this process: joined for as long as it exists

    def on_host_joined(self, handler: object) -> None:
        """Never called: this pool does not come and go (the Fleet calls its handlers for agents that join)."""

    def session_state(self, session_id: str) -> SessionState | None:
        """What the control plane reads of a running session without asking (viewers, recordings, egress, video);
        None when it does not run here."""
        slot = self._slot_of(session_id)
        if slot is None or slot.runtime is None:
            return None
        recordings = {b: r for b in slot.runtime.hls if (r := self.recording_status(session_id, b)) is not None}
        return SessionState(session_id, self.viewer_count(session_id), recordings,
                            tuple(self.egress_status(session_id)), slot.runtime.video_stats(),
                            tuple(_stage_state(b, st) for b, st in slot.runtime.stages.items()))

    def paused_warm(self) -> int:
        """Idle warm slots whose game is paused now (they cost almost nothing until claimed)."""
        return sum(1 for s in self.slots if s.idle_warm and s.runtime is not None and s.runtime.paused)

    def idle_warm_groups(self, location: str) -> list[str]:
        """The stream group of each idle warm slot in `location` (a group with two such slots is listed twice)."""
        if location != self.location:
            return []
        return sorted(s.warm_group for s in self.slots if s.idle_warm and s.warm_group is not None)

    def warm_launches(self) -> list[LaunchSpec]:
        """The launch of every idle warm slot (a placement with an equal launch takes one without a cold start)."""
        return [s.runtime.spec for s in self.slots if s.idle_warm and s.runtime is not None]

    async def set_warm_target(self, stream_group_id: str, location: str, launches: list[LaunchSpec],
                              count: int, pause_idle: bool = True) -> None:
        if location != self.location:
            return
        key = (stream_group_id, location)
        if count <= 0 or not launches:
            self._targets.pop(key, None)
        else:
            self._targets[key] = WarmTarget(list(launches), count, pause_idle)
            for slot in self.slots:  # the group's idle slots follow a changed pause setting at once
                if slot.idle_warm and slot.warm_group == stream_group_id and slot.runtime is not None:
                    slot.runtime.set_idle_pause(pause_idle)
        await self._kick()

    async def place(self, placement: Placement, timeout_s: float) -> PlacementResult:
        if placement.locations and self.location not in placement.locations:
            raise PlacementError("placementTimeout", f"no host in locations {list(placement.locations)}")
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        slot, warm = await self._claim(placement, deadline)
        try:
            if not warm:
                slot.runtime = await SessionRuntime.launch(placement.launch, self.options, self.containment,
                                                           content_dir=await self._content_dir(placement.launch))
            runtime = slot.runtime
            assert runtime is not None
            runtime.on_event = lambda kind, detail: self._runtime_event(slot, kind, detail)
            runtime.stages.on_change = self._state_changed
            if not runtime.app_running:
                raise PlacementError("applicationExit", "the application exited during launch")
            answer = None
            if placement.signal_request is not None:
                answer = await runtime.attach(placement.signal_request)
            runtime.whip_egress().start_from_env(dict(placement.launch.env))  # IVS_WHIP_ENDPOINT: the seed's sidecar
        except OfferError as exc:
            await self._release(slot)
            raise PlacementError("invalidSignalRequest", str(exc)) from None
        except LaunchError as exc:
            await self._release(slot)
            raise PlacementError("applicationExit", str(exc)) from None
        except PlacementError:
            await self._release(slot)
            raise
        except Exception as exc:
            log.exception("placement failed")
            await self._release(slot)
            raise PlacementError("internalError", f"launch failed: {exc}") from None
        except asyncio.CancelledError:  # the control plane gave up on it (shutdown, terminate, timeout)
            await self._release(slot)
            raise
        elapsed = time.monotonic() - t0
        (self.start_times.warm if warm else self.start_times.cold).append(elapsed)
        log.info("session placed", extra={"session": placement.session_id, "slot": slot.slot_id, "warm": warm,
                                          "seconds": round(elapsed, 3)})
        return PlacementResult(self.host_id, slot.slot_id, self.location, answer, warm)

    async def connect(self, session_id: str, signal_request: str) -> str:
        slot = self._slot_of(session_id)
        if slot is None or slot.runtime is None:
            raise SignalError(f"session {session_id} is not running on this host")
        try:
            return await slot.runtime.attach(signal_request)
        except OfferError as exc:
            raise SignalError(str(exc)) from None

    async def send_app_message(self, session_id: str, payload: bytes) -> bool:
        slot = self._slot_of(session_id)
        if slot is None or slot.runtime is None:
            return False
        try:
            return slot.runtime.send_platform_message(payload)
        except ValueError:  # over 65535 bytes
            return False

    async def add_viewer(self, session_id: str, offer_sdp: str) -> tuple[str, str]:
        slot = self._slot_of(session_id)
        if slot is None or slot.runtime is None:
            raise LookupError(f"session {session_id} is not running on this host")
        try:
            viewer_id, answer = await slot.runtime.add_viewer(json.dumps({"type": "offer", "sdp": offer_sdp}))
        except OfferError as exc:
            raise SignalError(str(exc)) from None
        return viewer_id, parse_json(answer)["sdp"]

    async def remove_viewer(self, session_id: str, viewer_id: str) -> bool:
        slot = self._slot_of(session_id)
        if slot is None or slot.runtime is None:
            return False
        return await slot.runtime.remove_viewer(viewer_id)

    def viewer_count(self, session_id: str) -> int:
        slot = self._slot_of(session_id)
        return len(slot.runtime.viewers) if slot is not None and slot.runtime is not None else 0

    async def start_hls(self, session_id: str, broadcast_id: str, record: bool = False) -> None:
        slot = self._slot_of(session_id)
        if slot is None or slot.runtime is None:
            raise LookupError(f"session {session_id} is not running on this host")
        await slot.runtime.start_hls(broadcast_id, self.hls_registry, self.recordings if record else None)

    def recording_status(self, session_id: str, broadcast_id: str) -> dict[str, object] | None:
        slot = self._slot_of(session_id)
        feed = slot.runtime.hls.get(broadcast_id) if slot is not None and slot.runtime is not None else None
        rec = feed.recorder if feed is not None else None
        if rec is None:
            return None
        return {"status": str(rec.status), "message": rec.status_message, "segments": rec.segments_written}

    async def stop_hls(self, session_id: str, broadcast_id: str) -> None:
        slot = self._slot_of(session_id)
        if slot is not None and slot.runtime is not None:
            await slot.runtime.stop_hls(broadcast_id)

    async def start_egress(self, session_id: str, url: str, token: str | None) -> str:
        slot = self._slot_of(session_id)
        if slot is None or slot.runtime is None:
            raise LookupError(f"session {session_id} is not running on this host")
        return slot.runtime.whip_egress().start(url, token)

    async def stop_egress(self, session_id: str, egress_id: str) -> bool:
        slot = self._slot_of(session_id)
        if slot is None or slot.runtime is None or slot.runtime.egress is None:
            return False
        return await slot.runtime.egress.stop(egress_id)

    async def collect_files(self, session_id: str, log_paths: list[str], export: bool) -> list[FileBundle]:
        """Zip the session's ApplicationLogPaths (and, for an export, the game's output); read it with read_file."""
        return [await self._runtime_of(session_id).collect_files(log_paths, export)]

    async def read_file(self, session_id: str, name: str, offset: int) -> bytes:
        return await self._runtime_of(session_id).read_file(name, offset)

    def _runtime_of(self, session_id: str) -> SessionRuntime:
        slot = self._slot_of(session_id)
        if slot is None or slot.runtime is None:
            raise LookupError(f"session {session_id} is not running on this host")
        return slot.runtime

    def egress_status(self, session_id: str) -> list[EgressStatus]:
        slot = self._slot_of(session_id)
        if slot is None or slot.runtime is None or slot.runtime.egress is None:
            return []
        return slot.runtime.egress.status()

    # ------------------------------------------------------------------ broadcast stages (WHIP ingest)
    def _runtime_of(self, session_id: str) -> SessionRuntime:
        slot = self._slot_of(session_id)
        if slot is None or slot.runtime is None:
            raise LookupError(f"session {session_id} is not running on this host")
        return slot.runtime

    def _stage(self, session_id: str, broadcast_id: str) -> Stage | None:
        slot = self._slot_of(session_id)
        return slot.runtime.stages.get(broadcast_id) if slot is not None and slot.runtime is not None else None

    async def stage_publish(self, session_id: str, broadcast_id: str, offer_sdp: str) -> tuple[str, str, str]:
        """A WHIP publisher onto the broadcast's stage (made on first use): (publisher id, ETag, answer SDP)."""
        stage = self._runtime_of(session_id).stages.get_or_create(broadcast_id)
        try:
            publisher, answer = await stage.publish(offer_sdp)
        except OfferRejected as exc:
            raise StageRefused(exc.status, exc.message) from None
        return publisher.publisher_id, publisher.etag, answer

    async def stage_unpublish(self, session_id: str, broadcast_id: str, publisher_id: str) -> bool:
        stage = self._stage(session_id, broadcast_id)
        return stage is not None and await stage.unpublish(publisher_id)

    async def stage_trickle(self, session_id: str, broadcast_id: str, publisher_id: str, fragment: str) -> int:
        stage = self._stage(session_id, broadcast_id)
        publisher = stage.get_publisher(publisher_id) if stage is not None else None
        if stage is None or publisher is None:
            raise LookupError("no such WHIP session (ended, or replaced by a newer publisher)")
        try:
            return await stage.trickle(publisher, fragment)
        except OfferRejected as exc:
            raise StageRefused(exc.status, exc.message) from None

    async def stage_add_viewer(self, session_id: str, broadcast_id: str, offer_sdp: str) -> tuple[str, str]:
        stage = self._stage(session_id, broadcast_id)
        if stage is None or not stage.live:
            raise StageRefused(409, "nothing is published on this stage yet")
        try:
            return await stage.add_viewer(offer_sdp)
        except NoPublisher as exc:
            raise StageRefused(409, str(exc)) from None
        except OfferError as exc:
            raise StageRefused(422, f"unusable offer: {exc}") from None

    async def stage_remove_viewer(self, session_id: str, broadcast_id: str, viewer_id: str) -> bool:
        stage = self._stage(session_id, broadcast_id)
        return stage is not None and await stage.remove_viewer(viewer_id)

    async def stage_end(self, session_id: str, broadcast_id: str) -> None:
        slot = self._slot_of(session_id)
        if slot is not None and slot.runtime is not None:
            await slot.runtime.stages.end(broadcast_id)

    async def terminate(self, session_id: str, reason: str = "terminated") -> None:
        slot = self._slot_of(session_id)
        if slot is None:
            await self._emit(SessionEvent(session_id, SessionEventKind.ENDED, time.time()))
            return
        await self._release(slot, reason)
        await self._emit(SessionEvent(session_id, SessionEventKind.ENDED, time.time()))

    async def terminate_on(self, host_id: str, session_id: str) -> None:
        """This pool is one host: stop the session here without reporting it ENDED."""
        slot = self._slot_of(session_id) if host_id == self.host_id else None
        if slot is not None:
            await self._release(slot, "terminated")

    # ------------------------------------------------------------------ internals
    async def _content_dir(self, spec: LaunchSpec) -> str:
        return str(await self.content.directory(spec)) if self.content is not None else spec.source_dir

    def _slot_of(self, session_id: str) -> Slot | None:
        return next((s for s in self.slots if s.session_id == session_id), None)

    async def _claim(self, placement: Placement, deadline: float) -> tuple[Slot, bool]:
        """Take a warm slot with the same LaunchSpec, else a free slot, else evict a warm one; wait if full."""
        async with self._changed:
            while True:
                for slot in self.slots:
                    if slot.idle_warm and slot.runtime is not None and slot.runtime.spec == placement.launch \
                            and slot.runtime.app_running:
                        slot.session_id = placement.session_id
                        slot.runtime.set_idle_pause(False)  # SIGCONT now: the game runs again before the offer
                        return slot, True
                for slot in self.slots:
                    if slot.free:
                        slot.session_id = placement.session_id
                        return slot, False
                victim = next((s for s in self.slots if s.idle_warm), None)
                if victim is not None:
                    runtime, victim.runtime = victim.runtime, None
                    victim.session_id = placement.session_id
                    victim.warm_group = None
                    assert runtime is not None
                    # shielded: a placement cancelled now must not leave the evicted app half stopped
                    await asyncio.shield(self._spawn(runtime.shutdown("terminated")))
                    return victim, False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PlacementError("placementTimeout", "no capacity became available in time")
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    raise PlacementError("placementTimeout", "no capacity became available in time") from None

    async def _release(self, slot: Slot, reason: str = "terminated") -> None:
        runtime, slot.runtime = slot.runtime, None
        slot.session_id = None
        slot.warm_group = None
        if runtime is not None:
            await runtime.shutdown(reason)
        await self._kick()

    def _runtime_event(self, slot: Slot, kind: str, detail: dict[str, object]) -> None:
        session_id = slot.session_id
        if session_id is None:
            if kind == "app_exited":  # a warm app died before use: drop it, the replenisher relaunches
                self._spawn(self._release(slot))
            return
        mapping = {
            "client_connected": SessionEventKind.CLIENT_CONNECTED,
            "client_disconnected": SessionEventKind.CLIENT_DISCONNECTED,
            "input": SessionEventKind.INPUT,
            "app_exited": SessionEventKind.APP_EXITED,
            "app_message": SessionEventKind.APP_MESSAGE,
        }
        event_kind = mapping.get(kind)
        if event_kind is not None:
            self._spawn(self._emit(SessionEvent(session_id, event_kind, time.time(), detail)))

    async def _emit(self, event: SessionEvent) -> None:
        for handler in list(self._handlers):
            try:
                await handler(event)
            except Exception:
                log.exception("session event handler failed", extra={"event": event.kind})

    def _spawn(self, coro: object) -> asyncio.Future[object]:
        """Run `coro` in the background; close() waits for it."""
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _kick(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _wanted(self) -> Counter[tuple[str, LaunchSpec]]:
        """Idle warm slots wanted, per (group, spec), spread round-robin over each group's launches."""
        wanted: Counter[tuple[str, LaunchSpec]] = Counter()
        for (group, _), target in self._targets.items():
            for i in range(target.count):
                wanted[(group, target.launches[i % len(target.launches)])] += 1
        return wanted

    async def _replenish_loop(self) -> None:
        while not self._closed:
            try:
                await self._replenish_once()
            except Exception:
                log.exception("warm capacity replenish failed")
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), 2.0)
                except TimeoutError:
                    pass

    async def _replenish_once(self) -> None:
        wanted = self._wanted()
        have: Counter[tuple[str, LaunchSpec]] = Counter()
        for slot in self.slots:
            if slot.session_id is None and slot.warm_group is not None:
                spec = slot.runtime.spec if slot.runtime is not None else slot.launching
                if spec is not None:
                    have[(slot.warm_group, spec)] += 1
        # Retire idle warm slots nobody wants any more.
        for slot in self.slots:
            if slot.idle_warm and slot.warm_group is not None and slot.runtime is not None:
                key = (slot.warm_group, slot.runtime.spec)
                if have[key] > wanted[key]:
                    have[key] -= 1
                    self._spawn(self._release(slot))
        for key, count in wanted.items():
            missing = count - have[key]
            for _ in range(missing):
                slot = next((s for s in self.slots if s.free), None)
                if slot is None:
                    return
                slot.launching = key[1]
                slot.warm_group = key[0]
                self._spawn(self._launch_warm(slot, key[1]))

    def _pause_idle(self, stream_group_id: str | None) -> bool:
        target = self._targets.get((stream_group_id, self.location)) if stream_group_id is not None else None
        return target.pause_idle if target is not None else True

    async def _launch_warm(self, slot: Slot, spec: LaunchSpec) -> None:
        try:
            runtime = await SessionRuntime.launch(spec, self.options, self.containment, watch_first_frame=True,
                                                  content_dir=await self._content_dir(spec))
        except Exception as exc:
            log.warning("warm launch failed: %s", exc, extra={"app": spec.application_id}, exc_info=True)
            slot.launching = None
            slot.warm_group = None
            await asyncio.sleep(5)  # do not spin on a broken app
            return
        if self._closed or slot.session_id is not None or slot.launching != spec:
            await runtime.shutdown()
            return
        slot.launching = None
        slot.runtime = runtime
        runtime.on_event = lambda kind, detail: self._runtime_event(slot, kind, detail)
        runtime.set_idle_pause(self._pause_idle(slot.warm_group))
        await self._kick()


def _stage_state(broadcast_id: str, stage: Stage) -> StageState:
    p = stage.publisher
    publisher = None if p is None else StagePublisher(p.publisher_id, p.etag, p.connected, p.created_at,
                                                      p.video_size)
    return StageState(broadcast_id, publisher, tuple(stage.viewers), stage.video.size)
