"""A session's WHEP viewers, spread over viewer worker processes (media/viewer_proc.py), so that the audience never
takes the server's event loop or one core from the player.

Per worker: one bounded sink on the session's fan-out and one Opus subscription, written to its pipe (a full pipe
makes that sink drop to the next keyframe, never blocks the loop). Knows nothing of HTTP or the control plane."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from aiortc.mediastreams import MediaStreamError

from playcast.json_input import parse_json
from playcast.media.fanout import PacketFanout, PacketSink
from playcast.media.ice import ICE_ENV, IceSettings
from playcast.media.opus_fanout import EncodedAudioTrack, OpusFanout
from playcast.media.peer import OfferError, parse_offer
from playcast.media.viewer_proc import (
    ADD,
    ANSWER,
    AUDIO,
    AUDIO_HEADER,
    ERROR,
    FLAG_KEY,
    HEADER,
    HELLO,
    KEYFRAME,
    REMOVE,
    STATE,
    STATS,
    STOP,
    VIDEO,
    VIDEO_HEADER,
    record,
    split,
)
from playcast.procgroup import ChildSetup, child_setup, signal_group, stop_group

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 30.0  # a worker that has not answered an offer by then is treated as broken for that viewer
SINK_PACKETS = 60  # the host-side sink of one worker (its viewers have their own, in the worker)
PIPE_HIGH_WATER = 1024 * 1024  # bytes buffered towards one worker before its video waits (and its sink drops)
STOP_GRACE_S = 3.0
START_TIMEOUT_S = 30.0  # from spawn to its hello (imports aiortc and PyAV)
STUCK_S = 15.0  # a worker silent this long (it reports every 2 s), or whose full pipe has not moved, is killed


class WorkerExited(RuntimeError):
    """The worker process ended while a viewer was being added."""


@dataclass(frozen=True)
class WorkerLimits:
    per_worker: int = 40  # viewers per worker before another is started
    max_workers: int = 2  # workers per session; beyond, viewers go to the least-loaded one
    idle_s: float = 10.0  # a worker without viewers exits after this long


class ViewerWorker:
    """The host's handle of one viewer worker process."""

    def __init__(self, owner: ViewerWorkers, number: int) -> None:
        self._owner = owner
        self.number = number
        self.process: asyncio.subprocess.Process | None = None
        self.viewers: set[str] = set()  # answered and pending
        self._pending: dict[str, asyncio.Future[str]] = {}
        self.ready = False
        self.exiting = False
        self.dropped = 0  # video packets dropped inside the worker (its viewers fell behind), last reported
        self.sink: PacketSink | None = None
        self._audio: EncodedAudioTrack | None = None
        self._feeds: list[asyncio.Task[None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._idle: asyncio.TimerHandle | None = None
        self._spawned: asyncio.Future[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def launch(self) -> None:
        """Start the process (in the background: viewers placed meanwhile wait for it in `add`)."""
        self._spawned = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        try:
            await self._spawn()
        except BaseException:
            log.exception("viewer worker %d could not start", self.number)
            self.exiting = True
            self.viewers.clear()
            self._owner._exited(self)
            raise

    async def _spawn(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "playcast.media.viewer_proc",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, limit=1024 * 1024, preexec_fn=self._owner.setup,
            env={**os.environ, ICE_ENV: self._owner.ice.to_json()})
        assert self.process.stdin is not None
        self.process.stdin.transport.set_write_buffer_limits(high=PIPE_HIGH_WATER)  # type: ignore[attr-defined]
        self._tasks = [asyncio.ensure_future(self._read()), asyncio.ensure_future(self._log_stderr())]
        log.info("viewer worker started", extra={"worker": self.number, "pid": self.process.pid})
        self._owner.on_started(self.process.pid)

    # ------------------------------------------------------------------ viewers
    async def add(self, viewer_id: str, offer_json: str) -> str:
        """Hand the offer to the worker and wait for its answer. Raises OfferError (the offer), RuntimeError."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending[viewer_id] = future  # placed at once (no await before): concurrent joins see it
        self.viewers.add(viewer_id)
        self._cancel_idle()
        try:
            assert self._spawned is not None
            await asyncio.shield(self._spawned)
            self._update_feed()
            if not self._write(record(ADD, f"{viewer_id}\0{offer_json}".encode())):
                raise WorkerExited("the viewer worker exited")
            return await asyncio.wait_for(asyncio.shield(future), ANSWER_TIMEOUT_S)
        except BaseException:
            if viewer_id in self.viewers:
                self.viewers.discard(viewer_id)
                self._write(record(REMOVE, viewer_id.encode()))  # in case it answers after all
            self._update_feed()
            raise
        finally:
            self._pending.pop(viewer_id, None)

    def remove(self, viewer_id: str) -> bool:
        if viewer_id not in self.viewers or viewer_id in self._pending:
            return False
        self.viewers.discard(viewer_id)
        self._write(record(REMOVE, viewer_id.encode()))
        self._update_feed()
        return True

    def _update_feed(self) -> None:
        """The host sink and Opus subscription exist while the worker is ready and has viewers: an idle worker
        costs the encode nothing (and lets capture pause)."""
        want = self.ready and not self.exiting and bool(self.viewers)
        if want and self.sink is None:
            fanout, opus = self._owner.fanout, self._owner.opus
            self.sink = fanout.add_sink(f"viewer-worker-{self.number}", max_packets=SINK_PACKETS)
            self._feeds = [asyncio.ensure_future(self._feed_video(self.sink))]
            if opus is not None:
                self._audio = opus.subscribe()
                self._feeds.append(asyncio.ensure_future(self._feed_audio(self._audio)))
        elif not want and self.sink is not None:
            self.sink.close()
            self.sink = None
            if self._audio is not None:
                self._audio.stop()
                self._audio = None
            for task in self._feeds:
                task.cancel()
            self._feeds = []
        if not self.viewers and not self.exiting:
            self._owner._schedule_idle(self)

    def _cancel_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    # ------------------------------------------------------------------ pipe
    def _write(self, data: bytes) -> bool:
        proc = self.process
        if proc is None or proc.stdin is None or proc.stdin.is_closing() or proc.returncode is not None:
            return False
        proc.stdin.write(data)
        return True

    async def _feed_video(self, sink: PacketSink) -> None:
        proc = self.process
        assert proc is not None and proc.stdin is not None
        stdin = proc.stdin
        try:
            while (packet := await sink.get()) is not None:
                head = VIDEO_HEADER.pack(FLAG_KEY if packet.keyframe else 0, packet.index, packet.captured_at)
                if not self._write(record(VIDEO, head + packet.data)):
                    return
                # A full pipe waits here; meanwhile the sink fills and drops to the next keyframe like a slow viewer.
                await asyncio.wait_for(stdin.drain(), STUCK_S)
        except (ConnectionError, BrokenPipeError):
            pass
        except TimeoutError:
            self._kill_stuck("its pipe is full")

    def _kill_stuck(self, why: str) -> None:
        proc = self.process
        assert proc is not None
        log.warning("viewer worker stuck (%s): killing it", why, extra={
            "worker": self.number, "pid": proc.pid, "seconds": STUCK_S, "viewers": len(self.viewers)})
        signal_group(proc.pid, signal.SIGKILL)  # its stdout ends: _exited() drops its viewers

    async def _feed_audio(self, track: EncodedAudioTrack) -> None:
        proc = self.process
        assert proc is not None and proc.stdin is not None
        transport = proc.stdin.transport
        while True:
            try:
                packet = await track.recv()
            except MediaStreamError:
                return
            if transport.get_write_buffer_size() > PIPE_HIGH_WATER:  # type: ignore[attr-defined]
                continue  # a stuck worker loses audio, the server never buffers for it
            if not self._write(record(AUDIO, AUDIO_HEADER.pack(packet.pts or 0) + bytes(packet))):
                return

    async def _read(self) -> None:
        proc = self.process
        assert proc is not None and proc.stdout is not None
        stdout = proc.stdout
        try:
            while True:
                silence = STUCK_S if self.ready else START_TIMEOUT_S
                kind, size = HEADER.unpack(await asyncio.wait_for(stdout.readexactly(HEADER.size), silence))
                self._handle(kind, await stdout.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except TimeoutError:
            self._kill_stuck("silent")
        except Exception:
            log.exception("viewer worker %d: bad record", self.number)
        await self._exited()

    def _handle(self, kind: int, body: bytes) -> None:
        if kind == HELLO:
            self.ready = True
            self._update_feed()
        elif kind == ANSWER:
            viewer_id, answer = split(body, 2)
            future = self._pending.get(viewer_id)
            if future is not None and not future.done():
                future.set_result(answer)
        elif kind == ERROR:
            viewer_id, what, message = split(body, 3)
            future = self._pending.get(viewer_id)
            if future is not None and not future.done():
                future.set_exception(OfferError(message) if what == "offer" else RuntimeError(message))
        elif kind == STATE:
            viewer_id, state = split(body, 2)
            if viewer_id in self.viewers and viewer_id not in self._pending:
                self.viewers.discard(viewer_id)
                self._owner._gone(self, viewer_id, f"peer {state}")
                self._update_feed()
        elif kind == KEYFRAME:
            if self.sink is not None:
                self.sink.request_keyframe(f"viewer worker {self.number}: {body.decode(errors='replace')}")
        elif kind == STATS:
            self.dropped = int(parse_json(body).get("dropped", 0))
        else:
            log.warning("viewer worker %d: unknown record kind %r", self.number, kind)

    async def _log_stderr(self) -> None:
        proc = self.process
        assert proc is not None and proc.stderr is not None
        while line := await proc.stderr.readline():
            log.info("viewer worker %d: %s", self.number, line.decode(errors="replace").rstrip())

    async def _exited(self) -> None:
        """The worker's stdout ended: it stopped or died. Its viewers are gone; nothing else is touched."""
        proc = self.process
        assert proc is not None
        crashed = not self.exiting
        self.exiting = True
        self._cancel_idle()
        self._update_feed()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(WorkerExited("the viewer worker exited"))
        lost = [v for v in self.viewers if v not in self._pending]
        self.viewers.clear()
        code = await stop_group(proc, STOP_GRACE_S if not crashed else 0.5)
        if crashed:
            log.warning("viewer worker exited", extra={"worker": self.number, "pid": proc.pid, "code": code,
                                                       "viewers": len(lost)})
        for viewer_id in lost:
            self._owner._gone(self, viewer_id, "worker exited")
        self._owner._exited(self)

    async def stop(self) -> None:
        """Close its viewers and end the process (SIGTERM, then SIGKILL, of its process group)."""
        self.exiting = True
        self._cancel_idle()
        if self._spawned is not None:
            await asyncio.gather(self._spawned, return_exceptions=True)  # never leave a process starting behind
        self._update_feed()
        self._write(record(STOP))
        proc = self.process
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S + 2)  # it closes its peers first (bounded, 5 s each)
        except TimeoutError:
            pass
        await stop_group(proc, STOP_GRACE_S)
        await asyncio.gather(*self._tasks, return_exceptions=True)


class ViewerWorkers:
    """Every viewer worker of one session. `add`/`remove` viewers; `close()` at session end. `setup`: each worker's
    preexec_fn (default: child_setup()); `on_started(pid)` hears of each worker process."""

    def __init__(self, fanout: PacketFanout, opus: OpusFanout | None, limits: WorkerLimits,
                 on_gone: Callable[[str, str], None] | None = None, setup: ChildSetup | None = None,
                 on_started: Callable[[int], None] | None = None, ice: IceSettings | None = None) -> None:
        self.fanout = fanout
        self.opus = opus
        self.limits = limits
        self.workers: list[ViewerWorker] = []  # those that take new viewers (not stopping)
        self._running: set[ViewerWorker] = set()  # every worker whose process has not ended yet
        self._dropped_by_ended = 0  # so the drop count (a Prometheus counter) never goes down
        self._where: dict[str, ViewerWorker] = {}  # answered viewers
        self._number = 0
        self._stopping: set[asyncio.Task[None]] = set()
        self._closed = False
        self._keep_ready = False
        self.on_gone = on_gone or (lambda viewer_id, why: None)
        self.setup = setup or child_setup()
        self.on_started = on_started or (lambda pid: None)
        self.ice = ice or IceSettings()  # handed to each worker in its environment (TURN credentials: never argv)

    @property
    def viewers(self) -> dict[str, int]:
        """Viewer id -> pid of the worker that serves it (answered viewers only)."""
        return {v: w.pid or 0 for v, w in self._where.items()}

    @property
    def dropped(self) -> int:
        """Video packets dropped inside the workers (their viewers fell behind), ended workers included."""
        return self._dropped_by_ended + sum(w.dropped for w in self._running)

    @property
    def sinks(self) -> int:
        """Fan-out sinks the workers hold now."""
        return sum(1 for w in self._running if w.sink is not None)

    async def add(self, viewer_id: str, offer_json: str) -> str:
        """Place a viewer on a worker and return its answer JSON. Raises OfferError for an unusable offer."""
        if self._closed:
            raise RuntimeError("the session is ending")
        parse_offer(offer_json)  # the cheap checks here: garbage never starts a worker
        for attempt in range(2):  # a worker that dies while answering: once more, on another worker
            worker, new = self._pick()
            if new:
                worker.launch()
            try:
                answer = await worker.add(viewer_id, offer_json)  # places the viewer before its first await
            except WorkerExited:
                self._abandon(worker)
                if attempt or self._closed:
                    raise
                log.warning("viewer worker exited during an offer: trying another", extra={"viewer": viewer_id})
                continue
            except BaseException:
                if new and not worker.viewers and worker in self.workers:
                    self._stop(worker)  # started for this viewer alone: leave no worker behind
                raise
            if worker.exiting:  # answered, then died: that peer is gone with it
                worker.viewers.discard(viewer_id)
                self._abandon(worker)
                if attempt or self._closed:
                    raise WorkerExited("the viewer worker exited")
                continue
            self._where[viewer_id] = worker
            return answer
        raise AssertionError("unreachable")

    def _abandon(self, worker: ViewerWorker) -> None:
        """A worker seen dead before its exit is noticed: no new viewer goes there (its cleanup still runs)."""
        if worker in self.workers:
            self.workers.remove(worker)

    def keep_ready(self, on: bool) -> None:
        """While on (the session is broadcasting), one started worker waits for the next viewer, so joining never
        waits for a process to start (Python + aiortc: about half a second). An idle worker holds no fan-out sink."""
        self._keep_ready = on
        if self._closed:
            return
        if on:
            if not any(not w.exiting for w in self.workers):
                self._new_worker().launch()
        else:
            for worker in self.workers:
                if not worker.viewers:
                    self._schedule_idle(worker)

    def _new_worker(self) -> ViewerWorker:
        self._number += 1
        worker = ViewerWorker(self, self._number)
        self.workers.append(worker)
        self._running.add(worker)
        return worker

    def _pick(self) -> tuple[ViewerWorker, bool]:
        live = [w for w in self.workers if not w.exiting]
        for worker in live:
            if len(worker.viewers) < max(1, self.limits.per_worker):
                return worker, False
        if len(live) < max(1, self.limits.max_workers):
            return self._new_worker(), True
        return min(live, key=lambda w: len(w.viewers)), False

    async def remove(self, viewer_id: str) -> bool:
        worker = self._where.pop(viewer_id, None)
        return worker is not None and worker.remove(viewer_id)

    def _gone(self, worker: ViewerWorker, viewer_id: str, why: str) -> None:
        if self._where.get(viewer_id) is worker:
            del self._where[viewer_id]
            log.info("viewer gone", extra={"viewer": viewer_id, "worker": worker.number, "why": why})
            self.on_gone(viewer_id, why)

    def _exited(self, worker: ViewerWorker) -> None:
        if worker in self.workers:
            self.workers.remove(worker)
        if worker in self._running:
            self._running.discard(worker)
            self._dropped_by_ended += worker.dropped

    def _schedule_idle(self, worker: ViewerWorker) -> None:
        if worker._idle is None and not self._closed:
            worker._idle = asyncio.get_running_loop().call_later(self.limits.idle_s, self._idle_check, worker)

    def _idle_check(self, worker: ViewerWorker) -> None:
        worker._idle = None
        live = [w for w in self.workers if not w.exiting]
        if self._keep_ready and live == [worker]:
            return  # the ready one stays while broadcasting
        if not worker.viewers and not worker.exiting and worker in self.workers:
            log.info("viewer worker idle: stopping", extra={"worker": worker.number, "pid": worker.pid})
            self._stop(worker)

    def _stop(self, worker: ViewerWorker) -> None:
        worker.exiting = True  # no new viewer goes there from now on
        self.workers.remove(worker)
        task = asyncio.ensure_future(worker.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        """Session end: every worker stops (its viewers with it)."""
        self._closed = True
        workers = list({*self.workers, *self._running})  # abandoned ones too
        self.workers = []
        self._where.clear()
        await asyncio.gather(*(w.stop() for w in workers), *self._stopping, return_exceptions=True)
