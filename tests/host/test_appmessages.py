"""AppMessageBridge over real loopback TCP: framing, queueing, events, errors, port fallback."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from playcast.host.appmessages import DEFAULT_PORT, MAX_PAYLOAD, AppMessageBridge, encode_frame

pytestmark = pytest.mark.timeout(30)


class Game:
    """A minimal game-side client speaking the wire format."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def dial(cls, port: int) -> Game:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def read_frame(self, timeout: float = 5.0) -> tuple[int, int, bytes]:
        header = await asyncio.wait_for(self.reader.readexactly(4), timeout)
        client_id, frame_type, length = struct.unpack(">BBH", header)
        payload = await asyncio.wait_for(self.reader.readexactly(length), timeout)
        return client_id, frame_type, payload

    async def send(self, client_id: int, payload: bytes, frame_type: int = 2) -> None:
        self.writer.write(struct.pack(">BBH", client_id, frame_type, len(payload)) + payload)
        await self.writer.drain()

    async def assert_closed_by_peer(self) -> None:
        data = await asyncio.wait_for(self.reader.read(), 5)
        assert data == b""

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


class Inbox:
    def __init__(self) -> None:
        self.items: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()

    def __call__(self, client_id: int, payload: bytes) -> None:
        self.items.put_nowait((client_id, payload))

    async def get(self) -> tuple[int, bytes]:
        return await asyncio.wait_for(self.items.get(), 5)


@pytest.fixture
async def bridge():
    inbox = Inbox()
    b = AppMessageBridge(inbox)
    b.inbox = inbox  # type: ignore[attr-defined]
    await b.start()
    yield b
    await b.close()


def test_encode_frame_layout():
    assert encode_frame(7, 2, b"hi") == b"\x07\x02\x00\x02hi"
    assert encode_frame(255, 0) == b"\xff\x00\x00\x00"
    assert encode_frame(1, 2, b"x" * 300)[:4] == b"\x01\x02\x01\x2c"
    with pytest.raises(ValueError):
        encode_frame(256, 2, b"")
    with pytest.raises(ValueError):
        encode_frame(1, 3, b"")


async def test_framing_both_ways(bridge: AppMessageBridge):
    game = await Game.dial(bridge.port)
    await bridge.wait_game_connected(5)
    bridge.client_connected(3)
    assert await game.read_frame() == (3, 0, b"")
    assert bridge.send_to_app(3, b"hello \x00\xff game")
    assert await game.read_frame() == (3, 2, b"hello \x00\xff game")
    big = bytes(range(256)) * 256  # 65536 > limit; use exactly the limit
    assert bridge.send_to_app(3, big[:MAX_PAYLOAD])
    assert await game.read_frame() == (3, 2, big[:MAX_PAYLOAD])
    assert bridge.send_to_app(3, b"")
    assert await game.read_frame() == (3, 2, b"")
    # game -> client, including several frames in one TCP write and a frame split over writes
    game.writer.write(encode_frame(3, 2, b"one") + encode_frame(3, 2, b"two") + encode_frame(3, 2, b"thr"))
    await game.writer.drain()
    frame = encode_frame(3, 2, b"split-frame")
    game.writer.write(frame[:3])
    await game.writer.drain()
    await asyncio.sleep(0.05)
    game.writer.write(frame[3:])
    assert [await bridge.inbox.get() for _ in range(4)] == [
        (3, b"one"), (3, b"two"), (3, b"thr"), (3, b"split-frame")]
    await game.close()


