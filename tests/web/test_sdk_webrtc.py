"""The SDK over real WebRTC (Chromium <-> the host's aiortc ClientPeer): offer shape, connect, input into a real
Xvfb through InputInjector, application messages both ways, control messages, stats, close. Needs `unshare -n`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Page
from Xlib import XK, X
from Xlib import display as xdisplay

from playcast.host.display import VirtualDisplay
from playcast.host.input import InputInjector
from playcast.host.input import protocol as p
from playcast.media.fanout import PacketFanout
from playcast.media.peer import ClientPeer
from tests import harness

from .support import ServerThread

pytestmark = pytest.mark.netns

W, H = 1280, 720


def wait_until(cond, timeout: float = 10.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    return harness.wait_until(cond, timeout, what, interval=0.02)


@pytest.fixture
def sdk_page(page: Page, web_server: ServerThread) -> Page:
    page.goto(f"{web_server.url}/test/sdk.html")
    page.wait_for_function("window.ready === true")
    return page


def parse_sdp(sdp: str) -> list[dict[str, object]]:
    sections: list[dict[str, object]] = []
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            kind, _port, proto, *fmts = line[2:].split(" ")
            sections.append({"kind": kind, "proto": proto, "fmts": fmts, "attrs": []})
        elif sections and line.startswith("a="):
            sections[-1]["attrs"].append(line[2:])  # type: ignore[union-attr]
    return sections


def test_signal_request_shape(sdk_page: Page) -> None:
    offer_json = sdk_page.evaluate("""async () => {
        const c = window.makeClient({streamConfiguration: {maximumKbps: 8000}});
        return await c.generateSignalRequest();
    }""")
    offer = json.loads(offer_json)
    assert set(offer) == {"type", "sdp"} and offer["type"] == "offer"
    sections = parse_sdp(offer["sdp"])
    assert [s["kind"] for s in sections] == ["video", "audio", "application"]
    video, audio, app = sections
    assert "recvonly" in video["attrs"] and "recvonly" in audio["attrs"]
    rtpmap = {a.split(" ")[0].split(":")[1]: a.split(" ")[1] for a in video["attrs"] if a.startswith("rtpmap:")}
    assert rtpmap[video["fmts"][0]] == "H264/90000", "H.264 is the preferred video codec"
    assert {v.split("/")[0] for v in rtpmap.values()} <= {"H264", "rtx", "red", "ulpfec"}
    fmtp_first = next(a for a in video["attrs"] if a.startswith(f"fmtp:{video['fmts'][0]} "))
    assert "packetization-mode=1" in fmtp_first
    assert any("opus/48000" in a for a in audio["attrs"])
    assert app["proto"] == "UDP/DTLS/SCTP" and app["fmts"] == ["webrtc-datachannel"]
    assert "b=AS:8000" in offer["sdp"]
    # no trickle: the offer is returned after gathering (in a loopback-only namespace Chromium gathers on the
    # any-address and signals no candidate; the host's candidates in the answer are enough)
    assert sdk_page.evaluate("window.client.peerConnection.iceGatheringState") == "complete"
    surface = sdk_page.evaluate("""() => {
        const m = window.sdkModule, c = window.client;
        const methods = ['generateSignalRequest', 'processSignalResponse', 'attachInput', 'detachInput',
          'getVideoRTCStats', 'getAudioRTCStats', 'getInputRTCStats', 'sendApplicationMessage', 'close',
          'processKeyboardEvent', 'processMouseEvent', 'addGamepad', 'removeGamepad', 'processGamepads'];
        return {alias: m.GameLiftStreams === m.PlaycastStreams, version: m.VERSION, id: c.id,
                missing: methods.filter((k) => typeof c[k] !== 'function'),
                defaults: c.inputConfiguration, channels: c.peerConnection ? 'ok' : 'none'};
    }""")
    assert surface["alias"] is True and surface["version"] == "1.2.0" and surface["missing"] == []
    assert len(surface["id"]) == 16 and int(surface["id"], 16) >= 0
    d = surface["defaults"]
    assert (d["autoKeyboard"], d["autoMouse"], d["autoGamepad"], d["resetOnDetach"], d["trackWindowFocus"],
            d["setCursor"], d["autoPointerLock"]) == (True, True, True, True, True, "visibility", "fullscreen")
    errors = sdk_page.evaluate("""async () => {
        const out = [];
        try { await window.client.generateSignalRequest(); } catch (e) { out.push(e.message); }
        try { await window.client.processSignalResponse('{"type":"offer","sdp":"v=0"}'); } catch (e) { out.push(e.message); }
        try { await window.client.processSignalResponse('not json'); } catch (e) { out.push(e.message); }
        window.client.close();
        try { await window.client.generateSignalRequest(); } catch (e) { out.push(e.message); }
        out.push(window.client.sendApplicationMessage(new Uint8Array([1])));
        try { new window.sdkModule.PlaycastStreams({}); } catch (e) { out.push(e.message); }
        return out;
    }""")
    assert "already called" in errors[0]
    assert "not a WebRTC answer" in errors[1]
    assert "not JSON" in errors[2]
    assert "closed" in errors[3]
    assert errors[4] is False
    assert "videoElement is required" in errors[5]


@dataclass
class Host:
    """The host end for one test: a real ClientPeer, a real Xvfb and InputInjector, on the server's loop."""

    server: ServerThread
    display: VirtualDisplay
    injector: InputInjector
    peer: ClientPeer
    fanout: PacketFanout
    messages: list[bytes] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    inputs: int = 0

    def call(self, coro):  # type: ignore[no-untyped-def]
        return self.server.call(coro)

    def on_loop(self, fn) -> None:  # type: ignore[no-untyped-def]
        async def run() -> None:
            fn()

        self.call(run())


