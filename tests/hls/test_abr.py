"""Optional ABR rung: the source transcoded down on a thread, segments aligned with the source's."""

from __future__ import annotations

import asyncio
import time

import httpx
from hls_support import LiveFeed, SyntheticEncoder, Viewers, decode_all, parse_playlist, serve
from starlette.applications import Starlette

from playcast.api.hls import hls_routes
from playcast.media.hls import HlsPackager, HlsRegistry, RenditionSpec, ladder_below


def test_ladder_below_the_source() -> None:
    assert [r.name for r in ladder_below(720)] == ["480p", "360p"]
    assert [r.name for r in ladder_below(1080)] == ["720p", "480p", "360p"]
    assert ladder_below(360) == []


async def test_lower_rendition_is_transcoded_and_aligned() -> None:
    enc = SyntheticEncoder(320, 240, fps=30)
    packager = HlsPackager(30, request_keyframe=enc.request_keyframe,
                           renditions=[RenditionSpec("120p", 120, 150)], nominal_bitrate_kbps=600)
    registry = HlsRegistry()
    registry.add("abr", packager)
    feed = LiveFeed(packager, enc)
    feed.start()
    app = Starlette(routes=hls_routes(registry, viewers=Viewers()))
    try:
        async with serve(app) as base, httpx.AsyncClient(timeout=30) as client:
            master = await client.get(f"{base}/hls/abr/master.m3u8")
            assert master.status_code == 200
            lines = master.text.splitlines()
            infs = [line for line in lines if line.startswith("#EXT-X-STREAM-INF")]
            assert len(infs) == 2 and "RESOLUTION=320x240" in infs[0] and "RESOLUTION=160x120" in infs[1]
            assert lines[lines.index(infs[1]) + 1] == "120p/index.m3u8"
            low = await client.get(f"{base}/hls/abr/120p/index.m3u8?_HLS_msn=2")
            assert low.status_code == 200, low.text
            assert [u for u, _ in parse_playlist(low.text)["segments"]][:3] == ["seg0.m4s", "seg1.m4s", "seg2.m4s"]
            init = (await client.get(f"{base}/hls/abr/120p/init0.mp4")).content
            seg1 = (await client.get(f"{base}/hls/abr/120p/seg1.m4s")).content
            frames, audio, c = decode_all(init, [seg1])
            assert frames and frames[0].key_frame and (frames[0].width, frames[0].height) == (160, 120)
            assert audio > 0  # each rendition carries the (shared) AAC track
            c.close()
    finally:
        await feed.stop()
        await packager.close()
    src, low_seg = packager.source, packager.segmenter("120p")
    assert low_seg is not None
    # same segment boundaries (same capture times, IDR where the source had one)
    pairs = [(a, low_seg.segment(a.msn)) for a in src.segments if a.complete]
    pairs = [(a, b) for a, b in pairs if b is not None and b.complete]
    assert len(pairs) >= 2
    for a, b in pairs:
        assert a.start == b.start and abs(a.duration - b.duration) < 0.04
    transcoder = packager._transcoders[0]
    assert transcoder.failed is None and transcoder.frames_out > 60


async def test_transcoder_closes_even_when_the_stream_never_started() -> None:
    packager = HlsPackager(30, audio=False, renditions=[RenditionSpec("low", 120, 100)])
    t = time.monotonic()
    await asyncio.wait_for(packager.close(), 15)
    assert time.monotonic() - t < 10
    assert not packager._transcoders[0]._thread.is_alive()
