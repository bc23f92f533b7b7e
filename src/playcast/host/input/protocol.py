"""The binary input wire format of the "input" data channel: decode client events, encode host control messages.

Pure functions on bytes (docs/input-protocol.md is the spec). No I/O, no X, no uinput; bad bytes raise
InputProtocolError and never anything else."""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass

from playcast.host.input.keycodes import MAX_KEY_INDEX, key_code
from playcast.json_input import parse_json

PROTOCOL_VERSION = 1
MAX_GAMEPADS = 4
GAMEPAD_BUTTON_COUNT = 17  # W3C "standard" mapping, buttons 0..16
_GAMEPAD_BUTTON_MASK = (1 << GAMEPAD_BUTTON_COUNT) - 1
WHEEL_NOTCH = 120  # wheel units per detent


class MsgType(enum.IntEnum):
    """First byte of every message. 0x00-0x7F: client -> host; 0x80-0xFF: host -> client."""

    HELLO = 0x00
    KEY_DOWN = 0x01
    KEY_UP = 0x02
    MOUSE_MOVE_ABS = 0x03
    MOUSE_MOVE_REL = 0x04
    MOUSE_BUTTON_DOWN = 0x05
    MOUSE_BUTTON_UP = 0x06
    MOUSE_WHEEL = 0x07
    GAMEPAD_CONNECT = 0x08
    GAMEPAD_DISCONNECT = 0x09
    GAMEPAD_STATE = 0x0A
    RESET = 0x0B
    # host -> client
    SERVER_DISCONNECT = 0x80
    HOST_INFO = 0x81
    NOTICE = 0x82
    CURSOR = 0x83
    PERFORMANCE_STATS = 0x84


class MouseButton(enum.IntEnum):
    """Same numbering as DOM MouseEvent.button."""

    LEFT = 0
    MIDDLE = 1
    RIGHT = 2
    BACK = 3
    FORWARD = 4


class NoticeCode(enum.IntEnum):
    GAMEPAD_UNAVAILABLE = 1
    INPUT_ERROR = 2


HOST_FLAG_GAMEPAD = 0x01


class InputProtocolError(ValueError):
    """A message that is not a valid input event. `data` holds (at most 64 of) the offending bytes."""

    def __init__(self, message: str, data: bytes = b"") -> None:
        super().__init__(message)
        self.data = bytes(data[:64])


# ---- client -> host events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    version: int


@dataclass(frozen=True, slots=True)
class Key:
    index: int  # wire key index (keycodes.KEY_TABLE position + 1)
    down: bool

    @property
    def code(self) -> str:
        """The KeyboardEvent.code this index stands for."""
        return key_code(self.index)


@dataclass(frozen=True, slots=True)
class MouseMoveAbs:
    x: int  # 0..65535 over the displayed video content (0 = left edge, 65535 = right edge)
    y: int  # 0..65535 (0 = top)


@dataclass(frozen=True, slots=True)
class MouseMoveRel:
    dx: int  # int16, CSS pixels of movement (positive = right)
    dy: int  # int16 (positive = down)


@dataclass(frozen=True, slots=True)
class MouseButtonEvent:
    button: MouseButton
    down: bool


@dataclass(frozen=True, slots=True)
class Wheel:
    dx: int  # int16, 120 per notch, positive = scroll right
    dy: int  # int16, 120 per notch, positive = scroll down


@dataclass(frozen=True, slots=True)
class GamepadConnection:
    index: int  # 0..3
    connected: bool


@dataclass(frozen=True, slots=True)
class GamepadState:
    index: int  # 0..3
    buttons: int  # bit n = W3C standard-mapping button n pressed (n = 0..16)
    left_trigger: int  # 0..255 (standard button 6 value)
    right_trigger: int  # 0..255 (standard button 7 value)
    axes: tuple[int, int, int, int]  # lx, ly, rx, ry as int16 (-32767..32767; up/left negative)

    def pressed(self, button: int) -> bool:
        return bool(self.buttons >> button & 1)


@dataclass(frozen=True, slots=True)
class Reset:
    """Release every held key, button and gamepad control."""


InputEvent = (
    Hello | Key | MouseMoveAbs | MouseMoveRel | MouseButtonEvent | Wheel | GamepadConnection | GamepadState | Reset
)

