"""One launched application and everything around it: temp dir, Xvfb, audio sink, message bridge, game,
capture+encode worker, packet fan-out, at most one client peer at a time, and its broadcasts' media (WHEP viewer
workers, LL-HLS packagers, WHIP egress, the stages viewers' webcams publish to).

Used warm (launched before any session; paused once its game has drawn, see set_idle_pause) or cold. Reports
what happens through a callback; knows nothing of the control plane's statuses or of HTTP."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from playcast.host.app import AppProcess
from playcast.host.appmessages import AppMessageBridge
from playcast.host.audio import AudioSink
from playcast.host.containment import HostContainment, SessionContainment
from playcast.host.display import VirtualDisplay
from playcast.host.egress import WhipEgresses
from playcast.host.first_frame import FirstFrameWatch
from playcast.host.input import protocol as input_protocol
from playcast.host.input.injector import InputInjector
from playcast.host.session_files import SessionPlaces, make_bundle, read_chunk
from playcast.host.viewer_workers import ViewerWorkers, WorkerLimits
from playcast.hostproto.types import FILE_CHUNK_BYTES, PLATFORM_CLIENT_ID, FileBundle, LaunchSpec, VideoStats
from playcast.media.encoder import EncoderProcess
from playcast.media.fanout import PacketFanout, PacketSink
from playcast.media.hls.packager import HlsPackager
from playcast.media.hls.registry import HlsRegistry
from playcast.media.ice import IceSettings
from playcast.media.opus_fanout import OpusFanout
from playcast.media.peer import ClientPeer
from playcast.media.recorder import Recorder
from playcast.media.stage import Stages
from playcast.storage import Storage, StorageError

log = logging.getLogger(__name__)

INPUT_EVENT_INTERVAL_S = 1.0  # report input activity to the control plane at most this often
PAUSE_SETTLE_S = 0.5  # an idle warm game runs this long after its first frame before it is paused


@dataclass(frozen=True)
class RuntimeOptions:
    width: int = 1280
    height: int = 720
    fps: int = 60
    bitrate_kbps: int = 6000
    encoder: str = "auto"
    app_message_port: int | None = 40712  # tried first when free, as GameLift Streams games expect
    temp_root: str | None = None  # where session dirs go (default: the system temp dir)
    # WHEP viewers run in worker processes (host/viewer_workers.py): this many per worker, at most this many workers
    viewers_per_worker: int = field(default_factory=lambda: _env_int("PLAYCAST_VIEWERS_PER_WORKER", 40))
    max_viewer_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    viewer_worker_idle_s: float = 10.0  # a worker without viewers exits after this long
    ice: IceSettings = field(default_factory=IceSettings)  # STUN/TURN and the public address of every peer


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


RuntimeEventHandler = Callable[[str, dict[str, object]], None]
"""(kind, detail): kinds are 'client_connected', 'client_disconnected', 'input', 'app_exited', 'app_message'."""


class SessionRuntime:
    """Owns every process and file of one slot's launch. Build with `await SessionRuntime.launch(...)`."""

    def __init__(self, spec: LaunchSpec, options: RuntimeOptions, workdir: Path,
                 containment: SessionContainment, content_dir: str | None = None) -> None:
        self.spec = spec
        self.content_dir = content_dir or spec.source_dir  # the application's tree on this host
        self.options = options
        self.workdir = workdir
        self.containment = containment
        self.display: VirtualDisplay | None = None
        self.audio: AudioSink | None = None
        self.bridge: AppMessageBridge | None = None
        self.app: AppProcess | None = None
        self.encoder: EncoderProcess | None = None
        self.fanout: PacketFanout | None = None
        self.injector: InputInjector | None = None
        self.peer: ClientPeer | None = None
        self.opus: OpusFanout | None = None
        self.viewer_workers: ViewerWorkers | None = None  # broadcast viewers (WHEP), in worker processes
        self.egress: WhipEgresses | None = None  # WHIP pushes to external endpoints (see whip_egress())
        self.hls: dict[str, _HlsFeed] = {}  # broadcast id -> LL-HLS packager fed from the shared encode
        self.stages = Stages(ice=options.ice)  # the stages (WHIP ingest of viewers' webcams) of this session's broadcasts
        self._viewer_seq = 0
        self.client_id = 0
        self.launched_at = 0.0
        self.on_event: RuntimeEventHandler = lambda kind, detail: None
        self._last_input_report = 0.0
        self._exit_watch: asyncio.Task[None] | None = None
        self.first_frame: FirstFrameWatch | None = None  # warm launches: tells when the game has drawn
        self._paused = False  # the game's process group is SIGSTOPped (idle warm slot)
        self._pauser: asyncio.Task[None] | None = None
        self._audio_suspended = False
        self._audio_task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = asyncio.Event()

    # ------------------------------------------------------------------ launch / shutdown
    @classmethod
    async def launch(cls, spec: LaunchSpec, options: RuntimeOptions, containment: HostContainment | None = None, *,
                     watch_first_frame: bool = False, content_dir: str | None = None) -> SessionRuntime:
        """Start display, audio, bridge, app and an idle encoder. Cleans up everything if any step fails.

        `containment`: the host process's (records, cgroups; see host/containment.py). Without one, its processes
        still die with this process (PDEATHSIG, the game's keeper) but nothing is recorded. With `watch_first_frame`
        (warm launches), `first_frame` tells when the game has drawn its first frame. `content_dir`: where the
        application's tree is on this host (default: the spec's source_dir)."""
        workdir = Path(tempfile.mkdtemp(prefix="playcast-session-", dir=options.temp_root))
        try:
            share = (containment or HostContainment()).session(workdir)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        self = cls(spec, options, workdir, share, content_dir)
        t0 = time.monotonic()
        try:
            await self._start_all(watch_first_frame)
        except BaseException:
            await self.shutdown()
            raise
        self.launched_at = time.time()
        log.info("runtime launched", extra={"app": spec.application_id, "display": self.display and self.display.name,
                                            "seconds": round(time.monotonic() - t0, 3)})
        return self

    async def _start_all(self, watch_first_frame: bool) -> None:
        o = self.options
        c = self.containment
        self.display = await VirtualDisplay.start(o.width, o.height, setup=c.setup)
        c.track("xvfb", self.display.process.pid)
        c.track_display(self.display.number)
        if watch_first_frame:  # before the game starts, so its first map and drawing are seen
            try:
                self.first_frame = await FirstFrameWatch.open(self.display.name)
            except Exception as exc:  # noqa: BLE001 - the slot then stays unpaused, nothing worse
                log.warning("cannot watch for the first frame; this warm slot will not be paused: %s", exc)
        self.audio = AudioSink(self.workdir, setup=c.setup)
        await self.audio.start()
        for role, pid in zip(("pulseaudio", "parec"), self.audio.pids(), strict=False):
            c.track(role, pid)
        if self.audio.socket_dir is not None:
            c.track_path(self.audio.socket_dir)
        self.bridge = AppMessageBridge(self._from_app)
        port = await self.bridge.start(o.app_message_port)
        self.bridge.client_connected(PLATFORM_CLIENT_ID)  # playcast itself: chat, reactions, game -> channel
        env = {
            "DISPLAY": self.display.name,
            "PLAYCAST_APP_MESSAGE_PORT": str(port),
            "PLAYCAST_PYTHON": sys.executable,
            "PLAYCAST_WIDTH": str(o.width),
            "PLAYCAST_HEIGHT": str(o.height),
            "SDL_VIDEO_X11_NET_WM_BYPASS_COMPOSITOR": "0",
        }
        pythonpath = os.environ.get("PYTHONPATH")
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        if self.audio.available:
            env.update(self.audio.env())
        env.update(dict(self.spec.env))
        # Start the encoder worker while the game boots: both take a few hundred ms.
        encoder_task = asyncio.ensure_future(EncoderProcess.start(
            self.display.name, o.width, o.height, o.fps, o.bitrate_kbps, o.encoder, setup=c.setup))
        try:
            self.app = await AppProcess.start(self.content_dir, self.spec.executable, self.spec.args, env,
                                              home=self.workdir / "home", setup=c.keeper_setup,
                                              remove_on_host_loss=self.workdir, x_display=self.display.number)
            c.track("keeper", self.app.keeper_pid)
            c.track("game", self.app.pid)
        except BaseException:
            encoder = await _settle(encoder_task)
            if encoder is not None:
                await encoder.stop()
            raise
        self.encoder = await encoder_task
        c.track("capture", self.encoder.process.pid)
        self.fanout = PacketFanout(self.encoder.read, self.encoder.request_keyframe)
        self.fanout.on_first_sink = self.encoder.start_capture
        self.fanout.on_no_sinks = self.encoder.pause_capture
        self.fanout.start()
        self.opus = OpusFanout(self.audio if self.audio.available else None)
        self.viewer_workers = ViewerWorkers(self.fanout, self.opus, WorkerLimits(
            o.viewers_per_worker, o.max_viewer_workers, o.viewer_worker_idle_s), setup=c.setup, ice=o.ice,
            on_started=lambda pid: c.track("viewer worker", pid))
        self.injector = InputInjector(self.display.name, o.width, o.height, send_control=self._send_control)
        self._exit_watch = asyncio.ensure_future(self._watch_app())

    async def _watch_app(self) -> None:
        assert self.app is not None
        code = await self.app.wait()
        if not self._closing:
            log.warning("app exited", extra={"code": code, "log_tail": self.app.tail_log(500)})
            self.on_event("app_exited", {"exitCode": code})

    @property
    def app_running(self) -> bool:
        return self.app is not None and self.app.running

    async def shutdown(self, reason: str = "terminated") -> None:
        """Tell the client why, then stop peer, encoder, app, audio, bridge, display; remove the temp dir."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            self._stop_idle_pause()  # a stopped game would hold its SIGTERM until continued
            if self.first_frame is not None:
                self.first_frame.close()
            if self._audio_task is not None:  # its sink running again first: a game quitting may drain audio
                await asyncio.wait([self._audio_task], timeout=5)
            peer, self.peer = self.peer, None
            if peer is not None:
                peer.send_control(input_protocol.encode_server_disconnect(reason))
                await asyncio.sleep(0.05)  # let the control message leave before DTLS goes down
                await peer.close()
            for broadcast_id in list(self.hls):
                await self.stop_hls(broadcast_id)
            await self.stages.close()
            if self.egress is not None:
                await self.egress.close()
            if self.viewer_workers is not None:
                await self.viewer_workers.close()
            if self.opus is not None:
                await self.opus.stop()
            if self.injector is not None:
                self.injector.release_all()
                self.injector.close()
            if self.fanout is not None:
                await self.fanout.stop()
            if self.encoder is not None:
                await self.encoder.stop()
            if self.app is not None:
                await self.app.stop()
            if self._exit_watch is not None:
                self._exit_watch.cancel()
            if self.bridge is not None:
                await self.bridge.close()
            if self.audio is not None:
                await self.audio.stop()
            if self.display is not None:
                await self.display.stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            try:
                await asyncio.to_thread(self.containment.close)
            finally:
                self._closed.set()

    # ------------------------------------------------------------------ idle pause (warm slots)
    @property
    def paused(self) -> bool:
        """The game's process group is stopped and the audio sink suspended (an idle warm slot)."""
        return self._paused

    def set_idle_pause(self, enabled: bool, settle_s: float = PAUSE_SETTLE_S) -> None:
        """Enabled: once the game has drawn its first frame and run `settle_s` more, SIGSTOP its process group and
        suspend the audio sink, so the slot's processes burn no CPU (Xvfb keeps the last picture; the idle capture
        worker is already asleep). Disabled: SIGCONT and resume the sink at once, so a claimed slot's first
        captured frame is its picture. A launch without a first-frame watch is never paused."""
        if not enabled:
            self._stop_idle_pause()
        elif self._pauser is None and not self._paused and not self._closing and self.first_frame is not None:
            self._pauser = asyncio.ensure_future(self._pause_when_drawn(self.first_frame, settle_s))

    async def _pause_when_drawn(self, watch: FirstFrameWatch, settle_s: float) -> None:
        await watch.drawn.wait()
        assert watch.drawn_at is not None
        await asyncio.sleep(max(0.0, watch.drawn_at + settle_s - asyncio.get_running_loop().time()))
        self._pauser = None
        if self._closing or self.peer is not None or self.app is None or not self.app.running:
            return
        self.app.pause()
        self._paused = True
        self._sync_audio()
        log.info("idle warm slot paused", extra={"app": self.spec.application_id,
                                                 "display": self.display and self.display.name})

    def _stop_idle_pause(self) -> None:
        if self._pauser is not None:
            self._pauser.cancel()
            self._pauser = None
        if not self._paused:
            return
        self._paused = False
        if self.app is not None:
            self.app.resume()
        self._sync_audio()
        log.info("warm slot resumed", extra={"app": self.spec.application_id,
                                             "display": self.display and self.display.name})

    def _sync_audio(self) -> None:
        """Bring the audio sink's suspension in line with `paused` (one pactl at a time, the latest wish wins)."""
        if self.audio is None or not self.audio.available:
            return
        if self._audio_task is None or self._audio_task.done():
            self._audio_task = asyncio.ensure_future(self._apply_audio_pause(self.audio))

    async def _apply_audio_pause(self, audio: AudioSink) -> None:
        while self._audio_suspended != self._paused:
            want = self._paused
            if not await audio.suspend(want):
                log.warning("could not %s the audio sink", "suspend" if want else "resume")
                return
            self._audio_suspended = want

    def video_stats(self) -> VideoStats | None:
        """A snapshot of the encode and its fan-out; None until the encoder runs."""
        fanout, encoder = self.fanout, self.encoder
        if fanout is None or encoder is None:
            return None
        sinks, dropped = len(fanout.sinks), fanout.dropped
        workers = self.viewer_workers
        if workers is not None:  # count each viewer as a consumer (not its worker's one sink); add their drops
            sinks += len(workers.viewers) - workers.sinks
            dropped += workers.dropped
        return VideoStats(encoder.encoder_name, fanout.packets, fanout.keyframes, fanout.keyframe_requests,
                          sinks, dropped)

    # ------------------------------------------------------------------ clients
    async def attach(self, offer_json: str) -> str:
        """Replace any current client with a new peer for this offer; return the answer JSON.

        Raises media.peer.OfferError for unusable offers (the running app is untouched)."""
        assert self.fanout is not None and self.injector is not None
        old = self.peer
        if old is not None:
            self.peer = None
            await self._drop_client(old)
        self.client_id = self.client_id % 255 + 1
        client_id = self.client_id
        fanout = self.fanout
        audio = self.opus.subscribe() if self.opus is not None else None

        def open_sink() -> PacketSink:
            return fanout.add_sink(f"client-{client_id}", first=True)  # the player before any viewer

        peer = ClientPeer(open_sink, audio, on_input=self._on_input,
                          on_message=lambda data: self._to_app(client_id, data),
                          on_state=lambda state: self._peer_state(peer, client_id, state), ice=self.options.ice)
        try:
            answer = await peer.answer(offer_json)
        except Exception:
            await peer.close()
            raise
        self.peer = peer
        peer.send_control(input_protocol.encode_host_info(self.injector.gamepad_available))
        if not self.injector.gamepad_available:
            peer.send_control(input_protocol.encode_notice(
                input_protocol.NoticeCode.GAMEPAD_UNAVAILABLE,
                "Gamepads are unavailable on this host (no /dev/uinput)."))
        return answer

    # ------------------------------------------------------------------ viewers (broadcast, WHEP)
    @property
    def viewers(self) -> dict[str, int]:
        """Current WHEP viewers: viewer id -> pid of the worker process serving it."""
        return self.viewer_workers.viewers if self.viewer_workers is not None else {}

    async def add_viewer(self, offer_json: str) -> tuple[str, str]:
        """A receive-only viewer of this session's encoded video/audio; returns (viewer id, answer JSON).

        Raises media.peer.OfferError. A viewer never affects the player: it runs in a viewer worker process, fed by
        one bounded sink per worker that drops to the next keyframe when it falls behind, and it cannot send input
        or messages."""
        assert self.viewer_workers is not None
        self._viewer_seq += 1
        viewer_id = f"v{self._viewer_seq}"
        answer = await self.viewer_workers.add(viewer_id, offer_json)
        return viewer_id, answer

    async def remove_viewer(self, viewer_id: str) -> bool:
        if self.viewer_workers is None:
            return False
        return await self.viewer_workers.remove(viewer_id)

    # ------------------------------------------------------------------ WHIP egress
    async def collect_files(self, log_paths: list[str], export: bool) -> FileBundle:
        """Zip this session's ApplicationLogPaths (and, for an export, the game's output) into its directory."""
        if self.app is None:
            raise LookupError("the application was never started")
        places = SessionPlaces(self.workdir / "home", Path(self.content_dir), self.app.log_path)
        return await asyncio.to_thread(make_bundle, places, log_paths, export, self.workdir / "bundles")

    async def read_file(self, name: str, offset: int) -> bytes:
        return await asyncio.to_thread(read_chunk, self.workdir / "bundles", name, offset, FILE_CHUNK_BYTES)

    def whip_egress(self) -> WhipEgresses:
        """This session's WHIP egresses (the shared encode's packets + shared Opus; no second encode)."""
        if self.egress is None:
            assert self.fanout is not None
            self.egress = WhipEgresses(self.fanout, self.opus, self.options.ice.servers)
        return self.egress

    # ------------------------------------------------------------------ LL-HLS
    async def start_hls(self, broadcast_id: str, registry: HlsRegistry,
                        recording: Storage | None = None) -> HlsPackager:
        """Package the session's encoded video (no re-encode) and its audio (AAC) as LL-HLS for `broadcast_id`;
        with `recording`, also record it there under `recordings/<broadcast_id>/` (a failing storage stops only
        the recording, never the broadcast)."""
        assert self.fanout is not None
        existing = self.hls.get(broadcast_id)
        if existing is not None:
            return existing.packager
        o = self.options
        sink = self.fanout.add_sink(f"hls-{broadcast_id}", max_packets=4 * o.fps)
        audio = self.audio is not None and self.audio.available
        packager = HlsPackager(o.fps, audio=audio, request_keyframe=sink.request_keyframe,
                               nominal_bitrate_kbps=o.bitrate_kbps)
        tasks = [asyncio.ensure_future(packager.pump_video(sink))]
        if audio:
            assert self.audio is not None
            tasks.append(asyncio.ensure_future(packager.pump_audio(self.audio.chunks())))
        recorder = None
        if recording is not None:
            recorder = Recorder(packager, recording, f"recordings/{broadcast_id}", broadcast_id=broadcast_id,
                                recording_id=broadcast_id, thumbnail_interval_s=10)
            try:
                await recorder.start()
            except StorageError:
                log.warning("recording could not start", extra={"broadcast": broadcast_id,
                                                                 "reason": recorder.status_message})
        self.hls[broadcast_id] = _HlsFeed(packager, sink, tasks, registry, recorder)
        registry.add(broadcast_id, packager)
        if self.viewer_workers is not None:
            self.viewer_workers.keep_ready(True)  # live: the first WHEP viewer needs no process start
        return packager

    async def stop_hls(self, broadcast_id: str) -> None:
        feed = self.hls.pop(broadcast_id, None)
        if feed is None:
            return
        if self.viewer_workers is not None:
            self.viewer_workers.keep_ready(bool(self.hls))
        feed.sink.close()
        for task in feed.tasks:
            task.cancel()
        await asyncio.gather(*feed.tasks, return_exceptions=True)
        await feed.packager.close()  # playlists end with EXT-X-ENDLIST; players see the end
        if feed.recorder is not None:
            await feed.recorder.stop()  # after the packager: the last segment is in the recording
        feed.registry.remove(broadcast_id)

    async def _drop_client(self, peer: ClientPeer) -> None:
        if self.injector is not None:
            self.injector.release_all()
        await peer.close()

    def _peer_state(self, peer: ClientPeer, client_id: int, state: str) -> None:
        if peer is not self.peer:
            return  # a replaced peer: its news is stale
        if state == "connected":
            if self.bridge is not None:
                self.bridge.client_connected(client_id)
            self.on_event("client_connected", {"clientId": client_id})
        elif state in ("failed", "closed"):
            self.peer = None
            if self.injector is not None:
                self.injector.release_all()  # no key stays held after a drop
            if self.bridge is not None:
                self.bridge.client_disconnected(client_id)
            asyncio.ensure_future(peer.close())
            if not self._closing:
                self.on_event("client_disconnected", {"clientId": client_id, "state": state})

    def _send_control(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer.send_control(data)

    def _on_input(self, data: bytes) -> None:
        injector = self.injector
        if injector is None:
            return
        injector.handle(data)
        now = time.time()
        if now - self._last_input_report >= INPUT_EVENT_INTERVAL_S:
            self._last_input_report = now
            self.on_event("input", {"at": now})

    def _to_app(self, client_id: int, data: bytes) -> None:
        if self.bridge is None:
            return
        try:
            self.bridge.send_to_app(client_id, data)
        except ValueError as exc:
            log.info("application message refused: %s", exc)
            if self.peer is not None:
                self.peer.send_control(input_protocol.encode_notice(input_protocol.NoticeCode.INPUT_ERROR, str(exc)))

    def send_platform_message(self, payload: bytes) -> bool:
        """To the game from client id 0 (the platform)."""
        if self.bridge is None:
            return False
        return self.bridge.send_to_app(PLATFORM_CLIENT_ID, payload)

    def _from_app(self, client_id: int, payload: bytes) -> None:
        if client_id == PLATFORM_CLIENT_ID:
            self.on_event("app_message", {"payload": payload})
            return
        peer = self.peer
        if peer is not None and client_id == self.client_id:
            peer.send_message(payload)


@dataclass
class _HlsFeed:
    packager: HlsPackager
    sink: PacketSink
    tasks: list[asyncio.Task[None]]
    registry: HlsRegistry
    recorder: Recorder | None = None


async def _settle(task: asyncio.Task[EncoderProcess]) -> EncoderProcess | None:
    try:
        return await task
    except Exception:
        return None