async def test_queue_before_game_connects(bridge: AppMessageBridge):
    bridge.client_connected(1)
    bridge.client_connected(2)
    assert bridge.send_to_app(1, b"first")
    assert bridge.send_to_app(2, b"second")
    assert bridge.send_to_app(1, b"third")
    bridge.client_connected(9)
    assert bridge.send_to_app(9, b"from-nine")
    bridge.client_disconnected(9)  # left before the game came: its queued message is dropped
    assert bridge.queued == 4
    game = await Game.dial(bridge.port)
    frames = [await game.read_frame() for _ in range(5)]
    assert frames == [(1, 0, b""), (2, 0, b""), (1, 2, b"first"), (2, 2, b"second"), (1, 2, b"third")]
    assert bridge.queued == 0
    # nothing else arrives
    with pytest.raises(asyncio.TimeoutError):
        await game.read_frame(timeout=0.3)
    await game.close()


async def test_queue_bound_refuses_new_messages():
    b = AppMessageBridge(max_queued_messages=3, max_queued_bytes=100)
    await b.start()
    try:
        b.client_connected(1)
        assert b.send_to_app(1, b"a" * 10)
        assert b.send_to_app(1, b"b" * 10)
        assert b.send_to_app(1, b"c" * 10)
        assert not b.send_to_app(1, b"d")  # count bound
        assert b.queued == 3
        assert b.dropped == 1
        b2 = AppMessageBridge(max_queued_messages=100, max_queued_bytes=25)
        await b2.start()
        b2.client_connected(1)
        assert b2.send_to_app(1, b"x" * 20)
        assert not b2.send_to_app(1, b"y" * 6)  # byte bound
        assert b2.send_to_app(1, b"z" * 5)
        await b2.close()
        game = await Game.dial(b.port)
        frames = [await game.read_frame() for _ in range(4)]
        assert [f[2] for f in frames] == [b"", b"a" * 10, b"b" * 10, b"c" * 10]
        await game.close()
    finally:
        await b.close()


async def test_connect_disconnect_events_and_unknown_clients(bridge: AppMessageBridge):
    game = await Game.dial(bridge.port)
    await bridge.wait_game_connected(5)
    bridge.client_connected(5)
    bridge.client_connected(5)  # idempotent: one event
    bridge.client_connected(6)
    bridge.client_disconnected(5)
    bridge.client_disconnected(5)  # idempotent
    bridge.client_disconnected(42)  # never connected: nothing
    assert [await game.read_frame() for _ in range(3)] == [(5, 0, b""), (6, 0, b""), (5, 1, b"")]
    # the game writes to a departed client and to a client that never existed: dropped; 6 still works
    await game.send(5, b"to-five")
    await game.send(77, b"to-77")
    await game.send(6, b"to-six")
    assert await bridge.inbox.get() == (6, b"to-six")
    assert bridge.inbox.items.empty()
    # a client that is not connected cannot send
    assert not bridge.send_to_app(5, b"late")
    with pytest.raises(asyncio.TimeoutError):
        await game.read_frame(timeout=0.3)
    assert bridge.clients == {6}
    await game.close()


async def test_oversized_and_bad_ids_raise(bridge: AppMessageBridge):
    bridge.client_connected(1)
    with pytest.raises(ValueError, match="65535"):
        bridge.send_to_app(1, b"x" * (MAX_PAYLOAD + 1))
    with pytest.raises(ValueError):
        bridge.send_to_app(300, b"x")
    with pytest.raises(ValueError):
        bridge.client_connected(-1)
    assert bridge.queued == 0  # nothing was queued by the failures
    assert bridge.send_to_app(1, b"ok")
    assert bridge.queued == 1


