"""One LL-HLS rendition: H.264 access units (+ AAC frames) -> fMP4 parts and keyframe-aligned segments.

Keeps a sliding window in memory and lets requests wait for parts; no HTTP, no playlists text, no encoding."""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from playcast.media.encoder import EncodedPacket
from playcast.media.hls import boxes
from playcast.media.hls.aac import FRAME_SAMPLES, SAMPLE_RATE, AacFrame
from playcast.media.hls.h264 import parse_sps, to_sample

log = logging.getLogger(__name__)

KEYFRAME_LEAD_FRAMES = 2  # ask for the IDR this many frames before the segment should end
TIMESCALE = 90000  # video ticks per second
FRAME_GAP_FRAMES = 2  # the capture sends a frame at least every two frame periods (media/capture_proc.py)


@dataclass
class Part:
    msn: int  # its segment
    index: int  # within its segment
    number: int  # counted over the whole stream: names the part, so a preload hint always comes true
    data: bytes
    duration: float
    independent: bool

    @property
    def uri(self) -> str:
        return part_uri(self.number)


def part_uri(number: int) -> str:
    return f"part{number}.m4s"


@dataclass
class Segment:
    msn: int
    start: int  # decode time of the first frame, in 90 kHz ticks since time zero
    pdt: float  # unix time of the first frame
    init_version: int
    discontinuity: bool
    parts: list[Part] = field(default_factory=list)
    duration: float = 0.0
    complete: bool = False
    size: int = 0
    parts_dropped: bool = False
    _data: bytes | None = None

    @property
    def uri(self) -> str:
        return f"seg{self.msn}.m4s"

    @property
    def data(self) -> bytes:
        """The whole segment: its parts' fragments back to back."""
        if self._data is None:
            data = b"".join(p.data for p in self.parts)
            if not self.complete:
                return data
            self._data = data
        return self._data


@dataclass(frozen=True)
class SegmenterConfig:
    fps: int
    part_target_s: float = 0.2
    segment_target_s: float = 1.0
    window: int = 7  # complete segments kept

    @property
    def part_frames(self) -> int:
        return max(1, math.floor(self.part_target_s * self.fps + 1e-9))

    @property
    def part_target(self) -> float:
        """EXT-X-PART-INF PART-TARGET: whole frames plus a quarter frame of room for capture-clock jitter."""
        return math.ceil((self.part_frames + 0.25) / self.fps * 1e5) / 1e5  # as written in the playlist

    @property
    def target_duration(self) -> int:
        """EXT-X-TARGETDURATION: every EXTINF, rounded to the nearest integer, must be at most this (RFC 8216
        4.3.3.1). As tight as that allows with a quarter of a segment of room for a late keyframe (1 s segments:
        1, i.e. up to 1.49 s): clients reload a changed playlist once per target duration, and a loose one makes
        players that wait that long (VLC) run dry between reloads."""
        return max(1, math.floor(1.25 * self.segment_target_s + 0.5))

    @property
    def timescale(self) -> int:
        return TIMESCALE


