"""Gamepad path: W3C standard mapping -> evdev codes (pure logic) and the no-uinput behaviour of GamepadBank."""

from __future__ import annotations

import os
import tempfile

import pytest
from evdev import ecodes as e

from playcast.host.input import gamepad as g
from playcast.host.input.protocol import GamepadState


def state(buttons: int = 0, lt: int = 0, rt: int = 0, axes=(0, 0, 0, 0), index: int = 0) -> GamepadState:
    return GamepadState(index, buttons, lt, rt, axes)


def bit(*ns: int) -> int:
    return sum(1 << n for n in ns)


def test_neutral_state() -> None:
    values = g.state_to_evdev(None)
    assert values == g.state_to_evdev(state())
    assert all(v == 0 for v in values.values())
    caps = g.capabilities()
    assert sorted(code for (t, code) in values if t == e.EV_KEY) == caps[e.EV_KEY]
    assert sorted(code for (t, code) in values if t == e.EV_ABS) == sorted(code for code, _ in caps[e.EV_ABS])


@pytest.mark.parametrize(("w3c", "code"), [
    (0, e.BTN_SOUTH), (1, e.BTN_EAST), (2, e.BTN_NORTH), (3, e.BTN_WEST),  # xpad: X -> BTN_X(=NORTH), Y -> BTN_Y
    (4, e.BTN_TL), (5, e.BTN_TR), (8, e.BTN_SELECT), (9, e.BTN_START),
    (10, e.BTN_THUMBL), (11, e.BTN_THUMBR), (16, e.BTN_MODE),
])
def test_face_and_shoulder_buttons(w3c: int, code: int) -> None:
    values = g.state_to_evdev(state(bit(w3c)))
    assert values[(e.EV_KEY, code)] == 1
    assert sum(values.values()) == 1  # nothing else moved


def test_dpad_to_hat() -> None:
    v = g.state_to_evdev(state(bit(g.DPAD_UP, g.DPAD_RIGHT)))
    assert (v[(e.EV_ABS, e.ABS_HAT0X)], v[(e.EV_ABS, e.ABS_HAT0Y)]) == (1, -1)
    v = g.state_to_evdev(state(bit(g.DPAD_DOWN, g.DPAD_LEFT)))
    assert (v[(e.EV_ABS, e.ABS_HAT0X)], v[(e.EV_ABS, e.ABS_HAT0Y)]) == (-1, 1)
    v = g.state_to_evdev(state(bit(g.DPAD_LEFT, g.DPAD_RIGHT)))
    assert v[(e.EV_ABS, e.ABS_HAT0X)] == 0
    assert all(v[(e.EV_KEY, c)] == 0 for c in g.BUTTON_CODES.values())


def test_triggers_and_sticks() -> None:
    v = g.state_to_evdev(state(lt=128, rt=255, axes=(32767, -32767, -100, 100)))
    assert v[(e.EV_ABS, e.ABS_Z)] == 128 and v[(e.EV_ABS, e.ABS_RZ)] == 255
    assert [v[(e.EV_ABS, c)] for c in (e.ABS_X, e.ABS_Y, e.ABS_RX, e.ABS_RY)] == [32767, -32767, -100, 100]
    # a digital-only trigger (pressed bit, value 0) is full travel
    v = g.state_to_evdev(state(bit(6, 7)))
    assert v[(e.EV_ABS, e.ABS_Z)] == 255 and v[(e.EV_ABS, e.ABS_RZ)] == 255


def test_capability_ranges() -> None:
    abs_caps = dict(g.capabilities()[e.EV_ABS])
    assert (abs_caps[e.ABS_X].min, abs_caps[e.ABS_X].max) == (-32768, 32767)
    assert (abs_caps[e.ABS_Z].min, abs_caps[e.ABS_Z].max) == (0, 255)
    assert (abs_caps[e.ABS_HAT0Y].min, abs_caps[e.ABS_HAT0Y].max) == (-1, 1)


def test_diff_events_only_changes() -> None:
    a = g.state_to_evdev(state(bit(0), axes=(10, 0, 0, 0)))
    b = g.state_to_evdev(state(bit(1), axes=(10, 5, 0, 0)))
    assert sorted(g.diff_events(a, b)) == sorted([
        (e.EV_KEY, e.BTN_SOUTH, 0), (e.EV_KEY, e.BTN_EAST, 1), (e.EV_ABS, e.ABS_Y, 5)])
    assert g.diff_events(b, b) == []


def test_uinput_status_reasons() -> None:
    ok, reason = g.uinput_status("/nonexistent/uinput")
    assert not ok and "does not exist" in reason
    with tempfile.NamedTemporaryFile() as f:
        ok, reason = g.uinput_status(f.name)
        assert not ok and "not a character device" in reason


@pytest.mark.skipif(os.path.exists("/dev/uinput"), reason="this host has /dev/uinput")
def test_bank_without_uinput_creates_nothing() -> None:
    bank = g.GamepadBank()
    assert bank.available is False and "/dev/uinput" in bank.reason
    assert bank.connect(0) is False
    bank.update(state(bit(0)))
    assert bank.connected == []
    bank.release_all()
    bank.close()


def test_bank_disables_itself_when_the_device_is_not_uinput() -> None:
    bank = g.GamepadBank("/dev/null")  # a character device, but uinput ioctls fail on it
    assert bank.available
    bank.update(state(bit(0)))
    assert bank.available is False and "cannot create uinput device" in bank.reason
    assert bank.connected == []


@pytest.mark.skipif(not g.uinput_status()[0], reason="needs a writable /dev/uinput")
def test_real_uinput_pad() -> None:  # runs on hosts that have uinput
    import evdev

    bank = g.GamepadBank()
    try:
        bank.update(state(bit(0), lt=200, axes=(1000, -1000, 0, 0)))
        path = bank._pads[0].device_path
        dev = evdev.InputDevice(path)
        assert dev.name == g.DEVICE_NAME
        assert dev.absinfo(e.ABS_Z).value == 200 and dev.absinfo(e.ABS_X).value == 1000
        assert e.BTN_SOUTH in dev.active_keys()
        bank.release_all()
        assert dev.active_keys() == [] and dev.absinfo(e.ABS_X).value == 0
        dev.close()
    finally:
        bank.close()
