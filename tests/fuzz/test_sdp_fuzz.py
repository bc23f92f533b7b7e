"""Fuzz of SDP offers on their way to aiortc: a SignalRequest (control/signal.py, media/peer.py), a viewer's or
player's offer answered by ClientPeer (sessions, WHEP), a WHIP publisher's offer (whip_offer.check_publish_offer,
Stage.publish) and a stage viewer's offer (Stage.add_viewer). Offers are real aiortc offers mutated line by line,
or arbitrary text; each must give an answer or the module's own error (BadSignal, OfferError, OfferRejected with a
4xx status) within a timeout, never another exception or a hang."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from hypothesis import given
from hypothesis import strategies as st

from playcast.control.signal import NO_CLIENT_CONNECTION, BadSignal
from playcast.control.signal import parse_offer as parse_signal
from playcast.media.fanout import PacketSink
from playcast.media.peer import ClientPeer, OfferError
from playcast.media.peer import parse_offer as parse_peer_offer
from playcast.media.stage import NoPublisher, Stage
from playcast.media.whip_offer import OfferRejected, check_publish_offer
from tests.fuzz.support import LoopThread, bounded, json_texts, mutated, texts

pytestmark = pytest.mark.netns  # ClientPeer and Stage gather ICE candidates: loopback only
ANSWER_TIMEOUT_S = 15


class Offers:
    """Real aiortc offers: `viewer` recvonly video + audio and the two data channels, as the SDK and WHEP players
    offer; `publisher` sendonly video + audio, as a WHIP publisher offers."""

    def __init__(self, viewer: str, publisher: str) -> None:
        self.viewer, self.publisher = viewer, publisher

    def __repr__(self) -> str:  # failure reports show the drawn SDP, not these 4 KB twice
        return "Offers(viewer=..., publisher=...)"


async def _offer(publish: bool) -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        if publish:
            for track in (VideoStreamTrack(), AudioStreamTrack()):
                pc.addTransceiver(track, direction="sendonly")
        else:
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            pc.createDataChannel("input")
            pc.createDataChannel("messages")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("sdp-fuzz")
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def offers(loop: LoopThread) -> Offers:
    return Offers(loop.run(_offer(False), 30), loop.run(_offer(True), 30))


SDP_LINES = [
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "m=audio 0 RTP/AVP 0", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "a=rtpmap:96 H264/90000", "a=rtpmap:97 VP8/90000", "a=rtpmap:111 opus/48000/2", "a=rtpmap:x y",
    "a=fmtp:96 profile-level-id=42e01f;packetization-mode=1", "a=fmtp:96 profile-level-id=zz",
    "a=rtcp-fb:96 nack pli", "a=ssrc:1 cname:x", "a=ssrc:notanumber", "a=ssrc-group:FID 1", "a=mid:0", "a=mid:",
    "a=group:BUNDLE 0 1 2 3 9", "a=sendonly", "a=recvonly", "a=inactive", "a=setup:actpass", "a=setup:bogus",
    "a=ice-ufrag:abcd", "a=ice-pwd:x", "a=fingerprint:sha-256 00:11", "a=fingerprint:md5", "a=sctp-port:-1",
    "a=sctp-port:5000", "a=max-message-size:x", "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=extmap:99999999999", "a=candidate:1 1 udp 1 127.0.0.1 9 typ host", "a=candidate:x", "a=rtcp:9 IN IP4",
    "c=IN IP4 999.1.1.1", "c=IN IP6", "t=0 0", "s=-", "o=- 1 1 IN IP4 127.0.0.1", "b=AS:-5", "a=rtcp-mux",
    "a=msid:- x", "a=simulcast:send 1;2", "a=rid:1 send",
]


NUMBERS = st.integers(-(2**40), 2**64).map(str) | st.sampled_from(["0", "-1", "65536", "x", ""])


@st.composite
def mutated_sdp(draw: st.DrawFn, base: str, surrogates: bool) -> str:
    """`base` with a few line edits (drop, duplicate, swap, replace, insert an SDP-ish line, change its numbers,
    edit characters) and any line ending. Lone surrogates only with `surrogates` (an SDP inside JSON may hold
    them; an SDP body decoded from UTF-8 cannot)."""
    lines = base.strip().split("\r\n")
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(("drop", "dup", "swap", "insert", "numbers", "edit", "truncate")))
        i = draw(st.integers(0, len(lines) - 1)) if lines else 0
        if not lines:
            lines.append(draw(st.sampled_from(SDP_LINES)))
        elif op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            lines.insert(i, draw(st.sampled_from(SDP_LINES) | texts(30, surrogates=surrogates)))
        elif op == "numbers":
            lines[i] = re.sub(r"\d+", lambda _: draw(NUMBERS), lines[i])
        elif op == "edit":
            lines[i] = draw(mutated(st.just(lines[i]), surrogates=surrogates))
        else:
            lines = lines[:i]
    return draw(st.sampled_from(("\r\n", "\n", "\r"))).join(lines) + draw(st.sampled_from(("\r\n", "", "\n")))


def offer_texts(base: str, surrogates: bool) -> st.SearchStrategy[str]:
    some_text = texts(200, surrogates=surrogates)
    return (mutated_sdp(base, surrogates) | mutated_sdp(base, surrogates) | some_text
            | st.builds(lambda t: "v=0\r\n" + t, some_text))


def envelope(sdp: str) -> str:
    return json.dumps({"type": "offer", "sdp": sdp})


@bounded(300)
@given(data=st.data())
def test_any_signal_request_is_an_offer_or_bad_signal(offers: Offers, data: st.DataObject) -> None:
    signal = data.draw(offer_texts(offers.viewer, surrogates=True).map(envelope) | json_texts() | st.just(NO_CLIENT_CONNECTION))
    allow = data.draw(st.booleans())
    try:
        got = parse_signal(signal, allow_no_client=allow)
    except BadSignal as exc:
        assert str(exc), signal
    else:
        assert got == signal or (got is None and allow and signal == NO_CLIENT_CONNECTION)
    try:
        description = parse_peer_offer(signal)
    except OfferError as exc:
        assert str(exc), signal
    else:
        assert description.type == "offer" and description.sdp.startswith("v=0")


@bounded(300)
@given(data=st.data())
def test_any_publish_offer_passes_the_text_checks_or_is_rejected_with_4xx(offers: Offers,
                                                                         data: st.DataObject) -> None:
    sdp = data.draw(offer_texts(offers.publisher, surrogates=False))  # an HTTP body, decoded as UTF-8
    try:
        offer = check_publish_offer(sdp)
    except OfferRejected as exc:
        assert exc.status in (400, 422) and exc.message, sdp
    else:
        assert set(offer.kinds) <= {"audio", "video"} and offer.kinds


def _no_media() -> PacketSink:
    raise AssertionError("no media flows in these tests")


async def _answer(sdp: str) -> str | OfferError:
    peer = ClientPeer(_no_media, None, on_input=lambda _: None, on_message=lambda _: None, on_state=lambda _: None)
    try:
        return await peer.answer(envelope(sdp))
    except OfferError as exc:
        return exc
    finally:
        await peer.close()


@bounded(60)
@given(data=st.data())
def test_client_peer_answers_any_offer_or_raises_offer_error(loop: LoopThread, offers: Offers,
                                                             data: st.DataObject) -> None:
    sdp = data.draw(mutated_sdp(offers.viewer, surrogates=True))  # a SignalRequest is JSON
    got = loop.run(_answer(sdp), ANSWER_TIMEOUT_S)
    if isinstance(got, OfferError):
        assert str(got), sdp
    else:
        answer = json.loads(got)
        assert answer["type"] == "answer" and answer["sdp"].startswith("v=0"), sdp


@pytest.fixture(scope="module")
def stage(loop: LoopThread) -> Iterator[Stage]:
    async def make() -> Stage:
        return Stage("b-fuzz")

    made = loop.run(make(), 30)
    yield made
    loop.run(made.close(), 60)


async def _publish_then_view(stage: Stage, publish_sdp: str, view_sdp: str) -> tuple[str, str]:
    """What the stage did with each offer: 'answered', or the error's class and status."""
    try:
        _, answer = await stage.publish(publish_sdp)
        assert answer.startswith("v=0")
        published = "answered"
    except OfferRejected as exc:
        assert exc.status in (400, 422) and exc.message
        published = f"rejected {exc.status}"
    try:
        viewer_id, answer = await stage.add_viewer(view_sdp)
        assert answer.startswith("v=0")
        await stage.remove_viewer(viewer_id)
        viewed = "answered"
    except (OfferError, NoPublisher) as exc:
        viewed = type(exc).__name__
    return published, viewed


