"""The LL-HLS packager of one broadcast: encoded video + PCM audio in, fMP4 renditions and playlists out.

Cheap to feed from the event loop (AAC and ABR transcodes run on threads); it never serves HTTP itself."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence

from playcast.media.encoder import EncodedPacket
from playcast.media.fanout import PacketSink
from playcast.media.hls import boxes
from playcast.media.hls.aac import CHANNELS, SAMPLE_RATE, AacEncoder, AacFrame
from playcast.media.hls.playlist import master_playlist, media_playlist
from playcast.media.hls.segmenter import Segment, Segmenter, SegmenterConfig
from playcast.media.hls.transcode import RenditionSpec, Transcoder

log = logging.getLogger(__name__)

SegmentListener = Callable[[str, Segment], None]


class HlsPackager:
    """Feed `push_video()` / `push_audio()` (or `pump_video(sink)` / `pump_audio(chunks)`); `await close()`.

    `request_keyframe(why)` is called at segment boundaries (pass the fan-out sink's). `renditions` adds lower
    ABR rungs transcoded on threads (off by default). Readers: `segmenter(name)`, `master()`, `media(name)`."""

    def __init__(self, fps: int, *, audio: bool = True, part_target_s: float = 0.2,
                 segment_target_s: float = 1.0, window: int = 7,
                 request_keyframe: Callable[[str], None] | None = None,
                 renditions: Sequence[RenditionSpec] = (), source_name: str = "source",
                 nominal_bitrate_kbps: int = 0, audio_bitrate: int = 128_000) -> None:
        names = [source_name, *(r.name for r in renditions)]
        if len(set(names)) != len(names) or any(not n or "/" in n or n.startswith(".") for n in names):
            raise ValueError(f"rendition names must be unique path segments: {names}")
        if fps <= 0 or part_target_s <= 0 or segment_target_s < part_target_s or window < 1:
            raise ValueError("need fps > 0, 0 < part target <= segment target, window >= 1")
        self.fps = fps
        self.config = SegmenterConfig(fps, part_target_s, segment_target_s, window)
        self.source_name = source_name
        self.t0: float | None = None
        self.closed = False
        self._listeners: list[SegmentListener] = []
        self._loop = asyncio.get_running_loop()
        self._aac = AacEncoder(audio_bitrate) if audio else None
        audio_config = (boxes.AudioConfig(SAMPLE_RATE, CHANNELS, self._aac.asc, audio_bitrate)
                        if self._aac is not None else None)
        self._nominal = {source_name: nominal_bitrate_kbps * 1000}
        self._segmenters: dict[str, Segmenter] = {}
        self._transcoders: list[Transcoder] = []
        for name in names:
            frames: deque[AacFrame] | None = None
            if self._aac is not None:
                frames = deque(maxlen=1000)
                self._aac.outputs.append(frames)
            self._segmenters[name] = Segmenter(
                name, self.config, audio_config, frames,
                request_keyframe=request_keyframe if name == source_name else None,
                on_segment=self._segment_done)
        for spec in renditions:
            self._nominal[spec.name] = spec.bitrate_kbps * 1000
            target = self._segmenters[spec.name]
            self._transcoders.append(Transcoder(spec, fps, self._make_feed(target), self._loop))
        self._audio_bitrate = audio_bitrate
        self._master: tuple[int, bytes] | None = None
        self._media_cache: dict[tuple[str, bool], tuple[int, bytes]] = {}

    # ------------------------------------------------------------------ input
    def push_video(self, packet: EncodedPacket) -> None:
        """One encoded access unit from the fan-out (packets before the first keyframe are skipped)."""
        if self.closed:
            return
        if self.t0 is None:
            if not packet.keyframe:
                return
            self.t0 = packet.captured_at
            if self._aac is not None:
                self._aac.set_time_zero(self.t0)
        if self._aac is not None:
            self._aac.video_clock = packet.captured_at - self.t0
        self._segmenters[self.source_name].push(packet, self.t0)
        for transcoder in self._transcoders:
            transcoder.push(packet)

    def push_audio(self, pcm: bytes, at: float | None = None) -> None:
        """One chunk of s16le stereo 48 kHz PCM captured starting at unix time `at` (default: now - length)."""
        if self._aac is not None and not self.closed:
            self._aac.push(pcm, at)

    async def pump_video(self, sink: PacketSink) -> None:
        """Feed from a fan-out sink until it ends (run as a task)."""
        while (packet := await sink.get()) is not None:
            self.push_video(packet)

    async def pump_audio(self, chunks: AsyncIterator[bytes]) -> None:
        """Feed from `AudioSink.chunks()` until it ends (run as a task)."""
        async for chunk in chunks:
            self.push_audio(chunk)

    def _make_feed(self, target: Segmenter) -> Callable[[EncodedPacket], None]:
        def feed(packet: EncodedPacket) -> None:
            if self.t0 is not None and not target.ended:
                target.push(packet, self.t0)
        return feed

    # ------------------------------------------------------------------ listeners
    def add_listener(self, listener: SegmentListener) -> None:
        """Called on the event loop with (rendition name, Segment) each time a segment completes."""
        self._listeners.append(listener)

    def remove_listener(self, listener: SegmentListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _segment_done(self, name: str, segment: Segment) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(name, segment)
            except Exception:  # noqa: BLE001
                log.exception("HLS segment listener failed")

    # ------------------------------------------------------------------ output
    @property
    def names(self) -> list[str]:
        return list(self._segmenters)

    def segmenter(self, name: str) -> Segmenter | None:
        return self._segmenters.get(name)

    @property
    def source(self) -> Segmenter:
        return self._segmenters[self.source_name]

    @property
    def audio_codec(self) -> str | None:
        return "mp4a.40.2" if self._aac is not None else None

    @property
    def ready(self) -> bool:
        """Every rendition has an init segment and a part (the master playlist can list them all)."""
        return all(s.ready for s in self._segmenters.values())

    def master(self) -> bytes:
        version = sum(s.version for s in self._segmenters.values()) // 50  # bandwidth refreshed now and then
        cached = self._master
        if cached is None or cached[0] != version or self.closed:
            text = master_playlist(list(self._segmenters.items()), self.audio_codec, self._audio_bitrate,
                                   self._nominal)
            cached = (version, text.encode())
            self._master = cached
        return cached[1]

    def media(self, name: str, skip: bool = False) -> bytes:
        seg = self._segmenters[name]
        key = (name, skip)
        cached = self._media_cache.get(key)
        version = seg.version
        if cached is None or cached[0] != version:
            cached = (version, media_playlist(seg, skip).encode())
            self._media_cache[key] = cached
        return cached[1]

    # ------------------------------------------------------------------ end
    async def close(self) -> None:
        """End the broadcast: last segments complete, playlists get EXT-X-ENDLIST, threads stop."""
        if self.closed:
            return
        self.closed = True
        self.source.finish()
        for transcoder in self._transcoders:
            await asyncio.to_thread(transcoder.close)
        await asyncio.sleep(0)  # deliver packets the transcoders handed to the loop
        for name, seg in self._segmenters.items():
            if name != self.source_name:
                seg.finish()
        if self._aac is not None:
            await asyncio.to_thread(self._aac.close)
        log.info("hls packager closed", extra={"segments": self.source.live_msn + 1})
