"""InputInjector against a real Xvfb: an X client window observes keys, buttons, motion and wheel arriving."""

from __future__ import annotations

import logging
import os
import random
import threading
import time

import pytest
from Xlib import XK, X

from playcast.host.input import InputInjector
from playcast.host.input import protocol as p
from playcast.host.input.injector import GAMEPAD_UNAVAILABLE_TEXT
from playcast.host.input.keycodes import key_index

from .xserver import HEIGHT, WIDTH, Observer, XServer


def key(code: str, down: bool) -> bytes:
    return p.encode(p.Key(key_index(code), down))


def button(b: p.MouseButton, down: bool) -> bytes:
    return p.encode(p.MouseButtonEvent(b, down))


@pytest.fixture
def injector(xvfb: XServer):
    control: list[bytes] = []
    inj = InputInjector(xvfb.display, WIDTH, HEIGHT, send_control=control.append)
    inj.control = control  # type: ignore[attr-defined]
    try:
        yield inj
    finally:
        inj.close()
        assert not inj._thread.is_alive()


def send(inj: InputInjector, *messages: bytes) -> None:
    for m in messages:
        inj.handle(m)
    assert inj.drain()


def test_keys_arrive_with_the_server_keymap(injector: InputInjector, observer: Observer) -> None:
    before = time.time()
    send(injector, key("KeyA", True), key("KeyA", False),
         key("ShiftLeft", True), key("Digit1", True), key("Digit1", False), key("ShiftLeft", False),
         key("Enter", True), key("Enter", False))
    evs = observer.events()
    got = [(ev.type, observer.keysym_of(ev.detail)) for ev in evs]
    assert got == [
        (X.KeyPress, XK.XK_a), (X.KeyRelease, XK.XK_a),
        (X.KeyPress, XK.XK_Shift_L), (X.KeyPress, XK.XK_1), (X.KeyRelease, XK.XK_1), (X.KeyRelease, XK.XK_Shift_L),
        (X.KeyPress, XK.XK_Return), (X.KeyRelease, XK.XK_Return),
    ]
    digit_press = evs[3]
    assert digit_press.state & X.ShiftMask  # the X server applied Shift: the app sees '!'
    assert observer.keysym_of(digit_press.detail, 1) == XK.XK_exclam
    assert injector.last_input_at >= before
    assert injector.errors == 0


def test_key_missing_from_keymap_gets_a_spare_keycode(injector: InputInjector, observer: Observer) -> None:
    f24 = XK.string_to_keysym("F24")
    if observer.d.keysym_to_keycode(f24):
        pytest.skip("this X server's keymap already has F24")
    send(injector, key("F24", True), key("F24", False))
    evs = observer.events()
    assert [ev.type for ev in evs] == [X.KeyPress, X.KeyRelease]
    keycode = evs[0].detail
    assert observer.d.get_keyboard_mapping(keycode, 1)[0][0] == f24


def test_absolute_motion_maps_onto_the_screen(injector: InputInjector, observer: Observer) -> None:
    send(injector, p.encode(p.MouseMoveAbs(0, 0)))
    assert observer.pointer()[:2] == (0, 0)
    send(injector, p.encode(p.MouseMoveAbs(65535, 65535)))
    assert observer.pointer()[:2] == (WIDTH - 1, HEIGHT - 1)
    send(injector, p.encode(p.MouseMoveAbs(32768, 16384)))
    assert observer.pointer()[:2] == (640, 180)
    motion = [ev for ev in observer.events() if ev.type == X.MotionNotify]
    assert (motion[-1].root_x, motion[-1].root_y) == (640, 180)


def test_relative_motion(injector: InputInjector, observer: Observer) -> None:
    send(injector, p.encode(p.MouseMoveAbs(32768, 32768)))
    x0, y0, _ = observer.pointer()
    send(injector, p.encode(p.MouseMoveRel(25, -10)), p.encode(p.MouseMoveRel(5, 3)))
    assert observer.pointer()[:2] == (x0 + 30, y0 - 7)
    send(injector, p.encode(p.MouseMoveRel(-5000, -5000)))  # clamps at the screen edge
    assert observer.pointer()[:2] == (0, 0)


