"""The RTP playout-delay header extension (min 0, max 0) on our video, added to aiortc.

With it Chromium renders each frame as soon as it is decoded instead of smoothing playout through its
jitter buffer: what game streaming wants. aiortc has no hook for extra header extensions, so this module
teaches its negotiation table and its extension map about one more URI. Install once, before peers exist."""

from __future__ import annotations

from aiortc import codecs as aiortc_codecs
from aiortc import rtp as aiortc_rtp
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters

PLAYOUT_DELAY_URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"


def encode_playout_delay(min_ms: int, max_ms: int) -> bytes:
    """12-bit min and max in 10 ms units, big endian (webrtc.org playout-delay spec)."""
    lo, hi = min(min_ms // 10, 0xFFF), min(max_ms // 10, 0xFFF)
    return bytes(((lo >> 4) & 0xFF, ((lo & 0x0F) << 4) | ((hi >> 8) & 0x0F), hi & 0xFF))


_VALUE = encode_playout_delay(0, 0)
ONE_BYTE_PROFILE = 0xBEDE
_installed = False


def install() -> None:
    """Idempotent. Video transceivers negotiate the extension when the offer carries it (Chromium's does)."""
    global _installed
    if _installed:
        return
    video = aiortc_codecs.HEADER_EXTENSIONS["video"]
    if not any(e.uri == PLAYOUT_DELAY_URI for e in video):
        video.append(RTCRtpHeaderExtensionParameters(id=max(e.id for e in video) + 1, uri=PLAYOUT_DELAY_URI))

    cls = aiortc_rtp.HeaderExtensionsMap
    original_configure = cls.configure
    original_set = cls.set

    def configure(self, parameters) -> None:  # type: ignore[no-untyped-def]
        original_configure(self, parameters)
        ext_id = next((e.id for e in parameters.headerExtensions if e.uri == PLAYOUT_DELAY_URI), None)
        self._playcast_playout_delay_id = ext_id
        # One-byte form (RFC 8285): the id/length byte + 3 value bytes = 4 bytes, a whole 32-bit word, so it can be
        # put in front of aiortc's already padded extensions without re-packing them (this runs for every packet).
        self._playcast_one_byte = bytes(((ext_id << 4) | (len(_VALUE) - 1),)) + _VALUE if ext_id and ext_id <= 14 \
            else None

    def set_(self, values) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
        profile, value = original_set(self, values)
        ext_id = getattr(self, "_playcast_playout_delay_id", None)
        if ext_id is None:
            return profile, value
        prefix = self._playcast_one_byte
        if prefix is not None and profile == ONE_BYTE_PROFILE:
            return profile, prefix + value
        extensions = aiortc_rtp.unpack_header_extensions(profile, value) if value else []
        extensions.append((ext_id, _VALUE))
        return aiortc_rtp.pack_header_extensions(extensions)

    cls.configure = configure  # type: ignore[method-assign]
    cls.set = set_  # type: ignore[method-assign]
    _installed = True