@bounded(40)
@given(data=st.data())
def test_stage_takes_any_publisher_and_viewer_offer_or_refuses_it(loop: LoopThread, offers: Offers, stage: Stage,
                                                                  data: st.DataObject) -> None:
    publish_sdp = data.draw(mutated_sdp(offers.publisher, surrogates=False))  # HTTP bodies, decoded as UTF-8
    view_sdp = data.draw(mutated_sdp(offers.viewer, surrogates=False))
    loop.run(_publish_then_view(stage, publish_sdp, view_sdp), 2 * ANSWER_TIMEOUT_S)


def without_audio_section_start(sdp: str) -> str:
    """The offer with its m=audio line gone: the audio attributes (a=mid:1 among them) fall into the video section."""
    return "\r\n".join(line for line in sdp.split("\r\n") if not line.startswith("m=audio"))


def test_offer_leaving_a_transceiver_without_transport_is_an_offer_error(loop: LoopThread, offers: Offers) -> None:
    """Found by this fuzzing: aiortc builds a transceiver without a transport for such an offer and its close()
    raises AttributeError, which replaced the OfferError (a stage viewer's WHEP POST got a 500)."""
    got = loop.run(_answer(without_audio_section_start(offers.viewer)), ANSWER_TIMEOUT_S)
    assert isinstance(got, OfferError)


def test_stage_viewer_offer_leaving_a_transceiver_without_transport_is_an_offer_error(
        loop: LoopThread, offers: Offers, stage: Stage) -> None:
    async def view() -> None:
        _, answer = await stage.publish(offers.publisher)
        assert answer.startswith("v=0")
        with pytest.raises(OfferError):
            await stage.add_viewer(without_audio_section_start(offers.viewer))
        assert not stage.viewers

    loop.run(view(), 2 * ANSWER_TIMEOUT_S)
