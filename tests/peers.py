"""WebRTC test peers: a player as the GameLift Streams Web SDK makes one (receives video and audio, opens the
input and messages data channels) that records every decoded frame.

Real aiortc peers, no mocks; each test closes what it opens."""

from __future__ import annotations

import asyncio
import json
import time

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription


class PlayerPeer:
    """A real WebRTC client (aiortc) that decodes the video it receives."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.input = self.pc.createDataChannel("input")
        self.messages = self.pc.createDataChannel("messages")
        self.frames: list[tuple[float, int, int]] = []
        self.first_frame = asyncio.get_running_loop().create_future()
        self.pc.on("track", self._track)

    def _track(self, track) -> None:  # type: ignore[no-untyped-def]
        if track.kind != "video":
            return

        async def read() -> None:
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                self.frames.append((time.monotonic(), frame.width, frame.height))
                if not self.first_frame.done():
                    self.first_frame.set_result(time.monotonic())

        asyncio.ensure_future(read())

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return json.dumps({"type": "offer", "sdp": self.pc.localDescription.sdp})

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(**json.loads(answer)))

    async def close(self) -> None:
        await self.pc.close()
