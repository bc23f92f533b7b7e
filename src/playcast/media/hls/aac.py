"""AAC-LC encoding of session audio for HLS, on its own thread, on the video's clock (silence fills gaps).

Takes 20 ms s16le stereo 48 kHz PCM chunks, hands out (sample position, AAC frame) pairs; never muxes."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
CHANNELS = 2
FRAME_SAMPLES = 1024
GAP_S = 0.25  # audio this far behind (or ahead of) where it should be gets silence (or is dropped)
SILENCE_AFTER_S = 0.2  # no PCM for this long while video goes on: fill with silence


@dataclass(frozen=True)
class AacFrame:
    position: int  # first sample, counted from the broadcast's time zero (48 kHz)
    data: bytes


class AacEncoder:
    """A PyAV `aac` encoder on a worker thread. `push()` is cheap (a queue put) and safe on the event loop.

    Encoded frames go to every deque in `outputs` (one per rendition); readers pop them from the left."""

    def __init__(self, bitrate: int = 128_000) -> None:
        self.bitrate = bitrate
        self._codec = av.CodecContext.create("aac", "w")
        self._codec.sample_rate = SAMPLE_RATE
        self._codec.layout = "stereo"
        self._codec.format = "fltp"
        self._codec.bit_rate = bitrate
        self._codec.time_base = Fraction(1, SAMPLE_RATE)
        self._codec.open()
        extradata = self._codec.extradata
        self.asc = bytes(extradata) if extradata else bytes([0x11, 0x90])  # AAC-LC, 48 kHz, stereo
        self.outputs: list[deque[AacFrame]] = []
        self._inbox: queue.Queue[tuple[bytes, float] | None] = queue.Queue(maxsize=500)
        self._t0: float | None = None
        self.video_clock = 0.0  # seconds since t0 the video has reached (set by the packager)
        self._next_pos: int | None = None  # sample position of the next PCM sample fed to the encoder
        self._pending = np.zeros((CHANNELS, 0), dtype=np.float32)
        self._pending_pos = 0
        self._last_pcm = 0.0
        self.frames = 0
        self.silence_samples = 0
        self.dropped_chunks = 0
        self._thread = threading.Thread(target=self._run, name="hls-aac", daemon=True)
        self._thread.start()

    def set_time_zero(self, t0: float) -> None:
        """Unix time of video time zero; PCM captured before it is dropped."""
        self._t0 = t0

    def push(self, pcm: bytes, at: float | None = None) -> None:
        """One PCM chunk captured starting at unix time `at` (default: it just ended, 20 ms chunks)."""
        if at is None:
            at = time.time() - len(pcm) / (CHANNELS * 2 * SAMPLE_RATE)
        try:
            self._inbox.put_nowait((pcm, at))
        except queue.Full:
            self.dropped_chunks += 1

    def close(self, timeout: float = 5.0) -> None:
        """Encode what is queued, flush the encoder, stop the thread."""
        self._inbox.put(None)
        self._thread.join(timeout)

    # ---------------------------------------------------------------- worker thread
    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self._inbox.get(timeout=0.05)
                except queue.Empty:
                    self._fill_silence()
                    continue
                if item is None:
                    self._flush()
                    return
                self._chunk(*item)
        except Exception:  # noqa: BLE001 - a broken encoder must not take the broadcast down
            log.exception("AAC encoder thread failed; the HLS stream continues without new audio")

    def _chunk(self, pcm: bytes, at: float) -> None:
        if self._t0 is None or len(pcm) % (CHANNELS * 2):
            self.dropped_chunks += 1
            return
        expected = round((at - self._t0) * SAMPLE_RATE)
        samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, CHANNELS).T.astype(np.float32) / 32768.0
        n = samples.shape[1]
        if self._next_pos is None:
            if expected + n <= 0:
                return
            if expected < 0:
                samples = samples[:, -expected:]
                expected = 0
            self._next_pos = expected
        drift = expected - self._next_pos
        if drift > GAP_S * SAMPLE_RATE:
            self._feed(np.zeros((CHANNELS, drift), dtype=np.float32))
            self.silence_samples += drift
        elif drift < -GAP_S * SAMPLE_RATE:
            self.dropped_chunks += 1  # ahead of the clock: drop rather than drift
            return
        self._last_pcm = time.monotonic()
        self._feed(samples)

    def _fill_silence(self) -> None:
        if self._t0 is None or time.monotonic() - self._last_pcm < SILENCE_AFTER_S:
            return
        target = round((self.video_clock - 0.1) * SAMPLE_RATE)
        if self._next_pos is None:
            if self.video_clock < GAP_S:
                return
            self._next_pos = 0
        missing = target - self._next_pos
        if missing > GAP_S * SAMPLE_RATE:
            missing -= missing % FRAME_SAMPLES
            self._feed(np.zeros((CHANNELS, missing), dtype=np.float32))
            self.silence_samples += missing

    def _feed(self, samples: np.ndarray) -> None:
        assert self._next_pos is not None
        if self._pending.shape[1] == 0:
            self._pending_pos = self._next_pos
        self._pending = np.concatenate([self._pending, samples], axis=1)
        self._next_pos += samples.shape[1]
        while self._pending.shape[1] >= FRAME_SAMPLES:
            block = np.ascontiguousarray(self._pending[:, :FRAME_SAMPLES])
            self._pending = self._pending[:, FRAME_SAMPLES:]
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = self._pending_pos
            frame.time_base = Fraction(1, SAMPLE_RATE)
            self._pending_pos += FRAME_SAMPLES
            self._emit(self._codec.encode(frame))

    def _flush(self) -> None:
        try:
            self._emit(self._codec.encode(None))
        except av.error.EOFError:
            pass

    def _emit(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            if packet.pts is None or packet.pts < 0:
                continue  # encoder priming before time zero
            item = AacFrame(int(packet.pts), bytes(packet))
            self.frames += 1
            for out in self.outputs:
                out.append(item)
