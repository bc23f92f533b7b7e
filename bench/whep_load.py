"""WHEP load generator (its own process): N receive-only WebRTC viewers that check every packet and count frames.

Usage: python whep_load.py URL --viewers N --seconds S [--token T]  -> prints one JSON line when all are connected,
then one with per-viewer figures.

Each viewer is a full WebRTC endpoint (ICE with consent checks, DTLS, SRTP: every packet is decrypted), but the
receive path after SRTP is replaced by a counter: no jitter buffer, no depacketising, no decoding, no NACKs (so a lost
packet stays lost). A video frame counts as received whole when all its packets arrived (no sequence gap between the
previous frame's marker packet and its own). The client CPU thus goes to what every real viewer must do, and the
figures are what the server delivered."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import struct
import time
from dataclasses import dataclass, field

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdtlstransport import RTCDtlsTransport


@dataclass
class StreamCounter:
    """Packets, losses and whole frames of one RTP stream, from the fixed RTP header only."""

    packets: int = 0
    bytes: int = 0
    lost: int = 0
    frames: int = 0
    broken_frames: int = 0
    _last_seq: int | None = None
    _frame_ok: bool = True

    def add(self, seq: int, marker: bool, size: int) -> None:
        if self._last_seq is not None:
            gap = (seq - self._last_seq - 1) & 0xFFFF
            if gap >= 0x8000:
                return  # late or duplicate packet: already accounted as lost
            if gap:
                self.lost += gap
                self._frame_ok = False
        self._last_seq = seq
        self.packets += 1
        self.bytes += size
        if marker:
            if self._frame_ok:
                self.frames += 1
            else:
                self.broken_frames += 1
            self._frame_ok = True


@dataclass
class ViewerCounters:
    video_pts: set[int]
    video: StreamCounter = field(default_factory=StreamCounter)
    audio: StreamCounter = field(default_factory=StreamCounter)


async def _count_rtp(self: RTCDtlsTransport, data: bytes, arrival_time_ms: int) -> None:
    """Replaces aiortc's parse + route + receiver (jitter buffer, NACK, bitrate estimation) for these viewers."""
    counters: ViewerCounters | None = getattr(self, "_playcast_counters", None)
    if counters is None or len(data) < 12:
        return
    b1 = data[1]
    (seq,) = struct.unpack_from("!H", data, 2)
    stream = counters.video if (b1 & 0x7F) in counters.video_pts else counters.audio
    stream.add(seq, bool(b1 & 0x80), len(data))


RTCDtlsTransport._handle_rtp_data = _count_rtp  # type: ignore[method-assign]


def video_payload_types(sdp: str) -> set[int]:
    m = re.search(r"^m=video \d+ \S+ ([\d ]+)\r?$", sdp, re.M)
    if not m:
        raise ValueError("answer has no video m-line")
    return {int(pt) for pt in m.group(1).split()}


class Viewer:
    def __init__(self, url: str, token: str | None, http: httpx.AsyncClient) -> None:
        self.url, self.token, self.http = url, token, http
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.location = ""
        self.counters: ViewerCounters | None = None

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/sdp"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    async def connect(self) -> None:
        pc = self.pc
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        r = await self.http.post(self.url, content=pc.localDescription.sdp, headers=self._headers())
        r.raise_for_status()
        loc = r.headers["location"]
        self.location = loc if loc.startswith("http") else str(self.http.base_url.join(loc))
        self.counters = ViewerCounters(video_payload_types(r.text))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        for transceiver in pc.getTransceivers():  # bundled: one DTLS transport carries both streams
            transceiver.receiver.transport._playcast_counters = self.counters
        t0 = time.monotonic()
        while pc.connectionState != "connected" and time.monotonic() - t0 < 30:
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.http.delete(self.location, headers=self._headers())
        await self.pc.close()


def snapshot(viewers: list[Viewer]) -> list[tuple[int, int, int, int, int, int]]:
    out = []
    for v in viewers:
        c = v.counters
        assert c is not None
        out.append((c.video.frames, c.video.broken_frames, c.video.packets, c.video.lost, c.video.bytes,
                    c.audio.lost))
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("url")
    ap.add_argument("--viewers", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--token")
    args = ap.parse_args()
    base = args.url.split("/whep/")[0]
    async with httpx.AsyncClient(timeout=60, base_url=base) as http:
        viewers = [Viewer(args.url, args.token, http) for _ in range(args.viewers)]
        for i in range(0, len(viewers), 10):  # connect in batches, as an audience arrives
            await asyncio.gather(*(v.connect() for v in viewers[i:i + 10]))
        await asyncio.sleep(2.0)  # every viewer past its first keyframe
        print(json.dumps({"event": "connected", "viewers": len(viewers)}), flush=True)
        s0, t0 = snapshot(viewers), time.monotonic()
        await asyncio.sleep(args.seconds)
        s1, dt = snapshot(viewers), time.monotonic() - t0
        await asyncio.gather(*(v.close() for v in viewers))
    d = [tuple(b - a for a, b in zip(x, y, strict=True)) for x, y in zip(s0, s1, strict=True)]
    fps = sorted(x[0] / dt for x in d)
    print(json.dumps({"event": "done", "viewers": args.viewers, "seconds": dt,
                      "fps_min": fps[0], "fps_median": fps[len(fps) // 2], "fps_max": fps[-1],
                      "frames": sum(x[0] for x in d), "broken_frames": sum(x[1] for x in d),
                      "packets": sum(x[2] for x in d), "lost": sum(x[3] for x in d),
                      "audio_lost": sum(x[5] for x in d),
                      "mbps_per_viewer": sum(x[4] for x in d) * 8 / dt / 1e6 / len(d)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
