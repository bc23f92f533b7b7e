"""Fuzz of the input-channel decoder (docs/input-protocol.md): any bytes decode to an event or InputProtocolError,
a decoded event re-encodes to the same bytes, and events encoded as the doc lays them out (and by the SDK's own
JS encoder, run in node) decode to themselves."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playcast.host.input import protocol as p
from playcast.host.input.keycodes import MAX_KEY_INDEX
from tests.fuzz.support import bounded, json_values

REPO = Path(__file__).resolve().parents[2]
ENCODER_JS = REPO / "src" / "playcast" / "web" / "sdk" / "input-encoder.js"

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
i16 = st.integers(-0x8000, 0x7FFF)
axis = st.integers(-32767, 32767)
pad = st.integers(0, p.MAX_GAMEPADS - 1)

events: st.SearchStrategy[p.InputEvent] = st.one_of(
    st.builds(p.Hello, u8),
    st.builds(p.Key, st.integers(1, MAX_KEY_INDEX), st.booleans()),
    st.builds(p.MouseMoveAbs, u16, u16),
    st.builds(p.MouseMoveRel, i16, i16),
    st.builds(p.MouseButtonEvent, st.sampled_from(p.MouseButton), st.booleans()),
    st.builds(p.Wheel, i16, i16),
    st.builds(p.GamepadConnection, pad, st.booleans()),
    st.builds(p.GamepadState, pad, st.integers(0, (1 << p.GAMEPAD_BUTTON_COUNT) - 1), u8, u8,
              st.tuples(axis, axis, axis, axis)),
    st.just(p.Reset()),
)

# A known type byte followed by a tail of about the right length: most of these are near misses of valid messages.
near_misses = st.builds(lambda kind, tail: bytes((kind,)) + tail, st.integers(0, 0x0C) | st.integers(0x7E, 0x85),
                        st.binary(max_size=18))


@bounded(600)
@given(st.binary(max_size=40) | near_misses, st.sampled_from((bytes, bytearray, memoryview)))
def test_any_bytes_decode_to_an_event_or_the_protocol_error(data: bytes, wrap: type) -> None:
    try:
        event = p.decode(wrap(data))
    except p.InputProtocolError as exc:
        assert exc.data == data[:64]
        return
    assert p.encode(event) == data  # exactly one valid reading of a message, and it is this one


@bounded(100)
@given(st.text(max_size=8) | st.integers() | st.none() | st.lists(u8, max_size=4) | json_values(4))
def test_non_binary_messages_are_the_protocol_error(value: object) -> None:
    with pytest.raises(p.InputProtocolError):
        p.decode(value)  # type: ignore[arg-type]


@bounded(300)
@given(st.binary(max_size=48) | st.builds(lambda kind, tail: bytes((kind,)) + tail,
                                          st.integers(0x80, 0x84), st.binary(max_size=40)))
def test_any_bytes_decode_to_a_control_message_or_the_protocol_error(data: bytes) -> None:
    try:
        message = p.decode_control(data)
    except p.InputProtocolError:
        return
    assert message.type == data[0]


def documented_bytes(event: p.InputEvent) -> bytes:
    """The message as docs/input-protocol.md's "Client → host" table lays it out (written from the table, not
    from protocol.encode)."""
    match event:
        case p.Hello(version):
            return struct.pack("<BB", 0x00, version)
        case p.Key(index, down):
            return struct.pack("<BH", 0x01 if down else 0x02, index)
        case p.MouseMoveAbs(x, y):
            return struct.pack("<BHH", 0x03, x, y)
        case p.MouseMoveRel(dx, dy):
            return struct.pack("<Bhh", 0x04, dx, dy)
        case p.MouseButtonEvent(button, down):
            return struct.pack("<BB", 0x05 if down else 0x06, int(button))
        case p.Wheel(dx, dy):
            return struct.pack("<Bhh", 0x07, dx, dy)
        case p.GamepadConnection(index, connected):
            return struct.pack("<BB", 0x08 if connected else 0x09, index)
        case p.GamepadState(index, buttons, lt, rt, (lx, ly, rx, ry)):
            return struct.pack("<BBIBBhhhh", 0x0A, index, buttons, lt, rt, lx, ly, rx, ry)
        case p.Reset():
            return b"\x0b"
    raise AssertionError(event)


@bounded(400)
@given(events)
def test_documented_layout_round_trips(event: p.InputEvent) -> None:
    data = documented_bytes(event)
    assert p.decode(data) == event
    assert p.encode(event) == data


def js_call(event: p.InputEvent) -> tuple[str, list[object]]:
    """The input-encoder.js function (and its arguments) the SDK uses for this event."""
    match event:
        case p.Hello(version):
            return "encodeHello", [version]
        case p.Key(index, down):
            return "encodeKey", [index, down]
        case p.MouseMoveAbs(x, y):
            return "encodeMouseAbs", [x, y]
        case p.MouseMoveRel(dx, dy):
            return "encodeMouseRel", [dx, dy]
        case p.MouseButtonEvent(button, down):
            return "encodeMouseButton", [int(button), down]
        case p.Wheel(dx, dy):
            return "encodeWheel", [dx, dy]
        case p.GamepadConnection(index, connected):
            return "encodeGamepadConnection", [index, connected]
        case p.GamepadState(index, buttons, lt, rt, axes):
            return "encodeGamepadState", [{"index": index, "buttons": buttons, "lt": lt, "rt": rt, "axes": list(axes)}]
        case p.Reset():
            return "encodeReset", []
    raise AssertionError(event)


NODE_SCRIPT = """
const enc = await import(process.argv[1]);
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map(([fn, args]) => Array.from(enc[fn](...args)));
process.stdout.write(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@bounded(8)
@given(st.lists(events, min_size=20, max_size=80))
def test_js_encoder_output_decodes_to_the_same_events(batch: list[p.InputEvent]) -> None:
    calls = [js_call(e) for e in batch]
    done = subprocess.run(["node", "--no-warnings", "--input-type=module", "-e", NODE_SCRIPT, ENCODER_JS.as_uri()],
                          input=json.dumps(calls), capture_output=True, text=True, timeout=30, check=True)
    encoded = [bytes(b) for b in json.loads(done.stdout)]
    assert [p.decode(b) for b in encoded] == batch
    assert encoded == [p.encode(e) for e in batch]
