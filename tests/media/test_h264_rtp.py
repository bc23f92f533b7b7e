"""Shared RTP packetisation of pre-encoded H.264: the same payloads aiortc would cut, cut once for all senders."""

from __future__ import annotations

import sys
import time
from fractions import Fraction
from pathlib import Path

import av
from aiortc.codecs.h264 import H264Encoder

from playcast.media.encoder import EncodedPacket
from playcast.media.h264_rtp import PayloadCache, SharedH264Packer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hls"))
from hls_support import SyntheticEncoder  # noqa: E402


def _frames(n: int) -> list[EncodedPacket]:
    enc = SyntheticEncoder(640, 360, fps=30, bitrate_kbps=4000)  # real libx264 with playcast's settings
    return [enc.encode(time.time()) for _ in range(n)]


def _av_packet(p: EncodedPacket, pts: int) -> av.Packet:
    out = av.Packet(p.data)
    out.pts = pts
    out.time_base = Fraction(1, 90000)
    return out


def test_payloads_and_timestamps_match_aiortcs_own_packer() -> None:
    frames = _frames(12)
    assert frames[0].keyframe and len(frames[0].data) > 1200  # a keyframe needs FU-A fragments
    current: list[EncodedPacket | None] = [None]
    packer = SharedH264Packer(lambda: current[0], PayloadCache())
    reference = H264Encoder()
    for i, f in enumerate(frames):
        current[0] = f
        ours = packer.pack(_av_packet(f, 3000 * i + 17))
        theirs = reference.pack(_av_packet(f, 3000 * i + 17))
        assert ours == theirs
    assert all(len(p) <= 1300 for p in packer.pack(_av_packet(frames[0], 0))[0])


def test_each_frame_is_cut_once_for_every_sender() -> None:
    frames = _frames(5)
    cache = PayloadCache()
    tracks: list[list[EncodedPacket | None]] = [[None] for _ in range(20)]
    packers = [SharedH264Packer(lambda t=t: t[0], cache) for t in tracks]
    for f in frames:
        results = []
        for t, packer in zip(tracks, packers, strict=True):
            t[0] = f
            results.append(packer.pack(_av_packet(f, f.index * 3000))[0])
        assert all(r is results[0] for r in results)  # one list, shared
    assert (cache.misses, cache.hits) == (5, 5 * 19)


def test_frames_not_from_the_fanout_are_cut_as_aiortc_would() -> None:
    f = _frames(1)[0]
    packer = SharedH264Packer(lambda: None, PayloadCache())
    assert packer.pack(_av_packet(f, 90)) == H264Encoder().pack(_av_packet(f, 90))


def test_cache_is_bounded_and_never_confuses_frames() -> None:
    frames = _frames(6)
    cache = PayloadCache(size=3)
    for f in frames:
        cache.payloads(f)
    assert len(cache._items) == 3
    # an equal-looking but different object is a different frame
    clone = EncodedPacket(frames[-1].data, frames[-1].keyframe, frames[-1].index, frames[-1].captured_at)
    misses = cache.misses
    assert cache.payloads(clone) == cache.payloads(frames[-1])
    assert cache.misses == misses + 1
