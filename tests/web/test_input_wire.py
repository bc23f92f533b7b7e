"""Wire-format round trip in a real browser: DOM input -> SDK input layer bytes -> Python protocol.decode()."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page

from playcast.host.input import protocol as p
from playcast.host.input.keycodes import KEY_TABLE, key_index

from .support import ServerThread

VIDEO_W, VIDEO_H = 800, 600  # the element
CONTENT_H = VIDEO_W * 720 / 1280  # 450: 1280x720 letterboxed into 800x600
TOP = (VIDEO_H - CONTENT_H) / 2  # 75


def norm(v: float) -> int:
    """The SDK's normalization: round(fraction * 65535), clamped."""
    return int(min(1.0, max(0.0, v)) * 65535 + 0.5)


def abs_at(x: float, y: float) -> p.MouseMoveAbs:
    return p.MouseMoveAbs(norm(x / VIDEO_W), norm((y - TOP) / CONTENT_H))


def K(code: str, down: bool) -> p.Key:
    return p.Key(key_index(code), down)


@pytest.fixture
def harness(page: Page, web_server: ServerThread) -> Page:
    page.goto(f"{web_server.url}/test/input.html")
    page.wait_for_function("window.ready === true", timeout=10000)
    return page


def take(page: Page) -> list[p.InputEvent]:
    """Decode everything the page sent since the last call (every message must decode)."""
    raw = page.evaluate("window.sent.splice(0)")
    return [p.decode(bytes(m)) for m in raw]


def test_key_table_is_identical_in_js_and_python(page: Page, web_server: ServerThread) -> None:
    page.goto(f"{web_server.url}/test/input.html")
    codes = page.evaluate("import('/sdk/keycodes.js').then(m => Array.from(m.KEY_CODES))")
    assert codes == [code for code, _, _ in KEY_TABLE]


def test_keyboard(harness: Page) -> None:
    harness.keyboard.press("KeyA")
    harness.keyboard.down("Shift")
    harness.keyboard.press("Digit1")
    harness.keyboard.up("Shift")
    harness.keyboard.press("Enter")
    harness.keyboard.press("ArrowUp")
    harness.keyboard.press("F5")  # prevented: the page does not reload
    assert take(harness) == [
        K("KeyA", True), K("KeyA", False),
        K("ShiftLeft", True), K("Digit1", True), K("Digit1", False), K("ShiftLeft", False),
        K("Enter", True), K("Enter", False), K("ArrowUp", True), K("ArrowUp", False),
        K("F5", True), K("F5", False),
    ]
    assert harness.evaluate("window.ready") is True  # still the same document


def test_key_repeat_and_unknown_keys_and_editable_fields(harness: Page) -> None:
    harness.keyboard.down("KeyW")
    harness.keyboard.down("KeyW")  # auto-repeat keydown (repeat=true): not sent again
    harness.keyboard.down("KeyW")
    harness.keyboard.up("KeyW")
    harness.evaluate("""window.dispatchEvent(new KeyboardEvent('keydown', {code: 'Unidentified', key: 'x', bubbles: true}));
                        window.dispatchEvent(new KeyboardEvent('keyup', {code: 'KeyQ', bubbles: true}));""")
    assert take(harness) == [K("KeyW", True), K("KeyW", False)]
    harness.click("#text")
    take(harness)
    harness.keyboard.type("hello")
    assert take(harness) == []  # typing into a page text field stays in the page
    assert harness.input_value("#text") == "hello"


def test_absolute_mouse_over_letterboxed_content(harness: Page) -> None:
    harness.mouse.move(400, 300)  # centre of the element = centre of the content
    harness.mouse.move(0, TOP)  # top-left corner of the content
    harness.mouse.move(799, TOP + CONTENT_H)  # bottom-right
    harness.mouse.move(200, 20)  # in the top letterbox bar: clamped to the content's top edge
    harness.mouse.move(600, 590)  # in the bottom bar
    assert take(harness) == [abs_at(400, 300), p.MouseMoveAbs(0, 0), abs_at(799, TOP + CONTENT_H),
                             p.MouseMoveAbs(norm(200 / 800), 0), p.MouseMoveAbs(norm(600 / 800), 65535)]
    assert take(harness) == []
    harness.mouse.move(1000, 300)  # outside the element, no button held: nothing
    assert take(harness) == []


