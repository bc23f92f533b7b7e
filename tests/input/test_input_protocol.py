"""Tests for the input wire format: exact bytes, round trips, strict rejection of bad messages, control messages."""

from __future__ import annotations

import random

import pytest

from playcast.host.input import protocol as p
from playcast.host.input.keycodes import KEY_TABLE, MAX_KEY_INDEX, key_code, key_index, key_keysym

ALL_EVENTS = [
    p.Hello(1),
    p.Key(key_index("KeyA"), True),
    p.Key(MAX_KEY_INDEX, False),
    p.MouseMoveAbs(0, 65535),
    p.MouseMoveRel(-32768, 32767),
    p.MouseButtonEvent(p.MouseButton.FORWARD, True),
    p.MouseButtonEvent(p.MouseButton.LEFT, False),
    p.Wheel(-120, 240),
    p.GamepadConnection(3, True),
    p.GamepadConnection(0, False),
    p.GamepadState(1, (1 << 17) - 1, 255, 0, (32767, -32767, 0, -1)),
    p.Reset(),
]


def test_documented_bytes() -> None:
    assert p.encode(p.Key(1, True)) == bytes.fromhex("010100")
    assert p.encode(p.MouseMoveAbs(32767, 32767)) == bytes.fromhex("03ff7fff7f")
    assert p.encode(p.MouseMoveRel(-3, 2)) == bytes.fromhex("04fdff0200")
    assert p.encode(p.MouseButtonEvent(p.MouseButton.RIGHT, True)) == bytes.fromhex("0502")
    assert p.encode(p.Wheel(0, 120)) == bytes.fromhex("0700007800")
    assert p.encode(p.GamepadState(1, 1, 255, 0, (32767, 0, 0, 0))) == bytes.fromhex(
        "0a0101000000ff00ff7f000000000000")
    assert p.encode(p.Reset()) == b"\x0b"
    assert p.encode_server_disconnect("idle") == bytes.fromhex("800469646c65")
    assert p.encode_host_info(False) == bytes.fromhex("810100")


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: type(e).__name__)
def test_round_trip(event: p.InputEvent) -> None:
    data = p.encode(event)
    assert data[0] < 0x80
    assert p.decode(data) == event
    assert p.decode(bytearray(data)) == event
    assert p.decode(memoryview(data)) == event


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: type(e).__name__)
def test_truncated_and_oversized_rejected(event: p.InputEvent) -> None:
    data = p.encode(event)
    for cut in range(1, len(data)):
        with pytest.raises(p.InputProtocolError, match="truncated"):
            p.decode(data[:cut])
    with pytest.raises(p.InputProtocolError, match="oversized"):
        p.decode(data + b"\x00")


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"\x0c", "unknown input message type 0x0c"),
    (b"\x7f\x00", "unknown input message type"),
    (b"\x80\x00", "unknown input message type 0x80"),  # a host->client type is not a client event
    (bytes.fromhex("010000"), "unknown key index 0"),
    (bytes((1,)) + (MAX_KEY_INDEX + 1).to_bytes(2, "little"), f"unknown key index {MAX_KEY_INDEX + 1}"),
    (bytes.fromhex("0505"), "unknown mouse button 5"),
    (bytes.fromhex("08 04"), "gamepad index 4 out of range"),
    (bytes.fromhex("0a00 00000200 00 00 0000 0000 0000 0000"), "bits above 16"),
    (bytes.fromhex("0a00 00000000 00 00 0080 0000 0000 0000"), "-32768"),
    (bytes.fromhex("0a04 00000000 00 00 0000 0000 0000 0000"), "gamepad index 4"),
])
def test_invalid_messages(data: bytes, message: str) -> None:
    with pytest.raises(p.InputProtocolError, match=message) as info:
        p.decode(data)
    assert info.value.data == data[:64]


def test_non_binary_rejected() -> None:
    with pytest.raises(p.InputProtocolError, match="binary"):
        p.decode("\x01\x01\x00")  # type: ignore[arg-type]


def test_fuzz_decode_only_raises_protocol_error() -> None:
    rng = random.Random(1234)
    valid = 0
    for _ in range(20000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 20)))
        if rng.random() < 0.5 and data:  # bias toward known types so deeper checks run
            data = bytes((rng.randrange(0x0C),)) + data[1:]
        try:
            event = p.decode(data)
        except p.InputProtocolError:
            continue
        valid += 1
        assert p.encode(event) == data
    assert valid > 100


def test_key_table() -> None:
    codes = [code for code, _, _ in KEY_TABLE]
    assert len(set(codes)) == len(codes)
    assert key_index("KeyA") == 1 and key_code(1) == "KeyA" and key_keysym(1) == ord("a")
    assert key_keysym(key_index("Enter")) == 0xFF0D
    assert key_keysym(key_index("ShiftLeft")) == 0xFFE1
    assert key_index("NoSuchKey") == 0
    assert p.Key(key_index("Space"), True).code == "Space"
    for bad in (0, MAX_KEY_INDEX + 1):
        with pytest.raises(KeyError):
            key_code(bad)


def test_control_messages_round_trip() -> None:
    msg = p.decode_control(p.encode_server_disconnect("terminated"))
    assert (msg.type, msg.reason) == (p.MsgType.SERVER_DISCONNECT, "terminated")
    msg = p.decode_control(p.encode_host_info(True))
    assert (msg.type, msg.version, msg.flags) == (p.MsgType.HOST_INFO, 1, p.HOST_FLAG_GAMEPAD)
    msg = p.decode_control(p.encode_notice(p.NoticeCode.GAMEPAD_UNAVAILABLE, "no pads ✗"))
    assert (msg.code, msg.text) == (1, "no pads ✗")
    assert p.decode_control(p.encode_cursor(False)).visible is False
    stats = {"timestamp": 1700000000000, "system": {"cpuUtilization": 12.5}}
    assert p.decode_control(p.encode_performance_stats(stats)).stats == stats


@pytest.mark.parametrize("data", [
    b"", b"\x80\x05abc", b"\x81\x01", b"\x82\x01\x05\x00ab", b"\x83", b"\x84not json", b"\x84[1]",
    b"\x80\x02\xff\xfe", b"\x01\x01\x00",
])
def test_bad_control_messages(data: bytes) -> None:
    with pytest.raises(p.InputProtocolError):
        p.decode_control(data)