@pytest.mark.parametrize("garbage", [
    encode_frame(1, 2, b"fine")[:2] + b"\x00",  # truncated header then EOF
    b"\x01\x02\x00\x10short",  # truncated payload then EOF
    b"\x01\x00\x00\x00",  # type 0 from the game is a protocol error
    b"\x01\x07\x00\x03abc",  # unknown type
])
async def test_garbage_drops_game_connection_only(bridge: AppMessageBridge, garbage: bytes):
    bridge.client_connected(1)
    game = await Game.dial(bridge.port)
    assert await game.read_frame() == (1, 0, b"")
    game.writer.write(garbage)
    await game.writer.drain()
    if garbage[1] == 2:
        game.writer.write_eof()  # truncation: the peer ends mid-frame
    await game.assert_closed_by_peer()
    await game.close()
    for _ in range(100):
        if not bridge.game_connected:
            break
        await asyncio.sleep(0.01)
    assert not bridge.game_connected
    assert bridge.inbox.items.empty()
    # the bridge keeps working: queue while no game, a new game connection gets events and messages
    assert bridge.send_to_app(1, b"after")
    game2 = await Game.dial(bridge.port)
    assert [await game2.read_frame() for _ in range(2)] == [(1, 0, b""), (1, 2, b"after")]
    await game2.send(1, b"reply")
    assert await bridge.inbox.get() == (1, b"reply")
    await game2.close()


async def test_second_game_connection_replaces_first(bridge: AppMessageBridge):
    bridge.client_connected(2)
    first = await Game.dial(bridge.port)
    assert await first.read_frame() == (2, 0, b"")
    second = await Game.dial(bridge.port)
    assert await second.read_frame() == (2, 0, b"")
    await first.assert_closed_by_peer()
    assert bridge.send_to_app(2, b"for-second")
    assert await second.read_frame() == (2, 2, b"for-second")
    await second.send(2, b"from-second")
    assert await bridge.inbox.get() == (2, b"from-second")
    await first.close()
    await second.close()


async def test_game_reconnect_after_close(bridge: AppMessageBridge):
    bridge.client_connected(4)
    game = await Game.dial(bridge.port)
    assert await game.read_frame() == (4, 0, b"")
    await game.close()
    for _ in range(100):
        if not bridge.game_connected:
            break
        await asyncio.sleep(0.01)
    assert bridge.send_to_app(4, b"queued-while-away")
    game = await Game.dial(bridge.port)
    assert [await game.read_frame() for _ in range(2)] == [(4, 0, b""), (4, 2, b"queued-while-away")]
    await game.close()


async def test_async_handler_and_failing_handler():
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def handler(client_id: int, payload: bytes) -> None:
        await asyncio.sleep(0)
        if payload == b"boom":
            raise RuntimeError("handler bug")
        await got.put(payload)

    b = AppMessageBridge(handler)
    port = await b.start()
    try:
        b.client_connected(1)
        game = await Game.dial(port)
        await game.read_frame()
        await game.send(1, b"boom")
        await game.send(1, b"fine")
        assert await asyncio.wait_for(got.get(), 5) == b"fine"
        assert b.game_connected  # a failing handler does not cost the game its connection
        await game.close()
    finally:
        await b.close()


async def test_port_choice_and_fallback():
    # explicit port that is free: used
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    free_port = probe.getsockname()[1]
    probe.close()
    b = AppMessageBridge()
    assert await b.start(free_port) == free_port
    await b.close()
    # the default port, busy -> another free port
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        blocker.bind(("127.0.0.1", DEFAULT_PORT))
        blocker.listen()
    except OSError:
        blocker.close()
        blocker = None  # someone else already holds it: that is the busy case too
    try:
        b = AppMessageBridge()
        port = await b.start(DEFAULT_PORT)
        assert port != DEFAULT_PORT and port > 0
        game = await Game.dial(port)
        await b.wait_game_connected(5)
        await game.close()
        await b.close()
    finally:
        if blocker is not None:
            blocker.close()
    # no port asked: an ephemeral one, never the default
    b = AppMessageBridge()
    assert await b.start() != DEFAULT_PORT
    await b.close()


async def test_close_releases_everything():
    b = AppMessageBridge()
    port = await b.start()
    b.client_connected(1)
    game = await Game.dial(port)
    await game.read_frame()
    await b.close()
    await game.assert_closed_by_peer()
    await game.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    await b.close()  # idempotent
    # the port can be bound again right away
    b2 = AppMessageBridge()
    assert await b2.start(port) == port
    await b2.close()