def test_buttons(harness: Page) -> None:
    harness.mouse.move(100, 200)
    harness.mouse.down()
    harness.mouse.up()
    harness.mouse.down(button="right")
    harness.mouse.up(button="right")
    harness.mouse.down(button="middle")
    harness.mouse.up(button="middle")
    harness.evaluate("""() => {
        const v = document.getElementById('v');
        for (const b of [3, 4]) {
          v.dispatchEvent(new MouseEvent('mousedown', {button: b, clientX: 100, clientY: 200, bubbles: true}));
          window.dispatchEvent(new MouseEvent('mouseup', {button: b, clientX: 100, clientY: 200, bubbles: true}));
        }
        v.dispatchEvent(new MouseEvent('mousedown', {button: 7, clientX: 100, clientY: 200, bubbles: true}));
    }""")
    at = abs_at(100, 200)
    events = [e for e in take(harness) if e != at]
    B = p.MouseButton
    assert events == [p.MouseButtonEvent(B.LEFT, True), p.MouseButtonEvent(B.LEFT, False),
                      p.MouseButtonEvent(B.RIGHT, True), p.MouseButtonEvent(B.RIGHT, False),
                      p.MouseButtonEvent(B.MIDDLE, True), p.MouseButtonEvent(B.MIDDLE, False),
                      p.MouseButtonEvent(B.BACK, True), p.MouseButtonEvent(B.BACK, False),
                      p.MouseButtonEvent(B.FORWARD, True), p.MouseButtonEvent(B.FORWARD, False)]


def test_drag_outside_the_video_keeps_reporting_until_release(harness: Page) -> None:
    harness.mouse.move(700, 300)
    harness.mouse.down()
    harness.mouse.move(1000, 300)  # outside the element while the button is held
    harness.mouse.up()
    assert take(harness) == [abs_at(700, 300), abs_at(700, 300), p.MouseButtonEvent(p.MouseButton.LEFT, True),
                             p.MouseMoveAbs(65535, norm((300 - TOP) / CONTENT_H)),
                             p.MouseMoveAbs(65535, norm((300 - TOP) / CONTENT_H)),
                             p.MouseButtonEvent(p.MouseButton.LEFT, False)]


def test_wheel(harness: Page) -> None:
    harness.mouse.move(400, 300)
    take(harness)
    harness.mouse.wheel(0, 100)  # one Chromium notch down = 120 units
    harness.wait_for_function("window.sent.length >= 2")
    harness.mouse.wheel(-50, 0)
    harness.wait_for_function("window.sent.length >= 4")
    harness.evaluate("""document.getElementById('v').dispatchEvent(
        new WheelEvent('wheel', {deltaY: -3, deltaMode: 1, clientX: 400, clientY: 300, bubbles: true, cancelable: true}))""")
    wheels = [e for e in take(harness) if isinstance(e, p.Wheel)]
    assert wheels == [p.Wheel(0, 120), p.Wheel(-60, 0), p.Wheel(0, -120)]


def test_relative_motion_under_pointer_lock(page: Page, web_server: ServerThread) -> None:
    page.goto(f"{web_server.url}/test/input.html?lock=1")  # autoPointerLock: true
    page.wait_for_function("window.ready === true")
    page.mouse.move(400, 300)
    page.mouse.down()
    page.mouse.up()
    page.wait_for_function("window.capture.pointerLocked === true")
    take(page)
    page.mouse.move(410, 295)
    page.mouse.move(380, 320)
    page.mouse.down()
    page.mouse.up()
    events = take(page)
    assert events == [p.MouseMoveRel(10, -5), p.MouseMoveRel(-30, 25),
                      p.MouseButtonEvent(p.MouseButton.LEFT, True), p.MouseButtonEvent(p.MouseButton.LEFT, False)]


def test_release_all_on_blur_and_on_demand(harness: Page) -> None:
    harness.keyboard.down("ControlLeft")
    harness.keyboard.down("KeyD")
    harness.mouse.move(50, 100)
    harness.mouse.down()
    take(harness)
    harness.evaluate("window.dispatchEvent(new Event('blur'))")  # trackWindowFocus
    assert take(harness) == [K("ControlLeft", False), K("KeyD", False),
                             p.MouseButtonEvent(p.MouseButton.LEFT, False), p.Reset()]
    harness.keyboard.up("KeyD")  # already released: nothing more
    harness.keyboard.up("ControlLeft")
    harness.mouse.up()
    assert take(harness) == []
    harness.keyboard.down("KeyE")
    harness.evaluate("window.capture.detach()")  # resetOnDetach
    assert take(harness) == [K("KeyE", True), K("KeyE", False), p.Reset()]
    harness.keyboard.press("KeyF")  # detached: nothing
    assert take(harness) == []


