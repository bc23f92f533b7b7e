"""Capture + encode worker process: the X display when the game drew (x11capture) -> H.264 -> length-prefixed
packets on stdout.

Runs as `python -m playcast.media.capture_proc` so capture and encode never touch the server's event loop or GIL.
Frames follow the game's drawing (at most --fps a second); an unchanged screen is re-sent every
REFRESH_AFTER_PERIODS frame periods without reading or converting it again.
Commands arrive on stdin, one byte each: S start, P pause, K keyframe, B<u32 kbps> bitrate.

Output records (little endian): header `<BIdI` = flags (1 keyframe, 2 hello), frame index, capture time (unix s),
payload size; then the payload (Annex-B H.264, or the encoder name for hello)."""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from av.video.frame import PictureType

if TYPE_CHECKING:
    from playcast.media.x11capture import Grab, X11Capture

HEADER = struct.Struct("<BIdI")
FLAG_KEY = 1
FLAG_HELLO = 2

log = logging.getLogger("playcast.media.capture_proc")


class Controls:
    """State shared between the stdin reader thread and the capture loop."""

    def __init__(self, wake: Callable[[], None] = lambda: None) -> None:
        self._wake = wake  # interrupts the capture loop's wait for damage
        self.lock = threading.Lock()
        self.running = threading.Event()
        self.keyframe = False
        self.bitrate_kbps: int | None = None
        self.closed = False

    def read_forever(self, fd: int) -> None:
        while True:
            cmd = os.read(fd, 1)
            if not cmd:
                self._close()
                return
            with self.lock:
                if cmd == b"S":
                    self.keyframe = True
                    self.running.set()
                elif cmd == b"P":
                    self.running.clear()
                elif cmd == b"K":
                    self.keyframe = True
                elif cmd == b"B":
                    raw = b""
                    while len(raw) < 4:
                        more = os.read(fd, 4 - len(raw))
                        if not more:
                            self._close()
                            return
                        raw += more
                    self.bitrate_kbps = struct.unpack("<I", raw)[0]
            self._wake()

    def _close(self) -> None:
        self.closed = True
        self.running.set()
        self._wake()

    def ask_keyframe(self) -> None:
        with self.lock:
            self.keyframe = True

    def take_keyframe(self) -> bool:
        with self.lock:
            k, self.keyframe = self.keyframe, False
            return k

    def take_bitrate(self) -> int | None:
        with self.lock:
            b, self.bitrate_kbps = self.bitrate_kbps, None
            return b


def write_record(flags: int, index: int, at: float, payload: bytes) -> None:
    data = HEADER.pack(flags, index, at, len(payload)) + payload
    view = memoryview(data)
    while view:
        n = os.write(1, view)
        view = view[n:]


REFRESH_AFTER_PERIODS = 2  # an unchanged screen is re-sent after this many frame periods (HLS parts rely on it)
SAFETY_GRAB_S = 1.0  # and read for real at least this often, in case some drawing raised no damage


def run(display: str, width: int, height: int, fps: int, bitrate_kbps: int, preference: str) -> None:
    from playcast.media.encoding import EncoderSettings, choose_encoder, codec_usable, make_context
    from playcast.media.x11capture import X11Capture

    name = choose_encoder(preference, codec_usable)
    encoder = make_context(name, EncoderSettings(width, height, fps, bitrate_kbps))
    capture = X11Capture(display, width, height, fps)
    picture = Picture(capture, name)
    write_record(FLAG_HELLO, 0, time.time(), name.encode())

    controls = Controls(wake=capture.wake)
    threading.Thread(target=controls.read_forever, args=(0,), daemon=True).start()
    refresh_s = REFRESH_AFTER_PERIODS / fps
    index = 0
    read_at = 0.0  # monotonic time of the last read
    try:
        while True:
            if not controls.running.is_set():
                controls.running.wait()  # paused (a warm slot): nothing is read or encoded
                read_at = 0.0  # the screen may have changed meanwhile: read it
            if controls.closed:
                return
            if time.monotonic() - read_at >= SAFETY_GRAB_S:
                grab: Grab | None = capture.read_now()
            else:
                grab = capture.next_grab(refresh_s)  # None: nothing drawn (re-send the picture) or a command
            if controls.closed:
                return
            if not controls.running.is_set():
                continue
            if grab is not None:
                picture.fill(grab)
                read_at = time.monotonic()
                captured = grab.captured_at
            else:
                captured = time.time()
            bitrate = controls.take_bitrate()
            if bitrate:
                encoder = make_context(name, EncoderSettings(width, height, fps, bitrate))
                controls.ask_keyframe()
            frame = picture.frame
            frame.pts = index
            frame.time_base = encoder.time_base
            frame.pict_type = PictureType.I if controls.take_keyframe() else PictureType.NONE
            for encoded in encoder.encode(frame):
                write_record(FLAG_KEY if encoded.is_keyframe else 0, index, captured, bytes(encoded))
            index += 1
    finally:
        capture.close()


class Picture:
    """The frame handed to the encoder, filled in place from each grab: I420 through libyuv for x264, the BGRX
    pixels as they are for NVENC. The encoders copy their input during encode(), so one frame serves them all."""

    def __init__(self, capture: X11Capture, encoder_name: str) -> None:
        import av

        from playcast.media.encoding import input_format

        self._capture = capture
        self.frame = av.VideoFrame(capture.width, capture.height, input_format(encoder_name))
        self._planes = [(_address(p), p.line_size) for p in self.frame.planes]
        self._i420 = input_format(encoder_name) == "yuv420p"

    def fill(self, grab: Grab) -> None:
        if self._i420:
            (y, ys), (u, us), (v, vs) = self._planes
            self._capture.to_i420(grab, y, ys, u, us, v, vs)
        else:
            dst, dst_stride = self._planes[0]
            row = self._capture.width * 4
            if dst_stride == grab.stride:
                ctypes.memmove(dst, grab.address, grab.stride * self._capture.height)
            else:
                for r in range(self._capture.height):
                    ctypes.memmove(dst + r * dst_stride, grab.address + r * grab.stride, row)


def _address(plane: object) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(plane))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--display", required=True)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=60)
    parser.add_argument("--bitrate-kbps", type=int, default=6000)
    parser.add_argument("--encoder", default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="capture %(levelname)s %(message)s")
    try:
        run(args.display, args.width, args.height, args.fps, args.bitrate_kbps, args.encoder)
    except BrokenPipeError:
        pass
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
