"""Capture + encode worker process: x11grab -> H.264 -> length-prefixed packets on stdout.

Runs as `python -m playcast.media.capture_proc` so capture and encode never touch the server's event loop or GIL.
Commands arrive on stdin, one byte each: S start, P pause, K keyframe, B<u32 kbps> bitrate.

Output records (little endian): header `<BIdI` = flags (1 keyframe, 2 hello), frame index, capture time (unix s),
payload size; then the payload (Annex-B H.264, or the encoder name for hello)."""

from __future__ import annotations

import argparse
import logging
import os
import struct
import sys
import threading
import time

HEADER = struct.Struct("<BIdI")
FLAG_KEY = 1
FLAG_HELLO = 2

log = logging.getLogger("playcast.media.capture_proc")


class Controls:
    """State shared between the stdin reader thread and the capture loop."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = threading.Event()
        self.keyframe = False
        self.bitrate_kbps: int | None = None
        self.closed = False

    def read_forever(self, fd: int) -> None:
        while True:
            cmd = os.read(fd, 1)
            if not cmd:
                self.closed = True
                self.running.set()
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
                            self.closed = True
                            self.running.set()
                            return
                        raw += more
                    self.bitrate_kbps = struct.unpack("<I", raw)[0]

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


def run(display: str, width: int, height: int, fps: int, bitrate_kbps: int, preference: str) -> None:
    import av
    from av.video.frame import PictureType

    from playcast.media.encoding import (
        EncoderSettings,
        choose_encoder,
        codec_usable,
        input_format,
        make_context,
    )

    name = choose_encoder(preference, codec_usable)
    settings = EncoderSettings(width, height, fps, bitrate_kbps)
    encoder = make_context(name, settings)
    pix_fmt = input_format(name)
    write_record(FLAG_HELLO, 0, time.time(), name.encode())

    controls = Controls()
    threading.Thread(target=controls.read_forever, args=(0,), daemon=True).start()
    index = 0
    while True:
        controls.running.wait()
        if controls.closed:
            return
        container = av.open(display, format="x11grab", options={
            "framerate": str(fps), "video_size": f"{width}x{height}", "draw_mouse": "0",
        })
        try:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if controls.closed or not controls.running.is_set():
                    break
                for frame in packet.decode():
                    captured = time.time()
                    bitrate = controls.take_bitrate()
                    if bitrate:
                        encoder.close()
                        settings = EncoderSettings(width, height, fps, bitrate)
                        encoder = make_context(name, settings)
                        with controls.lock:
                            controls.keyframe = True
                    out = frame.reformat(format=pix_fmt) if frame.format.name != pix_fmt else frame
                    out.pts = index
                    out.time_base = encoder.time_base
                    # Decoded raw frames come marked as I: clear it, or every frame would become an IDR.
                    out.pict_type = PictureType.I if controls.take_keyframe() else PictureType.NONE
                    for encoded in encoder.encode(out):
                        flags = FLAG_KEY if encoded.is_keyframe else 0
                        write_record(flags, index, captured, bytes(encoded))
                    index += 1
        finally:
            container.close()
        if controls.closed:
            return


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