def test_buttons(injector: InputInjector, observer: Observer) -> None:
    send(injector, p.encode(p.MouseMoveAbs(1000, 1000)))
    observer.events()
    order = [p.MouseButton.LEFT, p.MouseButton.MIDDLE, p.MouseButton.RIGHT, p.MouseButton.BACK,
             p.MouseButton.FORWARD]
    for b in order:
        send(injector, button(b, True), button(b, False))
    evs = [(ev.type, ev.detail) for ev in observer.events() if ev.type in (X.ButtonPress, X.ButtonRelease)]
    expected = []
    for xb in (1, 2, 3, 8, 9):
        expected += [(X.ButtonPress, xb), (X.ButtonRelease, xb)]
    assert evs == expected


def test_wheel_notches_and_remainder(injector: InputInjector, observer: Observer) -> None:
    send(injector, p.encode(p.Wheel(0, 240)))  # two notches down
    send(injector, p.encode(p.Wheel(0, -60)), p.encode(p.Wheel(0, -60)))  # two half notches up = one
    send(injector, p.encode(p.Wheel(130, 0)))  # one right, 10 kept
    send(injector, p.encode(p.Wheel(110, 0)))  # 120 with the remainder: one more right
    send(injector, p.encode(p.Wheel(-120, 0)))  # one left
    presses = [ev.detail for ev in observer.events() if ev.type == X.ButtonPress]
    assert presses == [5, 5, 4, 7, 7, 6]


def test_release_all_releases_held_keys_and_buttons(injector: InputInjector, observer: Observer) -> None:
    send(injector, p.encode(p.MouseMoveAbs(30000, 30000)),
         key("KeyW", True), key("ShiftLeft", True), key("ControlRight", True), button(p.MouseButton.LEFT, True),
         button(p.MouseButton.RIGHT, True))
    assert len(observer.keys_down()) == 3
    assert observer.pointer()[2] & (X.Button1Mask | X.Button3Mask)
    injector.release_all()
    assert injector.drain()
    assert observer.keys_down() == []
    assert observer.pointer()[2] & (X.Button1Mask | X.Button3Mask | X.ShiftMask | X.ControlMask) == 0
    # RESET from the client does the same
    send(injector, key("KeyS", True))
    assert len(observer.keys_down()) == 1
    send(injector, p.encode(p.Reset()))
    assert observer.keys_down() == []


def test_stray_release_is_ignored(injector: InputInjector, observer: Observer) -> None:
    send(injector, key("KeyQ", False), button(p.MouseButton.LEFT, False))
    assert observer.events() == []


def test_garbage_never_escapes_handle_and_the_stream_goes_on(injector: InputInjector, observer: Observer) -> None:
    rng = random.Random(99)
    for _ in range(3000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24)))
        if data and data[0] in (0x01, 0x05, 0x0A, 0x08):  # keep the X state predictable: no stray presses
            data = b"\xee" + data[1:]
        injector.handle(data)
    injector.handle("text is not binary")  # type: ignore[arg-type]
    injector.handle(b"")
    assert injector.drain()
    assert injector.errors > 2900
    observer.events()
    send(injector, key("KeyZ", True), key("KeyZ", False))
    assert [observer.keysym_of(ev.detail) for ev in observer.events()] == [XK.XK_z, XK.XK_z]


