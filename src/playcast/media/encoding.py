"""H.264 encoder choice and settings: h264_nvenc when it really opens, libx264 otherwise.

Pure selection logic plus the PyAV codec-context factory; no capture, no I/O beyond probing a codec."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av

log = logging.getLogger(__name__)

NVENC = "h264_nvenc"
X264 = "libx264"

# What the user may ask for, and the encoders tried for it, in order.
PREFERENCES: dict[str, tuple[str, ...]] = {
    "auto": (NVENC, X264),
    "nvenc": (NVENC, X264),  # asked for NVENC: still falls back, with a warning, so a session never fails for it
    "x264": (X264,),
    NVENC: (NVENC, X264),
    X264: (X264,),
}


@dataclass(frozen=True)
class EncoderSettings:
    width: int
    height: int
    fps: int
    bitrate_kbps: int


def choose_encoder(preference: str, usable: Callable[[str], bool]) -> str:
    """Return the first encoder for `preference` that `usable` accepts; libx264 is the last resort."""
    try:
        candidates = PREFERENCES[preference]
    except KeyError:
        raise ValueError(f"unknown encoder preference {preference!r}; use one of {sorted(PREFERENCES)}") from None
    for name in candidates:
        if usable(name):
            if preference in ("nvenc", NVENC) and name != NVENC:
                log.warning("h264_nvenc requested but not usable on this host; falling back to %s", name)
            return name
    return X264


def codec_usable(name: str) -> bool:
    """True when FFmpeg has the encoder and it opens with a tiny frame (NVENC needs a GPU + driver)."""
    if name not in av.codecs_available:
        return False
    if name == X264:
        return True
    try:
        ctx = make_context(name, EncoderSettings(256, 144, 30, 500))
        frame = av.VideoFrame(256, 144, input_format(name))
        frame.pts = 0
        ctx.encode(frame)
        ctx.close()
        return True
    except Exception as exc:  # any failure to open means "not usable here"
        log.info("encoder %s not usable: %s", name, exc)
        return False


def input_format(name: str) -> str:
    """Pixel format handed to the encoder: NVENC takes X11's BGR0 directly; x264 needs YUV 4:2:0."""
    return "bgr0" if name == NVENC else "yuv420p"


def make_context(name: str, s: EncoderSettings) -> av.VideoCodecContext:
    """A low-latency H.264 context: no B-frames, no lookahead, infinite GOP, IDR only on request."""
    ctx = av.CodecContext.create(name, "w")
    ctx.width = s.width
    ctx.height = s.height
    ctx.pix_fmt = input_format(name)
    ctx.time_base = Fraction(1, s.fps)
    ctx.framerate = Fraction(s.fps, 1)
    ctx.bit_rate = s.bitrate_kbps * 1000
    ctx.max_b_frames = 0
    bufsize_kbit = max(s.bitrate_kbps // 4, 100)  # ~250 ms of VBV: keeps frames small and steady
    if name == NVENC:
        ctx.options = {
            "preset": "p1", "tune": "ull", "zerolatency": "1", "rc": "cbr", "delay": "0",
            "forced-idr": "1", "bf": "0", "g": str(2**31 - 1), "profile": "baseline",
            "maxrate": f"{s.bitrate_kbps}k", "bufsize": f"{bufsize_kbit}k",
        }
    else:
        ctx.options = {
            "preset": "ultrafast", "tune": "zerolatency", "profile": "baseline", "forced-idr": "1",
            "x264-params": (
                f"keyint=infinite:min-keyint=1:scenecut=0:repeat-headers=1:nal-hrd=none:"
                f"vbv-maxrate={s.bitrate_kbps}:vbv-bufsize={bufsize_kbit}:threads=2:sliced-threads=1"
            ),
        }
    ctx.open()
    return ctx
