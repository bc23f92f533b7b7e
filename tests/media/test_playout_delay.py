"""The playout-delay header extension that playcast adds to aiortc: negotiated, and on every video packet."""

from __future__ import annotations

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unpack_header_extensions

from playcast.media import playout_delay

playout_delay.install()


def _map(extensions: list[tuple[int, str]]) -> HeaderExtensionsMap:
    m = HeaderExtensionsMap()
    m.configure(RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=u)
                                                   for i, u in extensions]))
    return m


def _packet_extensions(m: HeaderExtensionsMap, mid: str | None, abs_send_time: int | None) -> dict[int, bytes]:
    packet = RtpPacket(payload_type=102, sequence_number=7, timestamp=1234)
    packet.payload = b"\x65" + b"x" * 50
    packet.extensions.mid = mid
    packet.extensions.abs_send_time = abs_send_time
    parsed = RtpPacket.parse(packet.serialize(m), m)
    assert parsed.payload == packet.payload  # the padding is right: the payload starts where it should
    profile, value = m.set(packet.extensions)
    return dict(unpack_header_extensions(profile, value))


def test_encoding_is_12_bit_tens_of_milliseconds() -> None:
    assert playout_delay.encode_playout_delay(0, 0) == b"\x00\x00\x00"
    assert playout_delay.encode_playout_delay(100, 400) == b"\x00\xa0\x28"  # 10 and 40 units
    assert playout_delay.encode_playout_delay(10**6, 10**6) == b"\xff\xff\xff"  # clamped to 4095 units


def test_added_to_every_packet_beside_aiortcs_own_extensions() -> None:
    m = _map([(1, "urn:ietf:params:rtp-hdrext:sdes:mid"),
              (2, "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
              (5, playout_delay.PLAYOUT_DELAY_URI)])
    for mid, ast in [("0", 0x123456), ("1", 0), (None, None), ("video", 0xABCDEF)]:
        ext = _packet_extensions(m, mid, ast)
        assert ext[5] == b"\x00\x00\x00"
        if mid is not None:
            assert ext[1] == mid.encode()
        if ast is not None:
            assert ext[2] == ast.to_bytes(3, "big")


def test_two_byte_form_when_the_id_needs_it() -> None:
    m = _map([(1, "urn:ietf:params:rtp-hdrext:sdes:mid"), (20, playout_delay.PLAYOUT_DELAY_URI)])
    assert _packet_extensions(m, "0", None) == {1: b"0", 20: b"\x00\x00\x00"}


def test_not_sent_when_not_negotiated() -> None:
    m = _map([(1, "urn:ietf:params:rtp-hdrext:sdes:mid")])
    assert _packet_extensions(m, "0", None) == {1: b"0"}