def test_handle_is_fast_on_the_calling_thread(injector: InputInjector, observer: Observer) -> None:
    msgs = [p.encode(p.MouseMoveAbs(i * 10, i * 5)) for i in range(2000)]
    worst = 0.0
    for m in msgs:
        t0 = time.perf_counter()
        injector.handle(m)
        worst = max(worst, time.perf_counter() - t0)
    assert injector.drain(10)
    assert worst < 0.005, f"handle() took {worst * 1000:.2f} ms"
    assert observer.pointer()[:2] == ((19990 * (WIDTH - 1) + 32767) // 65535, (9995 * (HEIGHT - 1) + 32767) // 65535)


def test_hello_gets_host_info(injector: InputInjector) -> None:
    injector.handle(p.encode(p.Hello(1)))
    msg = p.decode_control(injector.control[-1])  # type: ignore[attr-defined]
    assert msg.type == p.MsgType.HOST_INFO and msg.version == 1
    assert bool(msg.flags & p.HOST_FLAG_GAMEPAD) == injector.gamepad_available


@pytest.mark.skipif(os.path.exists("/dev/uinput"), reason="this host has /dev/uinput")
def test_gamepad_unavailable_without_uinput(injector: InputInjector, observer: Observer,
                                            caplog: pytest.LogCaptureFixture) -> None:
    assert injector.gamepad_available is False
    assert "/dev/uinput" in (injector.gamepad_unavailable_reason or "")
    caplog.set_level(logging.INFO, logger="playcast.host.input.injector")
    injector.handle(p.encode(p.Hello(1)))
    host_info = p.decode_control(injector.control[-1])  # type: ignore[attr-defined]
    assert host_info.flags == 0
    for i in range(5):
        injector.handle(p.encode(p.GamepadConnection(0, True)))
        injector.handle(p.encode(p.GamepadState(0, 1 << i, 0, 0, (0, 0, 0, 0))))
    assert injector.drain()
    notices = [p.decode_control(m) for m in injector.control[1:]]  # type: ignore[attr-defined]
    assert [(n.type, n.code, n.text) for n in notices] == [
        (p.MsgType.NOTICE, p.NoticeCode.GAMEPAD_UNAVAILABLE, GAMEPAD_UNAVAILABLE_TEXT)]
    assert "gamepad input dropped" in caplog.text and "/dev/uinput does not exist" in caplog.text
    assert injector.last_input_at == 0.0  # dropped gamepad input is not counted as activity
    # a new client (HELLO) is told again
    injector.handle(p.encode(p.Hello(1)))
    injector.handle(p.encode(p.GamepadState(0, 1, 0, 0, (0, 0, 0, 0))))
    assert p.decode_control(injector.control[-1]).code == p.NoticeCode.GAMEPAD_UNAVAILABLE  # type: ignore[attr-defined]
    # keyboard still works
    send(injector, key("KeyG", True), key("KeyG", False))
    assert [observer.keysym_of(ev.detail) for ev in observer.events()] == [XK.XK_g, XK.XK_g]


def test_missing_display_drops_input_without_raising(caplog: pytest.LogCaptureFixture) -> None:
    inj = InputInjector(":987654", WIDTH, HEIGHT)
    try:
        inj.handle(key("KeyA", True))
        assert inj.drain()
        assert "cannot open X display ':987654'" in caplog.text
    finally:
        inj.close()
    assert not inj._thread.is_alive()


def test_display_going_away_is_survived(xvfb: XServer, caplog: pytest.LogCaptureFixture) -> None:
    inj = InputInjector(xvfb.display, WIDTH, HEIGHT)
    try:
        send(inj, p.encode(p.MouseMoveAbs(10, 10)))
        xvfb.proc.terminate()  # the X server goes away under the injector (it removes its socket itself)
        xvfb.proc.wait()
        for _ in range(20):
            inj.handle(p.encode(p.MouseMoveRel(1, 1)))
            inj.handle(key("KeyA", True))
        assert inj.drain()
    finally:
        inj.close()
    assert not inj._thread.is_alive()
    assert "input injection failed" in caplog.text or "X flush failed" in caplog.text


def test_close_is_idempotent_and_leaves_nothing(xvfb: XServer) -> None:
    threads_before = {t.ident for t in threading.enumerate()}
    fds_before = len(os.listdir("/proc/self/fd"))
    inj = InputInjector(xvfb.display, WIDTH, HEIGHT)
    send(inj, key("KeyA", True))
    inj.close()
    inj.close()
    inj.handle(key("KeyA", False))  # after close: ignored, no error
    assert {t.ident for t in threading.enumerate()} <= threads_before
    assert len(os.listdir("/proc/self/fd")) == fds_before
