"""media/ice.py: the public address announced in answers, ICE servers from configuration, and a real aiortc answer
carrying the announced candidate."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from playcast.media.ice import IceServer, IceSettings, parse_ice_servers, resolve_public_address
from playcast.media.peer import ClientPeer

SDP = "\r\n".join([
    "v=0", "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "a=candidate:aa 1 udp 2130706431 10.0.0.5 40000 typ host",
    "a=candidate:bb 1 udp 2130706431 fd00::5 40001 typ host",
    "a=candidate:cc 1 udp 1694498815 198.51.100.9 40002 typ srflx raddr 10.0.0.5 rport 40002",
    "a=candidate:dd 1 udp 2130706431 abc.local 40003 typ host",
    "a=end-of-candidates", "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "a=candidate:aa 1 udp 2130706431 10.0.0.5 40000 typ host", ""])


def test_announce_adds_a_srflx_candidate_per_host_candidate_of_the_same_family() -> None:
    out = IceSettings(public_ip="203.0.113.7").announce(SDP).split("\r\n")
    added = [line for line in out if "203.0.113.7" in line]
    # one per m-section's IPv4 host candidate; not for IPv6, the existing srflx, or an mDNS name
    assert added == ["a=candidate:aax 1 udp 1694498815 203.0.113.7 40000 typ srflx raddr 10.0.0.5 rport 40000"] * 2
    assert out.index(added[0]) == out.index("a=candidate:aa 1 udp 2130706431 10.0.0.5 40000 typ host") + 1
    assert IceSettings().announce(SDP) == SDP  # no public address: untouched
    v6 = IceSettings(public_ip="2001:db8::1").announce(SDP)
    assert "a=candidate:bbx 1 udp 1694498815 2001:db8::1 40001 typ srflx raddr fd00::5 rport 40001" in v6
    assert "203.0.113.7" not in v6 and v6.count("2001:db8::1") == 1


def test_ice_servers_are_parsed_like_a_browsers_rtc_configuration() -> None:
    servers = parse_ice_servers(json.dumps([
        {"urls": "stun:stun.example.net:3478"},
        {"urls": ["turn:turn.example.net:3478?transport=udp", "turns:turn.example.net:443?transport=tcp"],
         "username": "u", "credential": "p"}]))
    assert servers == (IceServer("stun:stun.example.net:3478"),
                       IceServer("turn:turn.example.net:3478?transport=udp", "u", "p"),
                       IceServer("turns:turn.example.net:443?transport=tcp", "u", "p"))
    settings = IceSettings(servers, "203.0.113.7")
    assert IceSettings.from_json(settings.to_json()) == settings
    assert [s.urls for s in settings.configuration().iceServers] == [s.urls for s in servers]
    for bad, says in (("not json", "not JSON"), ('{"urls": "stun:x"}', "a JSON list"), ('[{"url": "stun:x"}]', '"urls"'),
                      ('[{"urls": "http://x"}]', "is not a stun:"), ('[{"urls": "turn:x:3478"}]', "username")):
        with pytest.raises(ValueError, match=says):
            parse_ice_servers(bad)


def test_public_address_is_an_ip_or_a_name_resolved_once() -> None:
    assert resolve_public_address("203.0.113.7") == "203.0.113.7"
    assert resolve_public_address("[2001:db8::1]") == "2001:db8::1"
    assert resolve_public_address("localhost") in ("127.0.0.1", "::1")
    with pytest.raises(ValueError, match="does not resolve"):
        resolve_public_address("no-such-host.invalid")


async def test_a_players_answer_announces_the_public_address_beside_aiortcs_own_candidates() -> None:
    browser = RTCPeerConnection()
    browser.addTransceiver("video", direction="recvonly")
    browser.createDataChannel("input")
    await browser.setLocalDescription(await browser.createOffer())
    offer = json.dumps({"type": "offer", "sdp": browser.localDescription.sdp})
    from playcast.media.fanout import PacketFanout

    queue: asyncio.Queue = asyncio.Queue()
    fanout = PacketFanout(queue.get, lambda why: None)
    peer = ClientPeer(lambda: fanout.add_sink("p"), None, on_input=lambda b: None, on_message=lambda b: None,
                      on_state=lambda s: None, ice=IceSettings(public_ip="203.0.113.7"))
    try:
        answer = json.loads(await peer.answer(offer))["sdp"]
        hosts = [line.split()[5] for line in answer.splitlines() if " typ host" in line and "." in line.split()[4]]
        announced = [line.split()[5] for line in answer.splitlines() if " 203.0.113.7 " in line]
        assert hosts and announced and set(announced) == set(hosts)  # the same ports, on the public address
        await browser.setRemoteDescription(RTCSessionDescription(answer, "answer"))  # a valid answer
    finally:
        await peer.pc.close()
        await browser.close()