def test_filters(page: Page, web_server: ServerThread) -> None:
    page.goto(f"{web_server.url}/test/input.html")
    page.wait_for_function("window.ready === true")
    page.evaluate("""() => {
        window.capture.config.keyboardFilter = (e) => e.code !== 'KeyB';
        window.capture.config.mouseFilter = (e) => e.type !== 'wheel';
    }""")
    page.keyboard.press("KeyB")
    page.keyboard.press("KeyC")
    page.mouse.move(400, 300)
    page.mouse.wheel(0, 100)
    page.wait_for_timeout(100)
    assert take(page) == [K("KeyC", True), K("KeyC", False), abs_at(400, 300)]


def test_gamepads_through_the_manual_api(harness: Page) -> None:
    result = harness.evaluate("""() => {
        const c = window.capture;
        const btn = (pressed, value = pressed ? 1 : 0) => ({pressed, value});
        const pad = {index: 100, id: 'fake pad', mapping: 'standard', connected: true,
                     buttons: Array.from({length: 17}, () => btn(false)), axes: [0, 0, 0, 0]};
        const out = [c.addGamepad(pad), c.addGamepad(pad)];
        pad.buttons[0] = btn(true); pad.buttons[7] = btn(false, 0.5); pad.buttons[12] = btn(true);
        pad.buttons[16] = btn(true); pad.axes = [1, -0.5, 0.25, -1];
        out.push(c.processGamepads());
        out.push(c.processGamepads());  // unchanged: nothing sent
        c.config.gamepadFilter = () => ({suppressButtonIndexes: [0, 7]});
        out.push(c.processGamepads());
        const second = {index: 101, id: 'second', mapping: 'standard', buttons: [btn(false), btn(true)], axes: []};
        out.push(c.addGamepad(second));
        out.push(c.processGamepads());
        out.push(c.removeGamepad(pad));
        out.push(c.removeGamepad(pad));
        return out;
    }""")
    assert result == [True, False, True, False, True, True, True, True, False]
    half = int(0.5 * 255 + 0.5)
    assert take(harness) == [
        p.GamepadConnection(0, True),
        p.GamepadState(0, 1 << 0 | 1 << 12 | 1 << 16, 0, half, (32767, -16383, 8192, -32767)),
        p.GamepadState(0, 1 << 12 | 1 << 16, 0, 0, (32767, -16383, 8192, -32767)),
        p.GamepadConnection(1, True),
        p.GamepadState(1, 1 << 1, 0, 0, (0, 0, 0, 0)),
        p.GamepadConnection(0, False),
    ]


def test_js_decodes_python_control_messages(page: Page, web_server: ServerThread) -> None:
    page.goto(f"{web_server.url}/test/input.html")
    messages = [
        p.encode_server_disconnect("idle"),
        p.encode_host_info(False),
        p.encode_notice(p.NoticeCode.GAMEPAD_UNAVAILABLE, "Gamepads are unavailable on this host"),
        p.encode_cursor(False),
        p.encode_performance_stats({"timestamp": 1, "system": {"cpuUtilization": 50}}),
        b"\x80\x09idle",  # wrong length
        b"\x99",
    ]
    decoded = page.evaluate("""async (msgs) => {
        const m = await import('/sdk/input-encoder.js');
        return msgs.map((bytes) => m.decodeControl(new Uint8Array(bytes)));
    }""", [list(m) for m in messages])
    assert decoded[0] == {"type": "serverDisconnect", "reason": "idle"}
    assert decoded[1] == {"type": "hostInfo", "version": 1, "gamepadAvailable": False}
    assert decoded[2] == {"type": "notice", "code": 1, "text": "Gamepads are unavailable on this host"}
    assert decoded[3] == {"type": "cursor", "visible": False}
    assert decoded[4] == {"type": "performanceStats", "stats": {"timestamp": 1, "system": {"cpuUtilization": 50}}}
    assert decoded[5]["type"] == "invalid" and decoded[6]["type"] == "invalid"


