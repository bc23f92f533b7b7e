"""Encode a session's audio to Opus once and fan the packets out to every peer (player and viewers).

Paced PCM frames come from a PcmAudioTrack; one libopus encoder runs while at least one track is subscribed.
No sockets, no HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable
from fractions import Fraction

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from playcast.media.audio import SAMPLE_RATE, PcmAudioTrack

log = logging.getLogger(__name__)

OPUS_BITRATE = 96_000
TIME_BASE = Fraction(1, SAMPLE_RATE)


class EncodedAudioTrack(MediaStreamTrack):
    """An audio track whose frames are already-encoded Opus packets (aiortc only packetizes them)."""

    kind = "audio"

    def __init__(self, fanout: OpusFanout, max_packets: int = 10) -> None:
        super().__init__()
        self._fanout = fanout
        self._queue: asyncio.Queue[av.Packet | None] = asyncio.Queue(max_packets)
        self.dropped = 0

    def _offer(self, packet: av.Packet | None) -> None:
        if self._queue.full():  # a slow peer loses its oldest audio, never delays the others
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(packet)

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._queue.get()
        if packet is None:
            self.stop()
            raise MediaStreamError
        return packet

    def stop(self) -> None:
        super().stop()
        self._fanout._unsubscribe(self)


class OpusFanout:
    """One Opus encoder for one PCM source; `subscribe()` gives each peer its own EncodedAudioTrack."""

    def __init__(self, source: AsyncIterable[bytes] | None) -> None:
        self._source = source
        self._tracks: set[EncodedAudioTrack] = set()
        self._task: asyncio.Task[None] | None = None
        self.packets = 0

    def subscribe(self) -> EncodedAudioTrack:
        track = EncodedAudioTrack(self)
        self._tracks.add(track)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._pump())
        return track

    def _unsubscribe(self, track: EncodedAudioTrack) -> None:
        self._tracks.discard(track)
        if not self._tracks and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _pump(self) -> None:
        pcm = PcmAudioTrack(self._source)
        encoder = av.CodecContext.create("libopus", "w")
        encoder.sample_rate = SAMPLE_RATE
        encoder.layout = "stereo"
        encoder.format = "s16"
        encoder.bit_rate = OPUS_BITRATE
        encoder.time_base = TIME_BASE
        encoder.options = {"application": "lowdelay", "frame_duration": "20"}
        encoder.open()
        try:
            while True:
                frame = await pcm.recv()
                for packet in encoder.encode(frame):
                    packet.time_base = TIME_BASE
                    self.packets += 1
                    for track in tuple(self._tracks):
                        track._offer(packet)
        except (asyncio.CancelledError, MediaStreamError):
            pass
        except Exception:
            log.exception("opus fan-out stopped")
        finally:
            pcm.stop()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        for track in tuple(self._tracks):
            track._offer(None)
        self._tracks.clear()