_U16 = struct.Struct("<H")
_XY_U16 = struct.Struct("<HH")
_XY_I16 = struct.Struct("<hh")
_GAMEPAD = struct.Struct("<BIBBhhhh")  # after the type byte: 15 bytes

_SIZES: dict[int, int] = {
    MsgType.HELLO: 2,
    MsgType.KEY_DOWN: 3,
    MsgType.KEY_UP: 3,
    MsgType.MOUSE_MOVE_ABS: 5,
    MsgType.MOUSE_MOVE_REL: 5,
    MsgType.MOUSE_BUTTON_DOWN: 2,
    MsgType.MOUSE_BUTTON_UP: 2,
    MsgType.MOUSE_WHEEL: 5,
    MsgType.GAMEPAD_CONNECT: 2,
    MsgType.GAMEPAD_DISCONNECT: 2,
    MsgType.GAMEPAD_STATE: 1 + _GAMEPAD.size,
    MsgType.RESET: 1,
}


def decode(data: bytes | bytearray | memoryview) -> InputEvent:
    """Decode one client message (one data-channel message = one event). Raises InputProtocolError."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InputProtocolError(f"input message must be binary, got {type(data).__name__}")
    buf = bytes(data)
    if not buf:
        raise InputProtocolError("empty input message")
    kind = buf[0]
    size = _SIZES.get(kind)
    if size is None:
        raise InputProtocolError(f"unknown input message type 0x{kind:02x}", buf)
    if len(buf) != size:
        what = "truncated" if len(buf) < size else "oversized"
        raise InputProtocolError(
            f"{what} {MsgType(kind).name} message: {len(buf)} bytes, expected {size}", buf)
    if kind == MsgType.HELLO:
        return Hello(buf[1])
    if kind in (MsgType.KEY_DOWN, MsgType.KEY_UP):
        (index,) = _U16.unpack_from(buf, 1)
        if not 1 <= index <= MAX_KEY_INDEX:
            raise InputProtocolError(f"unknown key index {index}", buf)
        return Key(index, kind == MsgType.KEY_DOWN)
    if kind == MsgType.MOUSE_MOVE_ABS:
        return MouseMoveAbs(*_XY_U16.unpack_from(buf, 1))
    if kind == MsgType.MOUSE_MOVE_REL:
        return MouseMoveRel(*_XY_I16.unpack_from(buf, 1))
    if kind in (MsgType.MOUSE_BUTTON_DOWN, MsgType.MOUSE_BUTTON_UP):
        if buf[1] > MouseButton.FORWARD:
            raise InputProtocolError(f"unknown mouse button {buf[1]}", buf)
        return MouseButtonEvent(MouseButton(buf[1]), kind == MsgType.MOUSE_BUTTON_DOWN)
    if kind == MsgType.MOUSE_WHEEL:
        return Wheel(*_XY_I16.unpack_from(buf, 1))
    if kind in (MsgType.GAMEPAD_CONNECT, MsgType.GAMEPAD_DISCONNECT):
        _check_pad(buf[1], buf)
        return GamepadConnection(buf[1], kind == MsgType.GAMEPAD_CONNECT)
    if kind == MsgType.GAMEPAD_STATE:
        index, buttons, lt, rt, lx, ly, rx, ry = _GAMEPAD.unpack_from(buf, 1)
        _check_pad(index, buf)
        if buttons & ~_GAMEPAD_BUTTON_MASK:
            raise InputProtocolError(f"gamepad buttons 0x{buttons:08x} use bits above 16", buf)
        if -32768 in (lx, ly, rx, ry):
            raise InputProtocolError("gamepad axis value -32768 is out of range", buf)
        return GamepadState(index, buttons, lt, rt, (lx, ly, rx, ry))
    return Reset()


def _check_pad(index: int, buf: bytes) -> None:
    if index >= MAX_GAMEPADS:
        raise InputProtocolError(f"gamepad index {index} out of range 0..{MAX_GAMEPADS - 1}", buf)


def encode(event: InputEvent) -> bytes:
    """Encode a client event (the inverse of decode(); the JS SDK does the same in input-encoder.js)."""
    match event:
        case Hello(version):
            return bytes((MsgType.HELLO, version))
        case Key(index, down):
            return bytes((MsgType.KEY_DOWN if down else MsgType.KEY_UP,)) + _U16.pack(index)
        case MouseMoveAbs(x, y):
            return bytes((MsgType.MOUSE_MOVE_ABS,)) + _XY_U16.pack(x, y)
        case MouseMoveRel(dx, dy):
            return bytes((MsgType.MOUSE_MOVE_REL,)) + _XY_I16.pack(dx, dy)
        case MouseButtonEvent(button, down):
            return bytes((MsgType.MOUSE_BUTTON_DOWN if down else MsgType.MOUSE_BUTTON_UP, button))
        case Wheel(dx, dy):
            return bytes((MsgType.MOUSE_WHEEL,)) + _XY_I16.pack(dx, dy)
        case GamepadConnection(index, connected):
            return bytes((MsgType.GAMEPAD_CONNECT if connected else MsgType.GAMEPAD_DISCONNECT, index))
        case GamepadState(index, buttons, lt, rt, axes):
            return bytes((MsgType.GAMEPAD_STATE,)) + _GAMEPAD.pack(index, buttons, lt, rt, *axes)
        case Reset():
            return bytes((MsgType.RESET,))
    raise TypeError(f"not an input event: {event!r}")


# ---- host -> client control messages ---------------------------------------------------------------


def encode_server_disconnect(reason: str) -> bytes:
    """The host is ending this client's stream; `reason` ("terminated", "idle", ...) reaches serverDisconnect()."""
    raw = reason.encode("utf-8")[:255]
    return bytes((MsgType.SERVER_DISCONNECT, len(raw))) + raw


