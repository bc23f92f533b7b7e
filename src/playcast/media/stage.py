"""A broadcast's stage: one WHIP publisher (a webcam, OBS, FFmpeg) transcoded once, shown to many WHEP viewers.

The publisher's video is decoded by aiortc and encoded ONCE with libx264 on a worker thread into a PacketFanout;
its audio goes into one OpusFanout. Viewers are receive-only ClientPeers. No HTTP and no database here."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp
from av.video.frame import PictureType

from playcast.json_input import parse_json
from playcast.media.encoder import EncodedPacket
from playcast.media.encoding import X264, EncoderSettings, make_context
from playcast.media.fanout import PacketFanout, PacketSink
from playcast.media.ice import IceSettings
from playcast.media.opus_fanout import OpusFanout
from playcast.media.peer import ClientPeer, close_peer_connection
from playcast.media.whip_offer import OfferRejected, check_publish_offer

log = logging.getLogger(__name__)

MAX_WIDTH, MAX_HEIGHT = 1280, 720  # the stage's rendition is at most 720p (IVS stages cap publishing there too)
STAGE_FPS = 30
STAGE_BITRATE_KBPS = 1500
VIEWER_GRACE_S = 5.0  # viewers stay this long after the publisher left without a replacement
PUBLISHER_MEDIA_TIMEOUT_S = 10.0  # a connected publisher that sends nothing for this long is gone
PCM_BYTES_PER_SAMPLE = 4  # s16 stereo

__all__ = ["NoPublisher", "OfferRejected", "Stage", "Stages", "fit_size"]


class NoPublisher(Exception):
    """Nothing is published on this stage (WHEP answers 409 + Retry-After)."""


def fit_size(width: int, height: int, max_width: int = MAX_WIDTH, max_height: int = MAX_HEIGHT) -> tuple[int, int]:
    """Scale down (never up) to fit max_width x max_height, keeping the aspect; even sizes for 4:2:0."""
    scale = min(1.0, max_width / width, max_height / height)
    w, h = max(2, int(width * scale) & ~1), max(2, int(height * scale) & ~1)
    return w, h


class PcmBus:
    """Publishers push s16 stereo 48 kHz PCM; every `aiter()` gets its own bounded queue (a fresh one each time,
    so an OpusFanout may stop and restart its reader). Silence is filled in by the consumer (PcmAudioTrack)."""

    def __init__(self, max_chunks: int = 10) -> None:
        self._max = max_chunks
        self._queues: set[asyncio.Queue[bytes]] = set()

    def push(self, chunk: bytes) -> None:
        for queue in tuple(self._queues):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(chunk)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(self._max)
        self._queues.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.discard(queue)


class VideoTranscoder:
    """Latest decoded frame in, H.264 packets out (one libx264 on one worker thread, only while someone watches).

    Frames that arrive while the encoder is busy replace each other: a slow encode drops frames, never queues."""

    def __init__(self, fps: int = STAGE_FPS, bitrate_kbps: int = STAGE_BITRATE_KBPS,
                 on_size: Callable[[], None] | None = None) -> None:
        self.fps = fps
        self.on_size = on_size or (lambda: None)  # on the event loop, when the encoded size is first known or changes
        self.bitrate_kbps = bitrate_kbps
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="stage-x264")
        self._latest: av.VideoFrame | None = None
        self._arrived = asyncio.Event()
        self._out: asyncio.Queue[EncodedPacket | None] = asyncio.Queue(64)
        self._keyframe = True
        self._active = False
        self._ctx: av.VideoCodecContext | None = None
        self._size: tuple[int, int] | None = None
        self._t0: float | None = None
        self._pts = -1
        self._index = 0
        self._task: asyncio.Task[None] | None = None
        self.frames_in = 0
        self.frames_encoded = 0
        self.fanout = PacketFanout(self._read, self.request_keyframe)
        self.fanout.on_first_sink = self._first_sink
        self.fanout.on_no_sinks = self._no_sinks

    def start(self) -> None:
        self.fanout.start()
        self._task = asyncio.ensure_future(self._loop())

    def submit(self, frame: av.VideoFrame) -> None:
        self.frames_in += 1
        self._latest = frame
        self._arrived.set()

    def request_keyframe(self) -> None:
        self._keyframe = True

    @property
    def size(self) -> tuple[int, int] | None:
        return self._size

    def _first_sink(self) -> None:
        self._active = True
        self._keyframe = True

    def _no_sinks(self) -> None:
        self._active = False

    async def _read(self) -> EncodedPacket | None:
        return await self._out.get()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            frame, self._latest = self._latest, None
            if frame is None or not self._active:
                continue  # nobody watches: decode only, no encode
            keyframe, self._keyframe = self._keyframe, False
            size = self._size
            try:
                packets = await loop.run_in_executor(self._executor, self._encode, frame, keyframe)
            except Exception:
                log.exception("stage encode failed; dropping the frame")
                self._keyframe = True
                continue
            if self._size != size:
                self.on_size()
            for packet in packets:
                if self._out.full():
                    self._out.get_nowait()  # the fan-out pump is stuck: never grow without bound
                    self._keyframe = True
                self._out.put_nowait(packet)

    def _encode(self, frame: av.VideoFrame, keyframe: bool) -> list[EncodedPacket]:
        """Worker thread only."""
        size = fit_size(frame.width, frame.height)
        if self._ctx is None or size != self._size:
            self._ctx = make_context(X264, EncoderSettings(size[0], size[1], self.fps, self.bitrate_kbps))
            self._size = size
            keyframe = True
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        self._pts = max(self._pts + 1, round((now - self._t0) * self.fps))
        image = frame.reformat(width=size[0], height=size[1], format="yuv420p")
        image.pts = self._pts
        image.pict_type = PictureType.I if keyframe else PictureType.NONE
        out: list[EncodedPacket] = []
        captured = time.time()
        for packet in self._ctx.encode(image):
            out.append(EncodedPacket(bytes(packet), bool(packet.is_keyframe), self._index, captured))
            self._index += 1
        self.frames_encoded += 1
        return out

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.fanout.stop()
        self._executor.shutdown(wait=True)


@dataclass
class Publisher:
    publisher_id: str
    pc: RTCPeerConnection
    etag: str
    created_at: float = field(default_factory=time.time)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    connected: bool = False
    video_size: tuple[int, int] | None = None
    last_media: float = field(default_factory=time.monotonic)


class Stage:
    """One broadcast's stage: at most one publisher at a time (a new one replaces the old), many viewers."""

    def __init__(self, broadcast_id: str, on_change: Callable[[], None] | None = None,
                 ice: IceSettings | None = None) -> None:
        self.broadcast_id = broadcast_id
        self.ice = ice or IceSettings()  # STUN/TURN and the host's public address, for publishers and viewers
        self.on_change = on_change or (lambda: None)  # what describe() says changed (for whoever reports it)
        self.video = VideoTranscoder(on_size=lambda: self.on_change())
        self.pcm = PcmBus()
        self.opus = OpusFanout(self.pcm)
        self.publisher: Publisher | None = None
        self.viewers: dict[str, ClientPeer] = {}
        self._seq = 0
        self._grace: asyncio.TimerHandle | None = None
        self._closed = False
        self.replaced = 0
        self.video.start()

    @property
    def live(self) -> bool:
        return self.publisher is not None

    # ------------------------------------------------------------------ publisher (WHIP)
    async def publish(self, sdp: str) -> tuple[Publisher, str]:
        """Accept a WHIP offer; returns (publisher, answer SDP). Raises OfferRejected (status 400/422).

        A publisher already on the stage is replaced (disconnected) once the new offer is accepted."""
        offer = check_publish_offer(sdp)
        self._seq += 1
        publisher = Publisher(f"p{self._seq}-{secrets.token_hex(4)}", RTCPeerConnection(self.ice.configuration()),
                              f'"{secrets.token_hex(8)}"')
        pc = publisher.pc
        pc.on("track", lambda track: self._on_track(publisher, track))
        pc.on("connectionstatechange", lambda: self._publisher_state(publisher))
        pc.on("iceconnectionstatechange", lambda: _skip_consent(pc))
        try:
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            except Exception as exc:
                raise OfferRejected(400, f"malformed SDP offer: {exc}") from None
            for transceiver in pc.getTransceivers():
                if transceiver.kind in ("audio", "video"):
                    if not transceiver._codecs:  # aiortc kept none of the offered codecs
                        raise OfferRejected(422, f"no {transceiver.kind} codec this server can receive "
                                                 f"(offered: {', '.join(offer.codecs[transceiver.kind]) or 'none'})")
                    transceiver.direction = "recvonly"
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except OfferRejected:
            await close_peer_connection(pc, "refused publisher")
            raise
        except Exception as exc:
            await close_peer_connection(pc, "refused publisher")
            raise OfferRejected(422, f"cannot answer this offer: {exc}") from None
        old, self.publisher = self.publisher, publisher
        self._cancel_grace()
        if old is not None:
            self.replaced += 1
            log.info("stage publisher replaced", extra={"broadcast": self.broadcast_id, "old": old.publisher_id,
                                                        "new": publisher.publisher_id})
            await self._drop_publisher(old)
        log.info("stage publisher joined", extra={"broadcast": self.broadcast_id,
                                                  "publisher": publisher.publisher_id})
        return publisher, self.ice.announce(pc.localDescription.sdp)

    async def unpublish(self, publisher_id: str) -> bool:
        publisher = self.publisher
        if publisher is None or publisher.publisher_id != publisher_id:
            return False
        self.publisher = None
        await self._drop_publisher(publisher)
        self._start_grace()
        self.on_change()
        log.info("stage publisher left", extra={"broadcast": self.broadcast_id, "publisher": publisher_id})
        return True

    def get_publisher(self, publisher_id: str) -> Publisher | None:
        publisher = self.publisher
        return publisher if publisher is not None and publisher.publisher_id == publisher_id else None

    async def trickle(self, publisher: Publisher, fragment: str) -> int:
        """Add the remote candidates of an `application/trickle-ice-sdpfrag` body; returns how many."""
        transceivers = publisher.pc.getTransceivers()
        mid = transceivers[0].mid if transceivers else "0"
        added = 0
        for raw in fragment.replace("\r\n", "\n").split("\n"):
            line = raw.strip()
            if line.startswith("a=candidate:"):
                try:
                    candidate = candidate_from_sdp(line[len("a=candidate:"):])
                except (AssertionError, ValueError, IndexError):
                    raise OfferRejected(400, f"malformed candidate line: {line[:120]}") from None
                candidate.sdpMid = mid  # BUNDLE: every candidate belongs to the one transport
                await publisher.pc.addIceCandidate(candidate)
                added += 1
            elif line == "a=end-of-candidates":
                await publisher.pc.addIceCandidate(None)
        return added

    def _on_track(self, publisher: Publisher, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            publisher.tasks.append(asyncio.ensure_future(self._pump_video(publisher, track)))
        elif track.kind == "audio":
            publisher.tasks.append(asyncio.ensure_future(self._pump_audio(publisher, track)))

    async def _pump_video(self, publisher: Publisher, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if self.publisher is not publisher:
                    return
                if publisher.video_size != (frame.width, frame.height):
                    publisher.video_size = (frame.width, frame.height)
                    self.on_change()
                publisher.last_media = time.monotonic()
                self.video.submit(frame)  # type: ignore[arg-type]
        except MediaStreamError:
            pass

    async def _pump_audio(self, publisher: Publisher, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=48000)
        try:
            while True:
                frame = await track.recv()
                if self.publisher is not publisher:
                    return
                publisher.last_media = time.monotonic()
                for out in resampler.resample(frame):  # type: ignore[arg-type]
                    self.pcm.push(bytes(out.planes[0])[:out.samples * PCM_BYTES_PER_SAMPLE])
        except MediaStreamError:
            pass

    def _publisher_state(self, publisher: Publisher) -> None:
        state = publisher.pc.connectionState
        if state == "connected":
            publisher.connected = True
            publisher.last_media = time.monotonic()
            publisher.tasks.append(asyncio.ensure_future(self._watch_media(publisher)))
            self.video.request_keyframe()
            self.on_change()
        elif state in ("failed", "closed") and self.publisher is publisher:
            log.info("stage publisher connection %s", state, extra={"broadcast": self.broadcast_id})
            asyncio.ensure_future(self.unpublish(publisher.publisher_id))

    async def _watch_media(self, publisher: Publisher) -> None:
        """Consent checks are off for publishers (see _skip_consent): a publisher that went silent is gone."""
        while self.publisher is publisher:
            await asyncio.sleep(1.0)
            if time.monotonic() - publisher.last_media > PUBLISHER_MEDIA_TIMEOUT_S and self.publisher is publisher:
                log.info("stage publisher sent no media for %.0f s", PUBLISHER_MEDIA_TIMEOUT_S,
                         extra={"broadcast": self.broadcast_id, "publisher": publisher.publisher_id})
                asyncio.ensure_future(self.unpublish(publisher.publisher_id))
                return

    async def _drop_publisher(self, publisher: Publisher) -> None:
        for task in publisher.tasks:
            task.cancel()
        await asyncio.gather(*publisher.tasks, return_exceptions=True)
        await close_peer_connection(publisher.pc, "publisher")

    # ------------------------------------------------------------------ viewers (WHEP)
    async def add_viewer(self, offer_sdp: str) -> tuple[str, str]:
        """A receive-only viewer: (viewer id, answer SDP). Raises NoPublisher, media.peer.OfferError."""
        if self.publisher is None:
            raise NoPublisher(f"nothing is published on the stage of {self.broadcast_id}")
        self._seq += 1
        viewer_id = f"c{self._seq}"
        fanout = self.video.fanout

        def open_sink() -> PacketSink:
            return fanout.add_sink(f"cam-viewer-{viewer_id}", max_packets=30)

        def state(value: str) -> None:
            if value in ("failed", "closed") and self.viewers.get(viewer_id) is peer:
                del self.viewers[viewer_id]
                asyncio.ensure_future(peer.close())
                self.on_change()

        peer = ClientPeer(open_sink, self.opus.subscribe(), on_input=_ignore, on_message=_ignore, on_state=state,
                          ice=self.ice)
        try:
            answer = await peer.answer(json.dumps({"type": "offer", "sdp": offer_sdp}))
        except Exception:
            await peer.close()
            raise
        self.viewers[viewer_id] = peer
        return viewer_id, parse_json(answer)["sdp"]

    async def remove_viewer(self, viewer_id: str) -> bool:
        peer = self.viewers.pop(viewer_id, None)
        if peer is None:
            return False
        await peer.close()
        return True

    def _start_grace(self) -> None:
        self._cancel_grace()
        if self.viewers and not self._closed:
            self._grace = asyncio.get_running_loop().call_later(
                VIEWER_GRACE_S, lambda: asyncio.ensure_future(self._drop_viewers()))

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    async def _drop_viewers(self) -> None:
        self._grace = None
        if self.publisher is not None:
            return
        viewers, self.viewers = list(self.viewers.values()), {}
        await asyncio.gather(*(v.close() for v in viewers), return_exceptions=True)
        self.on_change()

    # ------------------------------------------------------------------ status / end
    def describe(self) -> dict[str, object]:
        p = self.publisher
        return {
            "live": p is not None,
            "publisher": None if p is None else {"id": p.publisher_id, "connected": p.connected,
                                                 "since": p.created_at, "videoSize": p.video_size},
            "viewers": len(self.viewers),
            "renditionSize": self.video.size,
        }

    async def close(self) -> None:
        self._closed = True
        self._cancel_grace()
        publisher, self.publisher = self.publisher, None
        if publisher is not None:
            await self._drop_publisher(publisher)
        viewers, self.viewers = list(self.viewers.values()), {}
        await asyncio.gather(*(v.close() for v in viewers), return_exceptions=True)
        await self.opus.stop()
        await self.video.close()


class Stages:
    """Stages by broadcast id (a session's, on its host: created on first publish, ended with the broadcast or
    the session)."""

    def __init__(self, on_change: Callable[[], None] | None = None, ice: IceSettings | None = None) -> None:
        self._stages: dict[str, Stage] = {}
        self.ice = ice or IceSettings()
        self.on_change = on_change or (lambda: None)  # any stage's describe() changed

    def get(self, broadcast_id: str) -> Stage | None:
        return self._stages.get(broadcast_id)

    def items(self) -> list[tuple[str, Stage]]:
        return list(self._stages.items())

    def get_or_create(self, broadcast_id: str) -> Stage:
        stage = self._stages.get(broadcast_id)
        if stage is None:
            stage = self._stages[broadcast_id] = Stage(broadcast_id, on_change=lambda: self.on_change(), ice=self.ice)
        return stage

    async def end(self, broadcast_id: str) -> None:
        stage = self._stages.pop(broadcast_id, None)
        if stage is not None:
            await stage.close()
            log.info("stage ended", extra={"broadcast": broadcast_id})

    async def close(self) -> None:
        stages, self._stages = list(self._stages.values()), {}
        await asyncio.gather(*(s.close() for s in stages), return_exceptions=True)


def _skip_consent(pc: RTCPeerConnection) -> None:
    """Stop ICE consent-freshness checks (RFC 7675) on a publisher's receive-only connection once ICE is up.

    Consent protects a *sender* from flooding a peer that never agreed; the stage only receives. Some WHIP clients
    (FFmpeg's `whip` muxer) never answer the checks, and aioice would tear them down after a few seconds.
    Liveness comes from the media itself (PUBLISHER_MEDIA_TIMEOUT_S), DELETE, or DTLS close instead."""
    if pc.iceConnectionState not in ("connected", "completed"):
        return
    for transceiver in pc.getTransceivers():
        connection = getattr(transceiver.receiver.transport.transport, "_connection", None)
        task = getattr(connection, "_query_consent_task", None)
        if task is not None and not task.done():
            task.cancel()
            connection._query_consent_task = None  # type: ignore[union-attr]


def _ignore(_: bytes) -> None:
    """Stage viewers cannot drive anything."""
