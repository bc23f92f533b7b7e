"""Fuzz of the application-message bridge over real loopback TCP (`[clientId:1][type:1][len:2 BE][payload]`).

Game -> bridge: any frame stream, cut at any points, is reassembled into exactly the messages for connected clients,
in order; a frame of another type or a stream that ends mid-frame drops that connection only (documented), and
the next game connection works. Bridge -> game: any sequence of client joins, leaves and messages (oversize and bad
ids included) gives the documented return values and exactly the modelled frames, with and without queueing."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from playcast.host.appmessages import (
    MAX_PAYLOAD,
    TYPE_CONNECTED,
    TYPE_DISCONNECTED,
    TYPE_MESSAGE,
    AppMessageBridge,
)
from tests.fuzz.support import LoopThread, bounded

MARKER_CLIENT = 255  # connected in every example and never fuzzed: its frames mark "everything before arrived"
EXAMPLE_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("appmessages-fuzz")
    yield thread
    thread.close()


def frame(client_id: int, frame_type: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BBH", client_id, frame_type, len(payload)) + payload


class Game:
    """The game's side of the socket, written here from the wire format."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def dial(cls, bridge: AppMessageBridge) -> Game:
        assert bridge.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await bridge.wait_game_connected(5)
        return cls(reader, writer)

    async def read_frame(self) -> tuple[int, int, bytes] | None:
        """The next frame, or None at EOF/reset."""
        try:
            client_id, frame_type, length = struct.unpack(">BBH", await self.reader.readexactly(4))
            return client_id, frame_type, await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def joins(self, n: int) -> list[tuple[int, int, bytes]]:
        """The type-0 frames the bridge sends first on every connection."""
        return [await asyncio.wait_for(self.read_frame(), 10) for _ in range(n)]  # type: ignore[misc]

    async def frames_until_marker(self) -> list[tuple[int, int, bytes]]:
        """Frames up to the marker client's leave frame."""
        out = []
        while (got := await asyncio.wait_for(self.read_frame(), 10)) is not None:
            if got[:2] == (MARKER_CLIENT, TYPE_DISCONNECTED):
                return out
            out.append(got)
        raise AssertionError(f"connection ended before the marker frame; got {out}")

    async def write_chunks(self, data: bytes, cuts: list[int]) -> bool:
        """Write `data` cut at `cuts`, letting the bridge read between writes; False if the bridge hung up."""
        bounds = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
        try:
            for start, end in zip(bounds, bounds[1:], strict=False):
                self.writer.write(data[start:end])
                await self.writer.drain()
                await asyncio.sleep(0)
        except ConnectionError:
            return False
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


class Inbox:
    def __init__(self) -> None:
        self.items: list[tuple[int, bytes]] = []
        self.marker = asyncio.Event()

    def __call__(self, client_id: int, payload: bytes) -> None:
        if client_id == MARKER_CLIENT:
            self.marker.set()
        else:
            self.items.append((client_id, payload))

    async def wait_marker(self) -> None:
        await asyncio.wait_for(self.marker.wait(), 10)
        self.marker.clear()


payloads = st.binary(max_size=300) | st.integers(0, MAX_PAYLOAD).map(lambda n: bytes([n % 251]) * n)
fuzzed_ids = st.integers(0, MARKER_CLIENT - 1)


@dataclass
class GameStream:
    clients: list[int]
    frames: list[tuple[int, int, bytes]]  # from the game, in order
    tail: bytes  # bytes of one more frame, cut short (b"": the stream ends cleanly)
    cuts: list[int]

    @property
    def kind(self) -> str:
        if any(t != TYPE_MESSAGE for _, t, _ in self.frames):
            return "garbage frame"
        return "cut mid-frame" if self.tail else "clean stream"


@st.composite
def game_streams(draw: st.DrawFn) -> GameStream:
    clients = draw(st.lists(fuzzed_ids, max_size=6, unique=True))
    ids = st.sampled_from(clients) | fuzzed_ids if clients else fuzzed_ids
    frames = draw(st.lists(st.tuples(ids, st.just(TYPE_MESSAGE), payloads), max_size=8))
    if draw(st.integers(0, 3)) == 0:  # a frame of a type the game may not send, anywhere in the stream
        bad_type = draw(st.integers(0, 255).filter(lambda t: t != TYPE_MESSAGE))
        frames.insert(draw(st.integers(0, len(frames))), (draw(ids), bad_type, draw(st.binary(max_size=16))))
    tail = b""
    if draw(st.booleans()):
        whole = frame(draw(ids), TYPE_MESSAGE, draw(st.binary(min_size=1, max_size=64)))
        tail = whole[:draw(st.integers(1, len(whole) - 1))]
    total = sum(4 + len(p) for _, _, p in frames) + len(tail)
    cuts = draw(st.lists(st.integers(0, max(total, 1)), max_size=12))
    return GameStream(clients, frames, tail, cuts)