@pytest.fixture
def host(web_server: ServerThread) -> Iterator[Host]:
    async def build() -> Host:
        display = await VirtualDisplay.start(W, H)
        injector = InputInjector(display.name, W, H)
        never = asyncio.Event()

        async def read():  # type: ignore[no-untyped-def]
            await never.wait()  # no encoder in this test: the video track stays silent

        fanout = PacketFanout(read, lambda: None)
        fanout.start()
        h = Host(web_server, display, injector, None, fanout)  # type: ignore[arg-type]

        def on_input(data: bytes) -> None:
            h.inputs += 1
            injector.handle(data)

        h.peer = ClientPeer(lambda: fanout.add_sink("test-client"), None, on_input=on_input,
                            on_message=h.messages.append, on_state=h.states.append)
        return h

    h = web_server.call(build())
    assert isinstance(h, Host)
    try:
        yield h
    finally:
        async def teardown() -> None:
            await h.peer.close()
            await h.fanout.stop()
            await asyncio.to_thread(h.injector.close)
            await h.display.stop()

        web_server.call(teardown())
        assert not h.injector._thread.is_alive()


class XProbe:
    """Reads pointer and keyboard state from the host's X display."""

    def __init__(self, name: str) -> None:
        self.d = xdisplay.Display(name)
        self.root = self.d.screen().root

    def pointer(self) -> tuple[int, int, int]:
        r = self.root.query_pointer()
        return r.root_x, r.root_y, r.mask

    def key_down(self, keysym: int) -> bool:
        keycode = self.d.keysym_to_keycode(keysym)
        keymap = self.d.query_keymap()
        return bool(keymap[keycode // 8] >> (keycode % 8) & 1)

    def close(self) -> None:
        self.d.close()


def events_of(page: Page, name: str) -> list[list[object]]:
    return [e[1:] for e in page.evaluate("window.events") if e[0] == name]


def test_connect_input_messages_control_and_close(sdk_page: Page, host: Host) -> None:
    offer = sdk_page.evaluate("async () => await window.makeClient().generateSignalRequest()")
    answer = host.call(host.peer.answer(offer))
    sdk_page.evaluate("async (a) => { await window.client.processSignalResponse(a); window.client.attachInput(); }",
                      answer)
    assert sdk_page.evaluate("window.client.connectionState") == "connected"
    assert ["connected"] in events_of(sdk_page, "connectionState")
    wait_until(lambda: "connected" in host.states, what="host peer connected")

    # host -> client control messages
    host.on_loop(lambda: host.peer.send_control(p.encode_host_info(False)))
    host.on_loop(lambda: host.peer.send_control(
        p.encode_notice(p.NoticeCode.GAMEPAD_UNAVAILABLE, "Gamepads are unavailable on this host")))
    host.on_loop(lambda: host.peer.send_control(p.encode_performance_stats(
        {"timestamp": 1700000000000, "system": {"cpuUtilization": 42}})))
    host.on_loop(lambda: host.peer.send_control(p.encode_cursor(False)))
    wait_until(lambda: events_of(sdk_page, "performanceStats"), what="performance stats")
    assert events_of(sdk_page, "hostInfo") == [[{"version": 1, "gamepadAvailable": False}]]
    assert events_of(sdk_page, "notice") == [[{"code": 1, "kind": "gamepadUnavailable",
                                                "text": "Gamepads are unavailable on this host"}]]
    stats = events_of(sdk_page, "performanceStats")[0][0]
    assert stats["system"] == {"cpuUtilization": 42} and stats["timestamp"].startswith("2023-11-14T22:13:20")
    wait_until(lambda: sdk_page.evaluate("document.getElementById('v').style.cursor") == "none",
               what="local cursor hidden")

    # input: browser DOM events -> data channel -> InputInjector -> Xvfb
    probe = XProbe(host.display.name)
    try:
        sdk_page.mouse.move(320, 180)  # centre of the 640x360 element (no video: the whole box is the content)
        wait_until(lambda: probe.pointer()[:2] == (640, 360), what="pointer at the centre")
        sdk_page.mouse.move(0, 0)
        wait_until(lambda: probe.pointer()[:2] == (0, 0), what="pointer at the top-left")
        sdk_page.keyboard.down("KeyA")
        wait_until(lambda: probe.key_down(XK.XK_a), what="'a' held on the host")
        sdk_page.keyboard.up("KeyA")
        wait_until(lambda: not probe.key_down(XK.XK_a), what="'a' released on the host")
        sdk_page.mouse.move(160, 90)
        sdk_page.mouse.down()
        wait_until(lambda: probe.pointer()[2] & X.Button1Mask, what="button 1 held")
        sdk_page.mouse.up()
        wait_until(lambda: not probe.pointer()[2] & X.Button1Mask, what="button 1 released")
        sdk_page.keyboard.down("ShiftLeft")
        wait_until(lambda: probe.key_down(XK.XK_Shift_L), what="shift held")
        sdk_page.evaluate("window.client.detachInput()")  # resetOnDetach releases it on the host
        wait_until(lambda: not probe.key_down(XK.XK_Shift_L), what="shift released by detachInput")
        sdk_page.keyboard.up("ShiftLeft")
        assert host.injector.errors == 0 and host.injector.last_input_at > 0
    finally:
        probe.close()

    # application messages, both directions, up to 65535 bytes
    sent = sdk_page.evaluate("""() => {
        const c = window.client;
        const big = new Uint8Array(65535); big.fill(7);
        return [c.sendApplicationMessage(new TextEncoder().encode('hello game')),
                c.sendApplicationMessage(big), c.sendApplicationMessage(new Uint8Array(65536)),
                c.sendApplicationMessage('not bytes')];
    }""")
    assert sent == [True, True, False, False]
    wait_until(lambda: len(host.messages) >= 2, what="messages at the host")
    assert host.messages[0] == b"hello game" and host.messages[1] == bytes([7]) * 65535 and len(host.messages) == 2
    host.on_loop(lambda: host.peer.send_message(b"\x00\x01hello browser\xff"))
    wait_until(lambda: events_of(sdk_page, "applicationMessage"), what="message in the browser")
    assert events_of(sdk_page, "applicationMessage") == [[list(b"\x00\x01hello browser\xff")]]

    # stats
    kinds = sdk_page.evaluate("""async () => {
        const c = window.client, out = {};
        for (const [k, f] of [['video', 'getVideoRTCStats'], ['audio', 'getAudioRTCStats'], ['input', 'getInputRTCStats']]) {
          const r = await c[f](); const types = [];
          r.forEach((s) => types.push(s.type + (s.label ? ':' + s.label : '')));
          out[k] = types;
        }
        return out;
    }""")
    assert "data-channel:input" in kinds["input"] and "transport" in kinds["input"]
    assert isinstance(kinds["video"], list)  # no encoder here: inbound-rtp appears with the first packets

    # server disconnect: callback, input stays detached
    sdk_page.evaluate("window.client.attachInput()")
    host.on_loop(lambda: host.peer.send_control(p.encode_server_disconnect("idle")))
    wait_until(lambda: events_of(sdk_page, "serverDisconnect"), what="serverDisconnect")
    assert events_of(sdk_page, "serverDisconnect") == [["idle"]]
    assert sdk_page.evaluate("window.client.inputAttached") is False
    before = host.inputs
    sdk_page.keyboard.press("KeyB")
    time.sleep(0.2)
    assert host.inputs == before
    sdk_page.evaluate("window.client.close()")
    assert events_of(sdk_page, "connectionState")[-1] == ["closed"]
    wait_until(lambda: host.states and host.states[-1] in ("closed", "failed"), 20, "host peer closed")
    assert events_of(sdk_page, "channelError") == []
    assert sdk_page.page_errors == []  # type: ignore[attr-defined]


def test_process_signal_response_fails_cleanly_when_the_host_goes_away(sdk_page: Page, host: Host) -> None:
    offer = sdk_page.evaluate(
        "async () => await window.makeClient({streamConfiguration: {connectTimeoutMs: 3000}}).generateSignalRequest()")
    answer = host.call(host.peer.answer(offer))
    host.call(host.peer.close())  # the host closes before ICE completes
    result = sdk_page.evaluate("""async (a) => {
        try { await window.client.processSignalResponse(a); return 'connected'; }
        catch (e) { return 'error: ' + e.message; }
    }""", answer)
    assert result.startswith("error:"), result
