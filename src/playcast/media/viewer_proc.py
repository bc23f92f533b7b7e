"""Viewer worker process: the WebRTC peers of up to N receive-only (WHEP) viewers of one session, off the server.

Runs as `python -m playcast.media.viewer_proc`; knows aiortc and packets, nothing of HTTP or the database.
Records both ways are `<BI` = kind, payload size, then the payload (no pickle). Host -> worker:
  V video: `<BId` flags (1 keyframe), frame index, capture time, then the Annex-B access unit
  A opus: `<q` pts (1/48000 s), then the Opus packet
  N add viewer: id NUL offer JSON      R remove viewer: id      S stop
Worker -> host:
  H hello (ready)      a answer: id NUL answer JSON      e error: id NUL kind (offer|internal) NUL message
  s viewer state: id NUL state (failed|closed: the viewer is gone)      k keyframe request: why
  t stats: JSON {"viewers": n, "dropped": video packets dropped by this worker's viewers so far}"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
import sys
from collections.abc import Coroutine

import av

from playcast.media.encoder import EncodedPacket
from playcast.media.fanout import PacketFanout, PacketSink
from playcast.media.ice import ICE_ENV, IceSettings
from playcast.media.opus_fanout import TIME_BASE, EncodedAudioTrack, OpusFanout
from playcast.media.peer import ClientPeer, OfferError

HEADER = struct.Struct("<BI")
VIDEO_HEADER = struct.Struct("<BId")
AUDIO_HEADER = struct.Struct("<q")
FLAG_KEY = 1

VIDEO, AUDIO, ADD, REMOVE, STOP = b"V"[0], b"A"[0], b"N"[0], b"R"[0], b"S"[0]
HELLO, ANSWER, ERROR, STATE, KEYFRAME, STATS = b"H"[0], b"a"[0], b"e"[0], b"s"[0], b"k"[0], b"t"[0]

STATS_INTERVAL_S = 2.0
VIEWER_QUEUE_PACKETS = 30  # each viewer's bounded sink, as when viewers ran in the server

log = logging.getLogger("playcast.media.viewer_proc")


def record(kind: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def split(payload: bytes, parts: int) -> list[str]:
    """`parts` NUL-separated UTF-8 fields (the last one may contain NULs)."""
    return payload.decode(errors="replace").split("\0", parts - 1)


class ViewerWorker:
    """The worker's state: a local fan-out fed from the pipe, an Opus relay, and one ClientPeer per viewer."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._video: asyncio.Queue[EncodedPacket | None] = asyncio.Queue(8)
        self.fanout = PacketFanout(self._video.get, self._want_keyframe)
        self.audio = OpusRelay()
        raw_ice = os.environ.get(ICE_ENV)
        self.ice = IceSettings.from_json(raw_ice) if raw_ice else IceSettings()  # the host's, handed over in env
        self.viewers: dict[str, ClientPeer] = {}
        self._tasks: set[asyncio.Future[None]] = set()

    def _want_keyframe(self) -> None:
        self.send(KEYFRAME, b"viewer sink")

    def send(self, kind: int, payload: bytes = b"") -> None:
        if not self._writer.is_closing():
            self._writer.write(record(kind, payload))

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, reader: asyncio.StreamReader) -> None:
        self.fanout.start()
        self._spawn(self._stats())
        self.send(HELLO, str(os.getpid()).encode())
        try:
            while True:
                try:
                    kind, size = HEADER.unpack(await reader.readexactly(HEADER.size))
                    body = await reader.readexactly(size)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the host went away: same as stop
                if kind == VIDEO:
                    flags, index, at = VIDEO_HEADER.unpack_from(body)
                    await self._video.put(EncodedPacket(body[VIDEO_HEADER.size:], bool(flags & FLAG_KEY),
                                                        index, at))
                elif kind == AUDIO:
                    (pts,) = AUDIO_HEADER.unpack_from(body)
                    self.audio.relay(body[AUDIO_HEADER.size:], pts)
                elif kind == ADD:
                    viewer_id, offer = split(body, 2)
                    self._spawn(self._add(viewer_id, offer))
                elif kind == REMOVE:
                    self._spawn(self._remove(body.decode(errors="replace")))
                elif kind == STOP:
                    return
                else:
                    log.warning("unknown record kind %r", kind)
        finally:
            await self.close()

    async def _add(self, viewer_id: str, offer: str) -> None:
        fanout = self.fanout

        def open_sink() -> PacketSink:
            return fanout.add_sink(f"viewer-{viewer_id}", max_packets=VIEWER_QUEUE_PACKETS)

        def state(value: str) -> None:
            if value in ("failed", "closed") and self.viewers.get(viewer_id) is peer:
                del self.viewers[viewer_id]
                self.send(STATE, f"{viewer_id}\0{value}".encode())
                self._spawn(peer.close())

        peer = ClientPeer(open_sink, self.audio.subscribe(), on_input=_ignore, on_message=_ignore, on_state=state,
                          ice=self.ice)
        try:
            answer = await peer.answer(offer)
        except OfferError as exc:
            await peer.close()
            self.send(ERROR, f"{viewer_id}\0offer\0{exc}".encode())
            return
        except Exception as exc:
            log.exception("viewer %s: answer failed", viewer_id)
            await peer.close()
            self.send(ERROR, f"{viewer_id}\0internal\0{type(exc).__name__}: {exc}".encode())
            return
        self.viewers[viewer_id] = peer
        self.send(ANSWER, f"{viewer_id}\0{answer}".encode())

    async def _remove(self, viewer_id: str) -> None:
        peer = self.viewers.pop(viewer_id, None)
        if peer is not None:
            await peer.close()

    async def _stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL_S)
            self.send(STATS, json.dumps({"viewers": len(self.viewers), "dropped": self.fanout.dropped}).encode())

    async def close(self) -> None:
        peers, self.viewers = list(self.viewers.values()), {}
        if peers:
            await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)  # each bounded (5 s)
        await self.fanout.stop()
        await self.audio.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _ignore(_: bytes) -> None:
    """Viewers cannot drive the game."""


class OpusRelay(OpusFanout):
    """The session's Opus packets, from the pipe, to every viewer's EncodedAudioTrack (no encoder here)."""

    def __init__(self) -> None:
        super().__init__(None)

    def subscribe(self) -> EncodedAudioTrack:
        track = EncodedAudioTrack(self)
        self._tracks.add(track)
        return track

    def relay(self, data: bytes, pts: int) -> None:
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = TIME_BASE
        for track in tuple(self._tracks):
            track._offer(packet)


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0))
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                        os.fdopen(1, "wb", buffering=0))
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    worker = ViewerWorker(writer)
    await worker.run(reader)
    writer.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="viewers %(levelname)s %(name)s %(message)s")
    logging.getLogger("playcast").setLevel(logging.INFO)
    try:
        asyncio.run(serve())
    except (BrokenPipeError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
