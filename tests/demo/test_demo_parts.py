"""The demo game's pieces without a display: its app-message client against a real AppMessageBridge,
the message feed formatting, and the synthesized sounds."""

from __future__ import annotations

import asyncio
import json
import socket

import numpy as np
import pytest

from playcast.demo.appclient import CLIENT_CONNECTED, CLIENT_DISCONNECTED, MESSAGE, AppMessageClient
from playcast.demo.feed import Feed, describe
from playcast.demo.sounds import hit_samples, shot_samples
from playcast.host.appmessages import AppMessageBridge

pytestmark = pytest.mark.timeout(30)


async def poll_until(client: AppMessageClient, predicate, timeout: float = 5.0) -> list:
    """Drive the client like the game loop does (one poll per ~frame) until predicate(all events) holds."""
    events: list = []
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate(events):
        events += client.poll()
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out; events so far: {events}")
        await asyncio.sleep(0.005)
    return events


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def test_client_dials_retries_and_exchanges_frames():
    port = free_port()
    client = AppMessageClient(port, retry_s=0.05)
    # nothing listens yet: polls never raise and never block
    for _ in range(5):
        assert client.poll() == []
        await asyncio.sleep(0.01)
    assert not client.connected
    assert not client.send(1, b"nobody there")
    got: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    bridge = AppMessageBridge(lambda cid, data: got.put_nowait((cid, data)))
    assert await bridge.start(port) == port
    try:
        bridge.client_connected(4)
        bridge.send_to_app(4, b"x" * 65535)  # a max-size frame, arriving in many TCP reads
        events = await poll_until(client, lambda ev: len(ev) >= 2)
        assert client.connected
        assert (events[0].client_id, events[0].kind) == (4, CLIENT_CONNECTED)
        assert (events[1].client_id, events[1].kind, len(events[1].payload)) == (4, MESSAGE, 65535)
        assert client.send(4, b"reply")
        assert client.poll() == []  # the next frame flushes the outbox
        assert await asyncio.wait_for(got.get(), 5) == (4, b"reply")
        assert not client.send(4, b"y" * 65536)  # oversized: refused locally
        bridge.client_disconnected(4)
        events = await poll_until(client, lambda ev: len(ev) >= 1)
        assert (events[0].client_id, events[0].kind) == (4, CLIENT_DISCONNECTED)
        # the bridge goes away: the client notices, then reconnects to a new bridge on the same port
        await bridge.close()
        await poll_until(client, lambda ev: not client.connected)
        bridge = AppMessageBridge(lambda cid, data: got.put_nowait((cid, data)))
        await bridge.start(port)
        bridge.client_connected(2)
        events = await poll_until(client, lambda ev: len(ev) >= 1)
        assert (events[0].client_id, events[0].kind) == (2, CLIENT_CONNECTED)
    finally:
        client.close()
        await bridge.close()


def test_feed_formats_chat_reactions_text_and_binary():
    chat = describe(3, json.dumps({"type": "chat", "user": "ana", "text": "gg\nwp \U0001F389"}).encode())
    assert chat.kind == "chat" and chat.text == "ana: gg wp :party-popper:"
    reaction = describe(3, json.dumps({"type": "reaction", "from": "bo", "emoji": "\u2764\ufe0f"}).encode())
    assert reaction.kind == "reaction" and reaction.text == "bo reacted :heavy-black-heart:"
    anonymous = describe(5, b'{"type":"reaction"}')
    assert anonymous.text == "client 5 reacted something"
    other_json = describe(1, b'{"type":"score","value":3}')
    assert other_json.kind == "message" and other_json.text.startswith("client 1: {")
    assert describe(2, b"plain text").text == "client 2: plain text"
    assert describe(2, b"\xff\xfe\x00").text == "client 2: 3 bytes of binary data"
    assert describe(2, b"{not json").text == "client 2: {not json"
    long = describe(2, b"z" * 500).text
    assert len(long) == len("client 2: ") + 90 and long.endswith("…")
    assert describe(2, b"a\x07b\x1b[31mc").text == "client 2: ab[31mc"
    feed = Feed(size=3)
    for i in range(5):
        feed.add(describe(1, str(i).encode()))
    assert [item.text for item in feed.items] == ["client 1: 2", "client 1: 3", "client 1: 4"]
    assert feed.version == 5


def test_sounds_are_short_audible_and_clipped_safely():
    for samples, seconds in ((hit_samples(48000), 0.18), (shot_samples(44100), 0.06)):
        assert samples.dtype == np.int16
        assert abs(len(samples) / (48000 if seconds == 0.18 else 44100) - seconds) < 0.001
        peak = int(np.abs(samples.astype(np.int32)).max())
        assert 3000 < peak < 32767
        assert abs(int(samples[0])) < 2000  # a soft attack, no click
