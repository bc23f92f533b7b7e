"""Optional ABR rungs: decode the source H.264, scale down, re-encode with x264, IDRs aligned to the source's.

Runs on its own thread per rung and drops to the next keyframe when it falls behind; never muxes or serves."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import av
from av.video.frame import PictureType

from playcast.media.encoder import EncodedPacket
from playcast.media.encoding import X264, EncoderSettings, make_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenditionSpec:
    """One lower rung of the ladder: output height (width follows the source's aspect) and bitrate."""

    name: str
    height: int
    bitrate_kbps: int


LADDER = (RenditionSpec("720p", 720, 3000), RenditionSpec("480p", 480, 1500), RenditionSpec("360p", 360, 800))


def ladder_below(source_height: int, ladder: tuple[RenditionSpec, ...] = LADDER) -> list[RenditionSpec]:
    """The rungs strictly smaller than the source (a 720p source gets 480p and 360p)."""
    return [r for r in ladder if r.height < source_height]


class Transcoder:
    """Source packets in (`push`, cheap, event-loop safe); scaled packets out via `on_packet` on the loop."""

    def __init__(self, spec: RenditionSpec, fps: int, on_packet: Callable[[EncodedPacket], None],
                 loop: asyncio.AbstractEventLoop, max_queue: int = 30) -> None:
        self.spec = spec
        self.fps = fps
        self._on_packet = on_packet
        self._loop = loop
        self._inbox: queue.Queue[EncodedPacket | None] = queue.Queue(max_queue)
        self._skip_to_keyframe = False
        self.dropped = 0
        self.frames_out = 0
        self.failed: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"hls-transcode-{spec.name}", daemon=True)
        self._thread.start()

    def push(self, packet: EncodedPacket) -> None:
        if self._skip_to_keyframe:
            if not packet.keyframe:
                self.dropped += 1
                return
            self._skip_to_keyframe = False
        try:
            self._inbox.put_nowait(packet)
        except queue.Full:
            self.dropped += 1
            self._skip_to_keyframe = True  # a decoder fed a gap would smear: resume at the next IDR

    def close(self, timeout: float = 10.0) -> None:
        while True:
            try:
                self._inbox.put(None, timeout=0.1)
                break
            except queue.Full:
                if not self._thread.is_alive():
                    break
        self._thread.join(timeout)

    def _run(self) -> None:
        decoder = av.CodecContext.create("h264", "r")
        decoder.thread_count = 1  # frame threading would hold frames back
        encoder = None
        index = 0
        meta: dict[int, EncodedPacket] = {}
        try:
            while True:
                packet = self._inbox.get()
                if packet is None:
                    break
                meta[packet.index] = packet
                av_packet = av.Packet(packet.data)
                av_packet.pts = packet.index
                for frame in decoder.decode(av_packet):
                    source = meta.pop(frame.pts, packet) if frame.pts is not None else packet
                    if encoder is None:
                        width = max(2, round(frame.width * self.spec.height / frame.height / 2) * 2)
                        encoder = make_context(X264, EncoderSettings(width, self.spec.height, self.fps,
                                                                     self.spec.bitrate_kbps))
                        log.info("transcode %s: %dx%d -> %dx%d", self.spec.name, frame.width, frame.height,
                                 width, self.spec.height)
                    out = frame.reformat(width=encoder.width, height=encoder.height, format="yuv420p")
                    out.pts = index
                    out.time_base = encoder.time_base
                    out.pict_type = PictureType.I if source.keyframe else PictureType.NONE
                    index += 1
                    for encoded in encoder.encode(out):
                        self.frames_out += 1
                        result = EncodedPacket(bytes(encoded), bool(encoded.is_keyframe), source.index,
                                               source.captured_at)
                        self._loop.call_soon_threadsafe(self._on_packet, result)
                for stale in [k for k in meta if k < packet.index - self.fps]:
                    del meta[stale]
        except RuntimeError as exc:  # loop closed while we were still delivering
            self.failed = str(exc)
        except Exception as exc:  # noqa: BLE001 - a broken rung must not affect the source rendition
            self.failed = str(exc)
            log.exception("transcode %s failed; this rendition stops", self.spec.name)
