"""Virtual gamepads through uinput (python evdev): W3C standard-mapping state -> an Xbox 360-style evdev device.

Only talks to /dev/uinput; when that is missing or not writable it reports unavailable and creates nothing."""

from __future__ import annotations

import logging
import os
import stat

from evdev import AbsInfo, UInput, UInputError
from evdev import ecodes as e

from playcast.host.input.protocol import MAX_GAMEPADS, GamepadState

log = logging.getLogger(__name__)

UINPUT_PATH = "/dev/uinput"
# The identity of the kernel xpad driver's Xbox 360 pad: SDL, Steam and most games have a mapping for it.
DEVICE_NAME = "Microsoft X-Box 360 pad"
VENDOR, PRODUCT, VERSION = 0x045E, 0x028E, 0x0110

# W3C standard-mapping button index -> evdev key code (same codes xpad emits; note BTN_X == BTN_NORTH and
# BTN_Y == BTN_WEST in input-event-codes.h, which is what xpad sends for the X and Y buttons).
BUTTON_CODES: dict[int, int] = {
    0: e.BTN_A,
    1: e.BTN_B,
    2: e.BTN_X,
    3: e.BTN_Y,
    4: e.BTN_TL,
    5: e.BTN_TR,
    8: e.BTN_SELECT,
    9: e.BTN_START,
    10: e.BTN_THUMBL,
    11: e.BTN_THUMBR,
    16: e.BTN_MODE,
}
TRIGGER_BUTTONS = {6: e.ABS_Z, 7: e.ABS_RZ}  # analog triggers, 0..255
DPAD_UP, DPAD_DOWN, DPAD_LEFT, DPAD_RIGHT = 12, 13, 14, 15
STICK_CODES = (e.ABS_X, e.ABS_Y, e.ABS_RX, e.ABS_RY)  # wire axes order lx, ly, rx, ry

EvKey = tuple[int, int]  # (event type, code)


def capabilities() -> dict[int, list]:
    """The UInput capability set of one virtual pad."""
    stick = AbsInfo(value=0, min=-32768, max=32767, fuzz=16, flat=128, resolution=0)
    trigger = AbsInfo(value=0, min=0, max=255, fuzz=0, flat=0, resolution=0)
    hat = AbsInfo(value=0, min=-1, max=1, fuzz=0, flat=0, resolution=0)
    return {
        e.EV_KEY: sorted(BUTTON_CODES.values()),
        e.EV_ABS: [(code, stick) for code in STICK_CODES]
        + [(e.ABS_Z, trigger), (e.ABS_RZ, trigger), (e.ABS_HAT0X, hat), (e.ABS_HAT0Y, hat)],
    }


def state_to_evdev(state: GamepadState | None) -> dict[EvKey, int]:
    """Every control's evdev value for a wire gamepad state (None = the neutral, released state)."""
    if state is None:
        state = GamepadState(0, 0, 0, 0, (0, 0, 0, 0))
    values: dict[EvKey, int] = {}
    for index, code in BUTTON_CODES.items():
        values[(e.EV_KEY, code)] = 1 if state.pressed(index) else 0
    for code, analog, button in ((e.ABS_Z, state.left_trigger, 6), (e.ABS_RZ, state.right_trigger, 7)):
        values[(e.EV_ABS, code)] = analog if analog or not state.pressed(button) else 255
    for code, value in zip(STICK_CODES, state.axes, strict=True):
        values[(e.EV_ABS, code)] = value
    values[(e.EV_ABS, e.ABS_HAT0X)] = state.pressed(DPAD_RIGHT) - state.pressed(DPAD_LEFT)
    values[(e.EV_ABS, e.ABS_HAT0Y)] = state.pressed(DPAD_DOWN) - state.pressed(DPAD_UP)
    return values


def diff_events(previous: dict[EvKey, int], current: dict[EvKey, int]) -> list[tuple[int, int, int]]:
    """(type, code, value) writes that take a device from `previous` to `current` (no SYN)."""
    return [(t, c, v) for (t, c), v in current.items() if previous.get((t, c)) != v]


def uinput_status(path: str = UINPUT_PATH) -> tuple[bool, str]:
    """(available, reason): whether virtual gamepads can be created on this host."""
    if not os.path.exists(path):
        return False, f"{path} does not exist (load the uinput module / pass the device to the container)"
    if not stat.S_ISCHR(os.stat(path).st_mode):
        return False, f"{path} is not a character device"
    if not os.access(path, os.R_OK | os.W_OK):
        return False, f"{path} is not writable by this process"
    return True, "ok"


class VirtualGamepad:
    """One uinput pad. Blocking writes: call from the injector's worker thread."""

    def __init__(self, index: int, path: str = UINPUT_PATH) -> None:
        self.index = index
        self._ui = UInput(capabilities(), name=DEVICE_NAME, vendor=VENDOR, product=PRODUCT,
                          version=VERSION, bustype=e.BUS_USB, devnode=path, phys=f"playcast/pad{index}")
        self._values = state_to_evdev(None)

    @property
    def device_path(self) -> str | None:
        return self._ui.device.path if self._ui.device else None

    def apply(self, state: GamepadState | None) -> None:
        """Write the controls that changed since the last state, then one SYN_REPORT."""
        current = state_to_evdev(state)
        writes = diff_events(self._values, current)
        if not writes:
            return
        for etype, code, value in writes:
            self._ui.write(etype, code, value)
        self._ui.syn()
        self._values = current

    def close(self) -> None:
        try:
            self.apply(None)
        finally:
            self._ui.close()


class GamepadBank:
    """Up to four virtual pads for one session, created on connect (or first state) and removed on disconnect."""

    def __init__(self, path: str = UINPUT_PATH) -> None:
        self._path = path
        self.available, self.reason = uinput_status(path)
        self._pads: dict[int, VirtualGamepad] = {}

    @property
    def connected(self) -> list[int]:
        return sorted(self._pads)

    def connect(self, index: int) -> bool:
        if not self.available or not 0 <= index < MAX_GAMEPADS:
            return False
        if index not in self._pads:
            try:
                self._pads[index] = VirtualGamepad(index, self._path)
            except (OSError, UInputError) as exc:  # permission lost, module unloaded, not a uinput node ...
                self.available, self.reason = False, f"cannot create uinput device: {exc}"
                log.warning("gamepads disabled: %s", self.reason)
                return False
            log.info("virtual gamepad %d created at %s", index, self._pads[index].device_path)
        return True

    def disconnect(self, index: int) -> None:
        pad = self._pads.pop(index, None)
        if pad is not None:
            pad.close()

    def update(self, state: GamepadState) -> None:
        if self.connect(state.index):
            self._pads[state.index].apply(state)

    def release_all(self) -> None:
        """Return every pad to neutral (buttons up, sticks centred) without removing it."""
        for pad in self._pads.values():
            pad.apply(None)

    def close(self) -> None:
        for index in list(self._pads):
            self.disconnect(index)
