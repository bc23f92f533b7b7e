"""Publish to a WHIP endpoint with FFmpeg's own `whip` muxer (PyAV's FFmpeg), as OBS or a script would.

Usage: python -m tests.whip.ffmpeg_publisher URL TOKEN CERT KEY SECONDS R,G,B WxH. Real-time paced H.264
constrained baseline (libx264, no B-frames, GOP 1 s) + Opus 440 Hz tone; SIGTERM ends it cleanly (DELETE)."""

from __future__ import annotations

import math
import signal
import sys
import time
from fractions import Fraction

import av
import numpy as np

FPS = 30
RATE = 48000
OPUS_SAMPLES = 960


def main() -> int:
    url, token, cert, key, seconds, rgb, size = sys.argv[1:8]
    width, height = (int(v) for v in size.split("x"))
    color = [int(v) for v in rgb.split(",")]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    out = av.open(url, "w", format="whip", options={
        "authorization": token, "strict": "experimental", "cert_file": cert, "key_file": key,
        "handshake_timeout": "15000"})
    video = out.add_stream("libx264", rate=FPS)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.options = {"profile": "baseline", "preset": "ultrafast", "tune": "zerolatency", "bf": "0", "g": str(FPS)}
    audio = out.add_stream("libopus", rate=RATE)
    audio.layout = "stereo"
    audio.bit_rate = 64000
    base = np.zeros((height, width, 3), np.uint8)
    base[:, :] = color
    t0 = time.monotonic()
    n = a = 0
    try:
        while not stop and time.monotonic() - t0 < float(seconds):
            img = base.copy()
            img[:, (n * 4) % width] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = n, Fraction(1, FPS)
            for packet in video.encode(frame):
                out.mux(packet)
            while a * OPUS_SAMPLES < (n + 1) * RATE // FPS:
                t = (np.arange(OPUS_SAMPLES) + a * OPUS_SAMPLES) / RATE
                wave = (np.sin(2 * math.pi * 440 * t) * 8000).astype(np.int16)
                af = av.AudioFrame.from_ndarray(np.repeat(wave, 2).reshape(1, -1), format="s16", layout="stereo")
                af.sample_rate, af.pts, af.time_base = RATE, a * OPUS_SAMPLES, Fraction(1, RATE)
                for packet in audio.encode(af):
                    out.mux(packet)
                a += 1
            n += 1
            delay = t0 + n / FPS - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    finally:
        out.close()  # the muxer DELETEs its WHIP session here
    print(f"published {n} video frames, {a} audio frames", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