def encode_host_info(gamepad_available: bool, version: int = PROTOCOL_VERSION) -> bytes:
    """The answer to HELLO: protocol version and capability flags."""
    return bytes((MsgType.HOST_INFO, version, HOST_FLAG_GAMEPAD if gamepad_available else 0))


def encode_notice(code: NoticeCode | int, text: str) -> bytes:
    """A human-readable notice with a machine code (e.g. GAMEPAD_UNAVAILABLE)."""
    raw = text.encode("utf-8")[:65535]
    return bytes((MsgType.NOTICE, int(code))) + _U16.pack(len(raw)) + raw


def encode_cursor(visible: bool) -> bytes:
    """Whether the remote cursor is visible (the SDK hides the local cursor when it is not)."""
    return bytes((MsgType.CURSOR, 1 if visible else 0))


def encode_performance_stats(stats: dict[str, object]) -> bytes:
    """Host performance stats (the Web SDK PerformanceStats shape) as UTF-8 JSON."""
    return bytes((MsgType.PERFORMANCE_STATS,)) + json.dumps(stats, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """A decoded host -> client message (used by tests and tools; the browser decodes these in JS)."""

    type: MsgType
    reason: str | None = None
    version: int | None = None
    flags: int | None = None
    code: int | None = None
    text: str | None = None
    visible: bool | None = None
    stats: dict[str, object] | None = None


def decode_control(data: bytes) -> ControlMessage:
    """Decode one host -> client message. Raises InputProtocolError."""
    buf = bytes(data)
    if not buf:
        raise InputProtocolError("empty control message")
    kind = buf[0]
    try:
        if kind == MsgType.SERVER_DISCONNECT and len(buf) >= 2 and len(buf) == 2 + buf[1]:
            return ControlMessage(MsgType.SERVER_DISCONNECT, reason=buf[2:].decode("utf-8"))
        if kind == MsgType.HOST_INFO and len(buf) == 3:
            return ControlMessage(MsgType.HOST_INFO, version=buf[1], flags=buf[2])
        if kind == MsgType.NOTICE and len(buf) >= 4 and len(buf) == 4 + _U16.unpack_from(buf, 2)[0]:
            return ControlMessage(MsgType.NOTICE, code=buf[1], text=buf[4:].decode("utf-8"))
        if kind == MsgType.CURSOR and len(buf) == 2:
            return ControlMessage(MsgType.CURSOR, visible=bool(buf[1]))
        if kind == MsgType.PERFORMANCE_STATS:
            stats = parse_json(buf[1:].decode("utf-8"))
            if isinstance(stats, dict):
                return ControlMessage(MsgType.PERFORMANCE_STATS, stats=stats)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputProtocolError(f"bad control message 0x{kind:02x}: {exc}", buf) from None
    raise InputProtocolError(f"invalid control message 0x{kind:02x} ({len(buf)} bytes)", buf)