class Segmenter:
    """Cuts one rendition. Call `push(packet, t0)` for each video packet; readers use the state and `wait()`."""

    def __init__(self, name: str, config: SegmenterConfig, audio: boxes.AudioConfig | None,
                 audio_frames: deque[AacFrame] | None,
                 request_keyframe: Callable[[str], None] | None = None,
                 on_segment: Callable[[str, Segment], None] | None = None) -> None:
        self.name = name
        self.config = config
        self.audio = audio
        self._audio_frames = audio_frames
        self._request_keyframe = request_keyframe
        self._on_segment = on_segment
        self.segments: deque[Segment] = deque()
        self.inits: dict[int, bytes] = {}
        self.init_version = -1
        self.video_codec: str | None = None
        self.width = 0
        self.height = 0
        self.ended = False
        self.first_msn = 0
        self.discontinuity_sequence = 0
        self.peak_bitrate = 0
        self._params: tuple[bytes, bytes] | None = None
        self._frame_ticks = TIMESCALE // config.fps
        self._min_step = max(1, self._frame_ticks // 8)
        self._part_ticks = round(config.part_frames * TIMESCALE / config.fps)
        self._max_part_ticks = math.floor(config.part_target * TIMESCALE)
        # close a part while the longest gap the capture leaves (FRAME_GAP_FRAMES) still fits under PART-TARGET
        self._close_part_after = min(self._part_ticks - self._frame_ticks // 2,
                                     self._max_part_ticks - FRAME_GAP_FRAMES * self._frame_ticks)
        self._current: Segment | None = None
        self._samples: list[boxes.Sample] = []
        self._part_start = 0
        self._part_independent = False
        self._pending: tuple[bytes, int, bool] | None = None  # (sample, dts, idr) waiting for its duration
        self._last_dts = -TIMESCALE
        self._audio_next: int | None = None
        self._sequence = 0
        self._next_msn = 0
        self.next_part_number = 0
        self.long_parts = 0  # parts a capture stall made longer than PART-TARGET
        self.long_segments = 0  # segments whose keyframe came so late that they round above TARGETDURATION
        self._parts: dict[int, Part] = {}  # by number, while listed
        self._keyframe_asked_for = -1
        self._keyframe_asked_at = 0
        self._changed = asyncio.Event()
        self.version = 0  # bumps on every published part/segment (playlist caches key on it)

    # ------------------------------------------------------------------ feeding
    def push(self, packet: EncodedPacket, t0: float) -> None:
        """Add one access unit. Its decode time is its capture time (90 kHz) since `t0`, kept increasing."""
        if self.ended:
            return
        au = to_sample(packet.data)
        idr = packet.keyframe and au.idr
        if self._current is None and not idr:
            return  # start at a keyframe
        if idr and au.sps is not None and au.pps is not None and (au.sps, au.pps) != self._params:
            self._new_init(au.sps, au.pps)
        if not au.sample:
            return
        dts = round((packet.captured_at - t0) * TIMESCALE)
        if dts < self._last_dts + self._min_step:
            dts = self._last_dts + self._min_step  # a capture burst: squeeze, never reorder
        self._last_dts = dts
        if self._pending is not None:
            sample, pdts, pidr = self._pending
            self._samples.append(boxes.Sample(sample, dts - pdts, pidr))
        current = self._current
        if current is None:
            self._start_segment(dts, t0)
        else:
            seconds = (dts - current.start) / TIMESCALE
            new_init = self.init_version != current.init_version
            if idr and (seconds >= 0.75 * self.config.segment_target_s or new_init):
                self._close_part(dts)
                self._close_segment()
                self._start_segment(dts, t0)
            elif idr or dts - self._part_start > self._close_part_after:
                self._close_part(dts)
        if not self._samples:
            self._part_start = dts
            self._part_independent = idr
        self._pending = (au.sample, dts, idr)
        self._maybe_request_keyframe(dts)

    def _new_init(self, sps: bytes, pps: bytes) -> None:
        info = parse_sps(sps)
        self._params = (sps, pps)
        self.init_version += 1
        video = boxes.VideoConfig(sps, pps, TIMESCALE)
        self.inits[self.init_version] = boxes.init_segment(video, self.audio)
        self.video_codec = info.codec_string
        self.width, self.height = info.width, info.height
        log.info("hls %s: init %d, %dx%d %s", self.name, self.init_version, info.width, info.height,
                 info.codec_string)

    def _start_segment(self, dts: int, t0: float) -> None:
        prev = self.segments[-1] if self.segments else None
        discontinuity = prev is not None and prev.init_version != self.init_version
        seg = Segment(self._next_msn, dts, t0 + dts / TIMESCALE, self.init_version, discontinuity)
        self._next_msn += 1
        self._current = seg
        self.segments.append(seg)

    def _maybe_request_keyframe(self, dts: int) -> None:
        seg = self._current
        if seg is None or self._request_keyframe is None:
            return
        due = round(self.config.segment_target_s * TIMESCALE) - KEYFRAME_LEAD_FRAMES * self._frame_ticks
        if dts - seg.start < due:
            return
        # ask once when due, again every half second while none came (the fan-out coalesces)
        if self._keyframe_asked_for != seg.msn or dts - self._keyframe_asked_at >= TIMESCALE // 2:
            self._keyframe_asked_for = seg.msn
            self._keyframe_asked_at = dts
            self._request_keyframe(f"hls {self.name}: segment {seg.msn} boundary")

    def _audio_run(self, end_dts: int) -> boxes.TrackRun | None:
        frames = self._audio_frames
        if frames is None or self.audio is None:
            return None
        end = end_dts * SAMPLE_RATE // TIMESCALE
        samples: list[boxes.Sample] = []
        base: int | None = None
        while frames and frames[0].position < end:
            frame = frames.popleft()
            if self._audio_next is not None and frame.position < self._audio_next:
                continue  # overlaps what was already sent
            if base is None:
                base = frame.position
            elif frame.position != base + len(samples) * FRAME_SAMPLES:
                frames.appendleft(frame)  # a jump: it starts the next run
                break
            samples.append(boxes.Sample(frame.data, FRAME_SAMPLES))
        if base is None:
            return None
        self._audio_next = base + len(samples) * FRAME_SAMPLES
        return boxes.TrackRun(boxes.AUDIO_TRACK, base, samples, with_flags=False)

    def _close_part(self, end_dts: int) -> None:
        seg = self._current
        if seg is None or not self._samples:
            return
        # The timeline stays gap-free: a frame the capture delivered late lasts until the next one, so only a
        # capture stall makes a part longer than PART-TARGET (a gap instead would stall players' buffers).
        ticks = end_dts - self._part_start
        if ticks > self._max_part_ticks:
            self.long_parts += 1
        runs = [boxes.TrackRun(boxes.VIDEO_TRACK, self._part_start, self._samples, True)]
        audio = self._audio_run(end_dts)
        if audio is not None:
            runs.append(audio)
        self._sequence += 1
        data = boxes.fragment(self._sequence, runs)
        part = Part(seg.msn, len(seg.parts), self.next_part_number, data, ticks / TIMESCALE,
                    self._part_independent)
        seg.parts.append(part)
        self._parts[part.number] = part
        self.next_part_number += 1
        seg.size += len(data)
        seg.duration += ticks / TIMESCALE
        self._samples = []
        self._publish()

    def _close_segment(self) -> None:
        seg = self._current
        if seg is None:
            return
        self._current = None
        if not seg.parts:
            self.segments.remove(seg)
            return
        seg.complete = True
        if round(seg.duration) > self.config.target_duration:
            self.long_segments += 1
            log.warning("hls %s: segment %d is %.2f s, longer than the target duration %d s (late keyframe)",
                        self.name, seg.msn, seg.duration, self.config.target_duration)
        if seg.duration > 0:
            self.peak_bitrate = max(self.peak_bitrate, int(seg.size * 8 / seg.duration))
        self._trim()
        self._publish()
        if self._on_segment is not None:
            try:
                self._on_segment(self.name, seg)
            except Exception:  # noqa: BLE001 - a listener never breaks the stream
                log.exception("hls %s: segment listener failed", self.name)

    def _trim(self) -> None:
        complete = [s for s in self.segments if s.complete]
        while len(complete) > self.config.window:
            old = complete.pop(0)
            self.segments.remove(old)
            for part in old.parts:
                self._parts.pop(part.number, None)
            if old.discontinuity:
                self.discontinuity_sequence += 1
        if self.segments:
            self.first_msn = self.segments[0].msn
        # parts older than three target durations from the live edge leave the playlist (and memory)
        age = 0.0
        for seg in reversed(self.segments):
            if seg.complete:
                age += seg.duration
                if age > 3 * self.config.target_duration and not seg.parts_dropped:
                    _ = seg.data  # keep the joined segment
                    for part in seg.parts:
                        part.data = b""
                        self._parts.pop(part.number, None)
                    seg.parts_dropped = True
        used = {s.init_version for s in self.segments}
        for version in [v for v in self.inits if v not in used and v != self.init_version]:
            del self.inits[version]

    def _publish(self) -> None:
        self.version += 1
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def finish(self) -> None:
        """End of stream: the pending frame closes the last part and segment; waiters wake up."""
        if self.ended:
            return
        if self._pending is not None and self._current is not None:
            sample, dts, idr = self._pending
            end = dts + self._frame_ticks
            self._samples.append(boxes.Sample(sample, self._frame_ticks, idr))
            self._pending = None
            self._close_part(end)
            self._close_segment()
        self.ended = True
        self._publish()

    # ------------------------------------------------------------------ reading
    @property
    def ready(self) -> bool:
        """A playlist is worth serving: an init and a complete segment (players treat part-only playlists as
        empty), or the stream ended."""
        return bool(self.inits) and (self.last_complete_msn >= 0 or (self.ended and bool(self.segments)))

    def part(self, number: int) -> Part | None:
        """A listed part by its number (None once it left the playlist, or before it exists)."""
        return self._parts.get(number)

    def segment(self, msn: int) -> Segment | None:
        if not self.segments:
            return None
        i = msn - self.segments[0].msn
        if 0 <= i < len(self.segments):
            return self.segments[i]
        return None

    @property
    def last_part(self) -> tuple[int, int]:
        """(msn, index) of the newest published part; (-1, -1) before the first."""
        for seg in reversed(self.segments):
            if seg.parts:
                return seg.msn, len(seg.parts) - 1
        return -1, -1

    @property
    def last_complete_msn(self) -> int:
        for seg in reversed(self.segments):
            if seg.complete:
                return seg.msn
        return -1

    @property
    def live_msn(self) -> int:
        """The msn of the segment being written (or of the last one once ended)."""
        return self.segments[-1].msn if self.segments else 0

    def has(self, msn: int, part: int | None) -> bool:
        """True when a playlist now contains segment `msn` (or its part `part`), per _HLS_msn/_HLS_part."""
        if part is None:
            return msn <= self.last_complete_msn
        last_msn, last_index = self.last_part
        if msn < last_msn:
            return True
        return msn == last_msn and part <= last_index or (self.ended and msn <= last_msn)

    async def wait(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Wait until `ready()` (re-checked after each publish), the stream ends, or the timeout passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ready():
            if self.ended:
                return ready()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return ready()
        return True
