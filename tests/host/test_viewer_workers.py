"""WHEP viewers in viewer worker processes: real session runtime (Xvfb, capture worker), real worker processes,
real aiortc viewers that decode every frame; spreading, idle exit, a killed worker, bad offers, no leftovers.

Runs inside a private network namespace (see tests/conftest.py `netns` marker): ICE only sees loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from playcast.host.runtime import RuntimeOptions, SessionRuntime
from playcast.hostproto.types import LaunchSpec
from playcast.media.hls import HlsRegistry
from playcast.media.peer import OfferError
from tests.harness import await_until
from tests.leaks import ScopedTmp

pytestmark = pytest.mark.netns

TIMEOUT = 40.0  # generous: other helpers run Chromium on the same 2 cores


class Receiver:
    """A real WebRTC client (aiortc) that decodes what it receives; `player=True` also opens the data channels."""

    def __init__(self, player: bool = False) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        if player:
            self.pc.createDataChannel("input")
            self.pc.createDataChannel("messages")
        self.frames = 0
        self.audio_frames = 0
        self.size: tuple[int, int] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._track)

    def _track(self, track) -> None:  # type: ignore[no-untyped-def]
        async def read() -> None:
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                if track.kind == "video":
                    self.frames += 1
                    self.size = (frame.width, frame.height)
                else:
                    self.audio_frames += 1

        self._tasks.append(asyncio.ensure_future(read()))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return json.dumps({"type": "offer", "sdp": self.pc.localDescription.sdp})

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(**json.loads(answer)))

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()


async def until(cond, what: str, timeout: float = TIMEOUT) -> None:  # type: ignore[no-untyped-def]
    await await_until(cond, timeout, what, interval=0.05)


def _alive(pid: int) -> bool:
    try:
        return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


async def _launch(tmp_path: Path, scope: str, **limits: float) -> SessionRuntime:
    d = tmp_path / "app"
    d.mkdir()
    (d / "run").write_text("#!/bin/sh\nexec sleep 600\n")
    (d / "run").chmod(0o755)
    options = RuntimeOptions(width=320, height=240, fps=30, bitrate_kbps=600, temp_root=scope, app_message_port=None,
                             **limits)  # type: ignore[arg-type]
    return await SessionRuntime.launch(LaunchSpec.make("a-viewers", str(d), "run"), options)


async def _viewer(runtime: SessionRuntime) -> tuple[str, Receiver]:
    viewer = Receiver()
    viewer_id, answer = await runtime.add_viewer(await viewer.offer())
    await viewer.accept(answer)
    return viewer_id, viewer


async def test_viewers_spread_over_workers_survive_a_killed_worker_and_idle_workers_exit(tmp_path: Path) -> None:
    with ScopedTmp() as scope:  # on exit: no worker, capture worker, Xvfb or session dir left
        runtime = await _launch(tmp_path, scope, viewers_per_worker=2, max_viewer_workers=3,
                                viewer_worker_idle_s=1.0)
        viewers: dict[str, Receiver] = {}
        player = Receiver(player=True)
        try:
            await player.accept(await runtime.attach(await player.offer()))
            player_peer = runtime.peer
            await until(lambda: player.frames >= 5, "the player's first frames")

            # Five viewers joining at once, two per worker: three worker processes, and everyone decodes.
            viewers.update(await asyncio.gather(*(_viewer(runtime) for _ in range(5))))
            pids = runtime.viewers
            assert set(pids) == set(viewers)
            assert len(set(pids.values())) == 3
            assert sorted(list(pids.values()).count(p) for p in set(pids.values())) == [1, 2, 2]
            assert all(p != os.getpid() for p in pids.values())
            await until(lambda: all(v.frames >= 10 for v in viewers.values()), "every viewer decoding")
            assert all(v.size == (320, 240) for v in viewers.values())
            await until(lambda: all(v.audio_frames >= 10 for v in viewers.values()), "every viewer's audio")
            stats = runtime.video_stats()
            assert stats is not None and stats.sinks == 6  # the player + five viewers

            # SIGKILL a worker that serves two viewers: only those two go; the rest and the player keep going.
            victim = next(p for p in set(pids.values()) if list(pids.values()).count(p) == 2)
            lost = {v for v, p in pids.items() if p == victim}
            os.kill(victim, signal.SIGKILL)
            await until(lambda: not lost & set(runtime.viewers), "the killed worker's viewers removed")
            assert set(runtime.viewers) == set(viewers) - lost
            await until(lambda: len(runtime.viewer_workers.workers) == 2, "the dead worker forgotten")  # type: ignore[union-attr]
            kept = {v: viewers[v].frames for v in runtime.viewers}
            played = player.frames
            await until(lambda: all(viewers[v].frames >= n + 15 for v, n in kept.items()), "the others decoding on")
            await until(lambda: player.frames >= played + 15, "the player decoding on")
            assert runtime.peer is player_peer and player_peer.state == "connected"  # type: ignore[union-attr]
            assert not _alive(victim)

            # A later viewer still works.
            new_id, new_viewer = await _viewer(runtime)
            viewers[new_id] = new_viewer
            await until(lambda: new_viewer.frames >= 10, "the new viewer decoding")
            assert runtime.viewers[new_id] != victim

            # A viewer that hangs up without a DELETE: its worker reports the closed peer; the host forgets it.
            gone = next(v for v in runtime.viewers if v != new_id)
            await viewers[gone].close()
            await until(lambda: gone not in runtime.viewers, "the hung-up viewer forgotten")

            # Viewers leave: a worker left with none exits after its idle time; the one still serving stays.
            serving = runtime.viewers[new_id]
            for viewer_id in list(runtime.viewers):
                if viewer_id != new_id:
                    assert await runtime.remove_viewer(viewer_id)
                    await viewers.pop(viewer_id).close()
            assert not await runtime.remove_viewer("v999")
            idle = [w.pid for w in runtime.viewer_workers.workers if w.pid != serving]  # type: ignore[union-attr]
            assert idle
            await until(lambda: [w.pid for w in runtime.viewer_workers.workers] == [serving],  # type: ignore[union-attr]
                        "idle workers gone")
            await until(lambda: not any(_alive(p) for p in idle if p is not None), "idle worker processes exited")
            assert _alive(serving)
            stats = runtime.video_stats()
            assert stats is not None and stats.sinks == 2  # the player + the one viewer left
            frames = new_viewer.frames
            await until(lambda: new_viewer.frames >= frames + 10, "the remaining viewer decoding on")
        finally:
            for viewer in viewers.values():
                await viewer.close()
            await player.close()
            await runtime.shutdown()  # with a viewer still watching: its worker must go too
        assert not _alive(serving)


async def test_bad_offers_give_offer_error_and_leave_no_worker(tmp_path: Path) -> None:
    with ScopedTmp() as scope:
        runtime = await _launch(tmp_path, scope, viewers_per_worker=2, viewer_worker_idle_s=30.0)
        try:
            # Refused before any worker starts.
            for bad in ["not json", json.dumps({"type": "offer", "sdp": "garbage"}),
                        json.dumps({"type": "offer", "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"})]:
                with pytest.raises(OfferError):
                    await runtime.add_viewer(bad)
                assert runtime.viewer_workers.workers == []  # type: ignore[union-attr]

            # Refused by aiortc inside a worker (no ICE credentials): the same OfferError, and the worker started
            # for it is stopped at once (not after the 30 s idle time).
            probe = Receiver()
            offer = json.loads(await probe.offer())
            await probe.close()
            sdp = "".join(line + "\r\n" for line in offer["sdp"].splitlines() if not line.startswith("a=ice-"))
            with pytest.raises(OfferError):
                await runtime.add_viewer(json.dumps({"type": "offer", "sdp": sdp}))
            assert runtime.viewers == {}
            await until(lambda: runtime.viewer_workers.workers == [], "no worker left")  # type: ignore[union-attr]

            # A good viewer afterwards.
            viewer_id, viewer = await _viewer(runtime)
            try:
                await until(lambda: viewer.frames >= 10, "a good viewer decoding")
                # A bad offer on a worker that already serves a viewer leaves that viewer alone.
                with pytest.raises(OfferError):
                    await runtime.add_viewer(json.dumps({"type": "offer", "sdp": sdp}))
                assert list(runtime.viewers) == [viewer_id]
                frames = viewer.frames
                await until(lambda: viewer.frames >= frames + 10, "the good viewer decoding on")
            finally:
                await viewer.close()
        finally:
            await runtime.shutdown()


async def test_a_live_broadcast_keeps_one_worker_ready_for_the_first_viewer(tmp_path: Path) -> None:
    with ScopedTmp() as scope:
        runtime = await _launch(tmp_path, scope, viewer_worker_idle_s=0.5)
        workers = runtime.viewer_workers
        assert workers is not None
        registry = HlsRegistry()
        try:
            assert workers.workers == []
            await runtime.start_hls("b1", registry)  # the broadcast goes live
            await until(lambda: len(workers.workers) == 1 and workers.workers[0].ready, "a worker ready")
            ready = workers.workers[0].pid
            assert ready is not None and _alive(ready) and workers.sinks == 0  # waiting costs the encoder nothing

            viewer_id, viewer = await _viewer(runtime)  # lands on the ready worker: no process start
            try:
                assert runtime.viewers == {viewer_id: ready}
                await until(lambda: viewer.frames >= 10, "the viewer decoding")
                assert await runtime.remove_viewer(viewer_id)  # (before the client hangs up: then it is gone anyway)
            finally:
                await viewer.close()
            await asyncio.sleep(1.5)  # three idle times: still there while the broadcast is live
            assert [w.pid for w in workers.workers] == [ready] and _alive(ready)

            # the ready worker dies just as a viewer joins: the viewer is answered by another worker
            os.kill(ready, signal.SIGKILL)
            viewer_id, viewer = await _viewer(runtime)
            try:
                assert runtime.viewers[viewer_id] not in (ready, 0)
                await until(lambda: viewer.frames >= 10, "the viewer decoding from a new worker")
                assert await runtime.remove_viewer(viewer_id)
            finally:
                await viewer.close()
            other = workers.workers[0].pid

            await runtime.stop_hls("b1")  # the broadcast ends: the idle worker goes
            await until(lambda: workers.workers == [] and not _alive(other), "the ready worker gone")
        finally:
            await runtime.shutdown()


async def test_a_stuck_worker_never_blocks_the_server_and_is_killed(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from playcast.host import viewer_workers

    monkeypatch.setattr(viewer_workers, "STUCK_S", 6.0)  # workers report every 2 s
    with ScopedTmp() as scope:
        runtime = await _launch(tmp_path, scope, viewers_per_worker=1, max_viewer_workers=2)
        player = Receiver(player=True)
        viewers: list[Receiver] = []
        try:
            await player.accept(await runtime.attach(await player.offer()))
            stuck_id, stuck = await _viewer(runtime)
            other_id, other = await _viewer(runtime)
            viewers += [stuck, other]
            await until(lambda: stuck.frames >= 10 and other.frames >= 10, "both viewers decoding")
            pid = runtime.viewers[stuck_id]
            assert pid != runtime.viewers[other_id]

            # Freeze one worker: it goes silent (and its pipe fills); the server loop and everyone else go on, and
            # after STUCK_S the host kills it and drops its viewer.
            os.kill(pid, signal.SIGSTOP)
            played, seen = player.frames, other.frames
            await until(lambda: player.frames >= played + 30 and other.frames >= seen + 30, "player and other viewer")
            await until(lambda: stuck_id not in runtime.viewers, "the stuck worker's viewer dropped")
            await until(lambda: not _alive(pid), "the stuck worker killed")
            assert list(runtime.viewers) == [other_id]
            seen = other.frames
            await until(lambda: other.frames >= seen + 15, "the other viewer decoding on")
        finally:
            for viewer in viewers:
                await viewer.close()
            await player.close()
            await runtime.shutdown()


async def test_a_full_pipe_drops_that_workers_sink_to_a_keyframe_and_never_blocks_the_loop(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from playcast.host import viewer_workers
    from playcast.host.viewer_workers import ViewerWorkers, WorkerLimits
    from playcast.media.encoder import EncodedPacket
    from playcast.media.fanout import PacketFanout

    monkeypatch.setattr(viewer_workers, "STUCK_S", 8.0)
    with ScopedTmp():
        source: asyncio.Queue[EncodedPacket | None] = asyncio.Queue(4)
        fanout = PacketFanout(source.get, lambda: None)
        fanout.start()
        player = fanout.add_sink("player", max_packets=1000, first=True)
        workers = ViewerWorkers(fanout, None, WorkerLimits(per_worker=1, max_workers=1, idle_s=30))
        probe = Receiver()
        stop = asyncio.Event()

        async def produce() -> None:  # 100 frames/s of 40 kB (32 Mbit/s), a keyframe every 10
            i = 0
            while not stop.is_set():
                await source.put(EncodedPacket(os.urandom(40_000), i % 10 == 0, i, time.time()))
                i += 1
                await asyncio.sleep(0.01)

        async def play() -> None:  # the player reads everything at once
            while await player.get() is not None:
                pass

        producer, reader = asyncio.ensure_future(produce()), asyncio.ensure_future(play())
        try:
            await workers.add("v1", await probe.offer())  # answered; the viewer never connects, the feed runs
            worker = workers.workers[0]
            await until(lambda: worker.sink is not None and worker.sink.delivered > 20, "the worker fed")
            assert worker.pid is not None
            os.kill(worker.pid, signal.SIGSTOP)
            # The pipe fills: that sink drops to keyframes; the loop and the player's sink go on without a drop.
            await until(lambda: worker.sink is not None and worker.sink.dropped > 0, "the stuck worker's sink dropping")
            got = player.delivered
            await until(lambda: player.delivered >= got + 50, "the player's sink fed on")
            assert player.dropped == 0
            # The pipe never moves again: the worker is killed and its viewer dropped.
            await until(lambda: workers.workers == [] and workers.viewers == {}, "the stuck worker gone")
            assert player.dropped == 0
        finally:
            stop.set()
            await producer
            await probe.close()
            await workers.close()
            await fanout.stop()
            await reader