async def _game_stream(stream: GameStream) -> None:
    inbox = Inbox()
    bridge = AppMessageBridge(inbox)
    await bridge.start()
    try:
        for client_id in [*stream.clients, MARKER_CLIENT]:
            bridge.client_connected(client_id)
        joined = sorted([*stream.clients, MARKER_CLIENT])
        expected: list[tuple[int, bytes]] = []
        garbage = False
        for client_id, frame_type, payload in stream.frames:
            if frame_type != TYPE_MESSAGE:
                garbage = True
                break
            if client_id in stream.clients:
                expected.append((client_id, payload))
        data = b"".join(frame(*f) for f in stream.frames) + stream.tail
        game = await Game.dial(bridge)
        assert await game.joins(len(joined)) == [(c, TYPE_CONNECTED, b"") for c in joined]
        if not garbage and not stream.tail:
            data += frame(MARKER_CLIENT, TYPE_MESSAGE, b"end")
        await game.write_chunks(data, stream.cuts)
        if stream.tail and not garbage:
            game.writer.write_eof()  # the game goes away mid-frame
        if garbage or stream.tail:
            assert await asyncio.wait_for(game.read_frame(), 10) is None  # the bridge dropped this connection
        else:
            await inbox.wait_marker()
        await game.close()
        assert inbox.items == expected
        # the listener survives: the next game connection hears who is there and is heard
        again = await Game.dial(bridge)
        assert await again.joins(len(joined)) == [(c, TYPE_CONNECTED, b"") for c in joined]
        again.writer.write(frame(MARKER_CLIENT, TYPE_MESSAGE, b"again"))
        await inbox.wait_marker()
        await again.close()
        assert inbox.items == expected
    finally:
        await bridge.close()


@bounded(100)
@given(game_streams())
def test_game_frames_cut_anywhere_are_reassembled_and_garbage_drops_only_that_connection(
        loop: LoopThread, stream: GameStream) -> None:
    event(stream.kind)
    loop.run(_game_stream(stream), EXAMPLE_TIMEOUT_S)


client_ids = fuzzed_ids | st.integers(-3, 300).filter(lambda i: i != MARKER_CLIENT)
operations = st.lists(st.one_of(
    st.tuples(st.just("join"), client_ids),
    st.tuples(st.just("leave"), client_ids),
    st.tuples(st.just("send"), client_ids, payloads | st.integers(MAX_PAYLOAD + 1, MAX_PAYLOAD + 9).map(bytes)),
), max_size=24)


class BridgeModel:
    """What the bridge's docstring promises, for one game connection that may come after some operations."""

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.clients: set[int] = {MARKER_CLIENT}
        self.queue: list[tuple[int, bytes]] = []
        self.max_messages, self.max_bytes = max_messages, max_bytes
        self.game = False
        self.frames: list[tuple[int, int, bytes]] = []

    def apply(self, op: tuple) -> object:  # type: ignore[type-arg]
        """The documented result of the operation: True/False/None, or the ValueError class."""
        kind, client_id = op[0], op[1]
        if not 0 <= client_id <= 255 or (kind == "send" and len(op[2]) > MAX_PAYLOAD):
            return ValueError
        if kind == "join":
            if client_id not in self.clients:
                self.clients.add(client_id)
                if self.game:
                    self.frames.append((client_id, TYPE_CONNECTED, b""))
            return None
        if kind == "leave":
            if client_id in self.clients:
                self.clients.discard(client_id)
                if self.game:
                    self.frames.append((client_id, TYPE_DISCONNECTED, b""))
            return None
        payload = op[2]
        if client_id not in self.clients:
            return False
        if not self.game:
            if len(self.queue) >= self.max_messages or sum(len(p) for _, p in self.queue) + len(payload) > self.max_bytes:
                return False
            self.queue.append((client_id, payload))
            return True
        self.frames.append((client_id, TYPE_MESSAGE, payload))
        return True

    def game_connects(self) -> None:
        self.game = True
        self.frames += [(c, TYPE_CONNECTED, b"") for c in sorted(self.clients)]
        self.frames += [(c, TYPE_MESSAGE, p) for c, p in self.queue if c in self.clients]
        self.queue = []


def _call(bridge: AppMessageBridge, op: tuple) -> object:  # type: ignore[type-arg]
    kind, client_id = op[0], op[1]
    try:
        if kind == "join":
            return bridge.client_connected(client_id)
        if kind == "leave":
            return bridge.client_disconnected(client_id)
        return bridge.send_to_app(client_id, op[2])
    except ValueError:
        return ValueError


async def _bridge_to_game(before: list[tuple], after: list[tuple], max_messages: int, max_bytes: int) -> None:  # type: ignore[type-arg]
    bridge = AppMessageBridge(None, max_queued_messages=max_messages, max_queued_bytes=max_bytes)
    model = BridgeModel(max_messages, max_bytes)
    await bridge.start()
    try:
        bridge.client_connected(MARKER_CLIENT)
        for op in before:
            assert _call(bridge, op) == model.apply(op), op
        game = await Game.dial(bridge)
        model.game_connects()
        for op in after:
            assert _call(bridge, op) == model.apply(op), op
        bridge.client_disconnected(MARKER_CLIENT)
        assert await game.frames_until_marker() == model.frames
        await game.close()
    finally:
        await bridge.close()


@bounded(100)
@given(operations, operations, st.integers(0, 6), st.integers(0, 4096))
def test_client_messages_reach_the_game_as_documented_queued_or_not(
        loop: LoopThread, before: list[tuple], after: list[tuple], max_messages: int, max_bytes: int) -> None:  # type: ignore[type-arg]
    loop.run(_bridge_to_game(before, after, max_messages, max_bytes), EXAMPLE_TIMEOUT_S)
