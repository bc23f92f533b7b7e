"""RTP payloads of pre-encoded H.264, cut once per frame and shared by every sender of that frame.

aiortc's H264Encoder.pack() splits the access unit into NAL units and FU-A/STAP-A payloads for each RTCRtpSender,
i.e. once per viewer per frame. A SharedH264Packer takes the encoder's place in one sender and returns the payloads
cut by whichever sender got the frame first. Sequence numbers, SSRC, timestamps, header extensions and SRTP stay per
sender (aiortc does them after pack()). Knows nothing of the fan-out or of HTTP."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import av
from aiortc import RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import VIDEO_TIME_BASE, convert_timebase

from playcast.media.encoder import EncodedPacket

CACHE_FRAMES = 256  # frames kept: viewers a few frames apart, across all sessions of this process, share them


class PayloadCache:
    """The RTP payloads of the most recent frames, by frame object (identity, not equality)."""

    def __init__(self, size: int = CACHE_FRAMES) -> None:
        self._size = size
        self._items: OrderedDict[int, tuple[EncodedPacket, list[bytes]]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def payloads(self, packet: EncodedPacket) -> list[bytes]:
        key = id(packet)
        item = self._items.get(key)
        if item is not None and item[0] is packet:
            self.hits += 1
            return item[1]
        self.misses += 1
        payloads = H264Encoder._packetize(H264Encoder._split_bitstream(packet.data))
        self._items[key] = (packet, payloads)  # holding the packet keeps its id from being reused meanwhile
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return payloads


SHARED = PayloadCache()


class SharedH264Packer:
    """Stands in for aiortc's H264Encoder in one sender whose track returns pre-encoded frames.

    `current()` gives the EncodedPacket behind the av.Packet the track just returned (aiortc calls pack() right after
    recv(), with no await in between)."""

    def __init__(self, current: Callable[[], EncodedPacket | None], cache: PayloadCache = SHARED) -> None:
        self._current = current
        self._cache = cache

    def pack(self, packet: av.Packet) -> tuple[list[bytes], int]:
        source = self._current()
        timestamp = convert_timebase(packet.pts, packet.time_base, VIDEO_TIME_BASE)
        if source is None:  # not one of ours: cut it here, as aiortc would
            return H264Encoder._packetize(H264Encoder._split_bitstream(bytes(packet))), timestamp
        return self._cache.payloads(source), timestamp


def share_packetization(sender: RTCRtpSender, current: Callable[[], EncodedPacket | None]) -> None:
    """Make `sender` use shared payloads. Call before its first frame (aiortc creates its encoder lazily)."""
    sender._RTCRtpSender__encoder = SharedH264Packer(current)  # type: ignore[attr-defined]