def test_js_encoders_match_python_encoders(page: Page, web_server: ServerThread) -> None:
    page.goto(f"{web_server.url}/test/input.html")
    got = page.evaluate("""async () => {
        const m = await import('/sdk/input-encoder.js');
        const out = [m.encodeHello(), m.encodeKey(153, true), m.encodeMouseAbs(70000, -5), m.encodeMouseRel(40000, -40000),
                     m.encodeMouseButton(4, false), m.encodeWheel(...m.wheelUnits(0, 100, 0)),
                     m.encodeGamepadConnection(3, false),
                     m.encodeGamepadState({index: 2, buttons: 0x1ffff, lt: 300, rt: -1, axes: [40000, -40000, 1, -1]}),
                     m.encodeReset()];
        return out.map((b) => Array.from(b));
    }""")
    expected = [p.Hello(1), p.Key(153, True), p.MouseMoveAbs(65535, 0), p.MouseMoveRel(32767, -32768),
                p.MouseButtonEvent(p.MouseButton.FORWARD, False), p.Wheel(0, 120), p.GamepadConnection(3, False),
                p.GamepadState(2, 0x1FFFF, 255, 0, (32767, -32767, 1, -1)), p.Reset()]
    assert [p.decode(bytes(b)) for b in got] == expected


def test_stats_figures_from_report_deltas(page: Page, web_server: ServerThread) -> None:
    page.goto(f"{web_server.url}/test/input.html")
    prev = {"v": {"id": "v", "type": "inbound-rtp", "kind": "video", "timestamp": 1000, "framesDecoded": 100,
                  "bytesReceived": 1_000_000, "packetsLost": 2, "packetsReceived": 1000, "jitterBufferDelay": 3.0,
                  "jitterBufferEmittedCount": 100, "totalDecodeTime": 0.2, "frameWidth": 1280, "frameHeight": 720,
                  "codecId": "c"},
            "c": {"id": "c", "type": "codec", "mimeType": "video/H264"},
            "t": {"id": "t", "type": "transport", "selectedCandidatePairId": "cp"},
            "cp": {"id": "cp", "type": "candidate-pair", "currentRoundTripTime": 0.012}}
    cur = json.loads(json.dumps(prev))
    cur["v"].update(timestamp=2000, framesDecoded=160, bytesReceived=1_750_000, packetsLost=4, packetsReceived=1198,
                    jitterBufferDelay=3.6, jitterBufferEmittedCount=160, totalDecodeTime=0.32)
    figures = page.evaluate("""async ([a, b]) => {
        const m = await import('/sdk/stats.js');
        const t = new m.StatsTracker();
        const first = t.update(new Map(Object.entries(a)));
        return [first, t.update(new Map(Object.entries(b)))];
    }""", [prev, cur])
    first, second = figures
    assert first["bitrateKbps"] is None and first["rttMs"] == 12
    assert second == {"fps": 60, "bitrateKbps": 6000, "rttMs": 12, "packetLossPercent": 1, "jitterBufferDelayMs": 10,
                      "decodeTimeMs": 2, "width": 1280, "height": 720, "framesDropped": None, "freezeCount": None,
                      "codec": "H264", "intervalMs": 1000}


def test_no_page_errors(harness: Page) -> None:
    harness.keyboard.press("KeyA")
    assert harness.page_errors == []  # type: ignore[attr-defined]


def test_touch_becomes_left_button_at_the_touch_point(browser, web_server: ServerThread) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 800}, has_touch=True)
    try:
        page = context.new_page()
        page.goto(f"{web_server.url}/test/input.html")
        page.wait_for_function("window.ready === true")
        page.touchscreen.tap(200, 300)
        page.wait_for_function("window.sent.length >= 4")
        events = take(page)
        at = abs_at(200, 300)
        assert events[:4] == [at, p.MouseButtonEvent(p.MouseButton.LEFT, True), at,
                              p.MouseButtonEvent(p.MouseButton.LEFT, False)]
        # the tap's compatibility mouse events are suppressed (preventDefault): nothing else is sent
        page.wait_for_timeout(100)
        assert take(page) == [] and events[4:] == []
    finally:
        context.close()
