"""Keyboard, mouse and wheel injection into one X display through the XTEST extension (python-xlib).

Blocking X calls: use from one thread only (the injector's worker), never from the asyncio loop."""

from __future__ import annotations

import logging

from Xlib import X
from Xlib import display as xdisplay
from Xlib import error as xerror
from Xlib.ext import xtest

from playcast.host.input.keycodes import key_code, key_keysym
from playcast.host.input.protocol import WHEEL_NOTCH, MouseButton
from playcast.host.xsocket import prefer_abstract_sockets

log = logging.getLogger(__name__)
prefer_abstract_sockets()  # this namespace's Xvfb, never another's behind a shared /tmp

# DOM MouseEvent.button -> X core button number.
X_BUTTONS: dict[MouseButton, int] = {
    MouseButton.LEFT: 1,
    MouseButton.MIDDLE: 2,
    MouseButton.RIGHT: 3,
    MouseButton.BACK: 8,
    MouseButton.FORWARD: 9,
}
# X buttons for one wheel notch: (negative direction, positive direction).
WHEEL_Y_BUTTONS = (4, 5)  # up, down
WHEEL_X_BUTTONS = (6, 7)  # left, right


class XTestError(RuntimeError):
    """The display could not be opened or lacks the XTEST extension."""


class XTestInjector:
    """Fakes input on `display` (e.g. ":7") whose screen is width x height pixels."""

    def __init__(self, display: str, width: int, height: int) -> None:
        self.width = width
        self.height = height
        try:
            self._d = xdisplay.Display(display)
        except Exception as exc:  # python-xlib raises DisplayError, OSError, OverflowError ... for bad names
            raise XTestError(f"cannot open X display {display!r}: {exc}") from exc
        if not self._d.has_extension("XTEST"):
            self._d.close()
            raise XTestError(f"X display {display!r} has no XTEST extension")
        self._root = self._d.screen().root
        self._keycodes: dict[int, int] = {}  # wire key index -> X keycode (0 = none)
        self._spare_keycodes: list[int] | None = None
        self._keys_down: set[int] = set()  # X keycodes we pressed
        self._buttons_down: set[int] = set()  # X buttons we pressed
        self._wheel_rest = [0, 0]  # sub-notch remainder (x, y)

    # ---- keyboard -----------------------------------------------------------------------------------

    def keycode_for(self, index: int) -> int:
        """X keycode for a wire key index, binding a spare keycode when the keymap lacks the keysym."""
        cached = self._keycodes.get(index)
        if cached is not None:
            return cached
        keysym = key_keysym(index)
        keycode = self._d.keysym_to_keycode(keysym)
        if not keycode:
            keycode = self._bind_spare(keysym)
        if not keycode:
            log.warning("no X keycode for %s (keysym 0x%x); key dropped", key_code(index), keysym)
        self._keycodes[index] = keycode
        return keycode

    def _bind_spare(self, keysym: int) -> int:
        """Map `keysym` onto a keycode that has no symbols (what xdotool does for missing keysyms)."""
        if self._spare_keycodes is None:
            first = self._d.display.info.min_keycode
            count = self._d.display.info.max_keycode - first + 1
            mapping = self._d.get_keyboard_mapping(first, count)
            self._spare_keycodes = [first + i for i, syms in enumerate(mapping) if not any(syms)]
        if not self._spare_keycodes:
            return 0
        keycode = self._spare_keycodes.pop()
        self._d.change_keyboard_mapping(keycode, [(keysym, keysym)])
        self._d.sync()
        return keycode

    def key(self, index: int, down: bool) -> None:
        keycode = self.keycode_for(index)
        if not keycode:
            return
        if down:
            self._keys_down.add(keycode)
        elif keycode in self._keys_down:
            self._keys_down.discard(keycode)
        else:
            return  # never pressed by us: a stray up is dropped
        xtest.fake_input(self._d, X.KeyPress if down else X.KeyRelease, keycode)

    # ---- mouse --------------------------------------------------------------------------------------

    def move_abs(self, x: int, y: int) -> None:
        """x, y in 0..65535 over the whole screen."""
        px = (x * (self.width - 1) + 32767) // 65535
        py = (y * (self.height - 1) + 32767) // 65535
        xtest.fake_input(self._d, X.MotionNotify, detail=False, root=self._root, x=px, y=py)

    def move_rel(self, dx: int, dy: int) -> None:
        if dx or dy:
            xtest.fake_input(self._d, X.MotionNotify, detail=True, x=dx, y=dy)

    def button(self, button: MouseButton, down: bool) -> None:
        xb = X_BUTTONS[button]
        if down:
            self._buttons_down.add(xb)
        elif xb in self._buttons_down:
            self._buttons_down.discard(xb)
        else:
            return
        xtest.fake_input(self._d, X.ButtonPress if down else X.ButtonRelease, xb)

    def wheel(self, dx: int, dy: int) -> None:
        """dx, dy in 1/120 notch units; whole notches become clicks of X buttons 4-7, the rest is kept."""
        for axis, delta, (neg, pos) in ((0, dx, WHEEL_X_BUTTONS), (1, dy, WHEEL_Y_BUTTONS)):
            total = self._wheel_rest[axis] + delta
            notches = int(total / WHEEL_NOTCH)  # toward zero
            self._wheel_rest[axis] = total - notches * WHEEL_NOTCH
            for _ in range(min(abs(notches), 50)):
                xb = pos if notches > 0 else neg
                xtest.fake_input(self._d, X.ButtonPress, xb)
                xtest.fake_input(self._d, X.ButtonRelease, xb)

    # ---- housekeeping -------------------------------------------------------------------------------

    def release_all(self) -> None:
        """Release every key and button this injector holds down."""
        for keycode in sorted(self._keys_down):
            xtest.fake_input(self._d, X.KeyRelease, keycode)
        for xb in sorted(self._buttons_down):
            xtest.fake_input(self._d, X.ButtonRelease, xb)
        self._keys_down.clear()
        self._buttons_down.clear()
        self._wheel_rest = [0, 0]

    @property
    def held(self) -> tuple[frozenset[int], frozenset[int]]:
        """(X keycodes, X buttons) currently held by this injector."""
        return frozenset(self._keys_down), frozenset(self._buttons_down)

    def flush(self) -> None:
        """Send queued requests (does not wait for the server to process them)."""
        self._d.flush()

    def sync(self) -> None:
        """Round trip: every request sent so far has been processed by the server."""
        self._d.sync()

    def abort(self) -> None:
        """Drop a broken connection without talking to the server."""
        try:
            self._d.close()
        except Exception:
            log.debug("closing a broken X connection failed", exc_info=True)

    def close(self) -> None:
        try:
            self.release_all()
            self._d.sync()
        except (xerror.ConnectionClosedError, OSError):
            pass
        finally:
            self._d.close()
