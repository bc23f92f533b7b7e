"""An aiortc audio track fed by raw PCM chunks (s16le, stereo, 48 kHz, 20 ms), paced by the wall clock.

Turns chunks into av.AudioFrame with regular pts and fills gaps with silence; it must not start processes,
block the event loop or encode (aiortc encodes Opus itself). One track per source: fan out with MediaRelay.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from collections import deque
from collections.abc import AsyncIterable

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

logger = logging.getLogger(__name__)

SAMPLE_RATE = 48000
CHANNELS = 2
FRAME_SAMPLES = 960  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * CHANNELS * 2
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
_SILENCE = bytes(FRAME_BYTES)


class PcmAudioTrack(MediaStreamTrack):
    """Audio track returning one 960-sample s16 stereo av.AudioFrame every 20 ms.

    `source` is an async iterable of 3840-byte chunks (an ``AudioSink`` or its ``chunks()``) or None for a
    silent track.
    A background task reads the source into a small buffer; when the buffer holds more than `max_buffered`
    chunks the oldest are dropped, so latency stays bounded when the consumer falls behind. When no chunk is
    ready at a frame's time, that frame is silence. pts counts samples (time base 1/48000)."""

    kind = "audio"

    def __init__(self, source: AsyncIterable[bytes] | None = None, *, max_buffered: int = 4) -> None:
        super().__init__()
        self._source = source
        self._buffer: deque[bytes] = deque()
        self._max_buffered = max_buffered
        self._reader: asyncio.Task[None] | None = None
        self._start: float | None = None
        self._pts = 0
        self._pending = b""  # a partial chunk from a source that yields odd sizes
        self.frames_sent = 0
        self.frames_silent = 0  # frames filled with silence because no audio was ready
        self.chunks_dropped = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._reader is None and self._source is not None:
            self._reader = asyncio.create_task(self._read_source())
        now = time.monotonic()
        if self._start is None:
            self._start = now
            self._pts = 0
        else:
            self._pts += FRAME_SAMPLES
            due = self._start + self._pts / SAMPLE_RATE
            if now - due > 0.5:
                # the consumer stalled: jump to the present instead of bursting out old frames
                self._pts = int((now - self._start) * SAMPLE_RATE) // FRAME_SAMPLES * FRAME_SAMPLES
                due = self._start + self._pts / SAMPLE_RATE
            if due > now:
                await asyncio.sleep(due - now)
        if self.readyState != "live":
            raise MediaStreamError
        if self._buffer:
            data = self._buffer.popleft()
        else:
            data = _SILENCE
            self.frames_silent += 1
        frame = av.AudioFrame(format="s16", layout="stereo", samples=FRAME_SAMPLES)
        frame.planes[0].update(data)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self.frames_sent += 1
        return frame

    def stop(self) -> None:
        super().stop()
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        self._buffer.clear()

    async def _read_source(self) -> None:
        assert self._source is not None
        chunks = aiter(self._source)
        try:
            async for chunk in chunks:
                self._push(chunk)
            logger.debug("audio source ended; the track continues with silence")
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("audio source failed; the track continues with silence")
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def _push(self, chunk: bytes) -> None:
        if len(chunk) != FRAME_BYTES or self._pending:
            data = self._pending + chunk
            whole = len(data) - len(data) % FRAME_BYTES
            self._pending = data[whole:]
            pieces = [data[i:i + FRAME_BYTES] for i in range(0, whole, FRAME_BYTES)]
        else:
            pieces = [chunk]
        for piece in pieces:
            self._buffer.append(piece)
        while len(self._buffer) > self._max_buffered:
            self._buffer.popleft()
            self.chunks_dropped += 1
