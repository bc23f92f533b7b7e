"""WHEP load generator (its own process): N receive-only WebRTC viewers that count frames without decoding them.

Usage: python whep_load.py URL --viewers N --seconds S [--token T]  -> prints one JSON line with per-viewer figures.
Decoding is replaced by counting, so the client machine's CPU goes to receiving (SRTP, jitter buffer), not to
H.264 decoding: what is measured is what the server sends."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiortc.rtcrtpreceiver as receiver_module
import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.base import Decoder


class CountingDecoder(Decoder):
    """Counts complete encoded frames handed to the decoder; decodes nothing."""

    frames: dict[int, int] = {}
    bytes: dict[int, int] = {}

    def __init__(self, video: bool) -> None:
        self.key = id(self)
        self.video = video
        if video:
            CountingDecoder.frames[self.key] = 0
            CountingDecoder.bytes[self.key] = 0

    def decode(self, encoded_frame):  # type: ignore[no-untyped-def]
        if self.video:
            CountingDecoder.frames[self.key] += 1
            CountingDecoder.bytes[self.key] += len(encoded_frame.data)
        return []


receiver_module.get_decoder = lambda codec: CountingDecoder(codec.mimeType.startswith("video/"))  # type: ignore[assignment]


class Viewer:
    def __init__(self, url: str, token: str | None, http: httpx.AsyncClient) -> None:
        self.url, self.token, self.http = url, token, http
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.location = ""

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/sdp"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    async def connect(self) -> None:
        pc = self.pc
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")

        @pc.on("track")
        def on_track(track) -> None:  # type: ignore[no-untyped-def]
            async def drain() -> None:
                while True:
                    try:
                        await track.recv()
                    except Exception:
                        return

            asyncio.ensure_future(drain())

        await pc.setLocalDescription(await pc.createOffer())
        r = await self.http.post(self.url, content=pc.localDescription.sdp, headers=self._headers())
        r.raise_for_status()
        self.location = str(self.http.base_url.join(r.headers["location"])) if not r.headers["location"].startswith(
            "http") else r.headers["location"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        t0 = time.monotonic()
        while pc.connectionState != "connected" and time.monotonic() - t0 < 30:
            await asyncio.sleep(0.05)

    async def video_stats(self) -> tuple[int, int]:
        stats = await self.pc.getStats()
        v = next((s for s in stats.values() if s.type == "inbound-rtp" and s.kind == "video"), None)
        return (v.packetsReceived, v.packetsLost) if v else (0, 0)

    async def close(self) -> None:
        await self.http.delete(self.location, headers=self._headers())
        await self.pc.close()


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
        f0, b0 = dict(CountingDecoder.frames), dict(CountingDecoder.bytes)
        s0 = await asyncio.gather(*(v.video_stats() for v in viewers))
        t0 = time.monotonic()
        await asyncio.sleep(args.seconds)
        f1, b1 = dict(CountingDecoder.frames), dict(CountingDecoder.bytes)
        s1 = await asyncio.gather(*(v.video_stats() for v in viewers))
        dt = time.monotonic() - t0
        await asyncio.gather(*(v.close() for v in viewers))
    fps = sorted((f1[k] - f0.get(k, 0)) / dt for k in f1)
    lost = sum(max(0, b[1] - a[1]) for a, b in zip(s0, s1, strict=True))
    packets = sum(max(0, b[0] - a[0]) for a, b in zip(s0, s1, strict=True))
    mbps = sum(b1[k] - b0.get(k, 0) for k in b1) * 8 / dt / 1e6 / max(1, len(b1))
    print(json.dumps({"event": "done", "viewers": args.viewers, "seconds": dt, "fps_min": fps[0] if fps else 0,
                      "fps_median": fps[len(fps) // 2] if fps else 0, "packets": packets, "lost": lost, "mbps_per_viewer": mbps,
                      "decoders": len(fps)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
