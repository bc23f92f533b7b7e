"""LL-HLS playlists: tags, windows, parts, preload hints, delta updates and the multivariant playlist."""

from __future__ import annotations

import datetime as dt
import math
import time

from hls_support import SyntheticEncoder, parse_playlist

from playcast.media.hls import HlsPackager, with_query
from playcast.media.hls.playlist import vod_playlist


def _push(packager: HlsPackager, enc: SyntheticEncoder, seconds: float, t0: float, start: int = 0) -> None:
    for i in range(start, start + round(seconds * enc.fps)):
        packager.push_video(enc.encode(t0 + i / enc.fps))


def _pdt(value: str) -> float:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


async def test_live_playlist_tags_window_and_parts() -> None:
    enc = SyntheticEncoder(fps=30)
    packager = HlsPackager(30, audio=False, window=4, request_keyframe=enc.request_keyframe)
    t0 = time.time()
    _push(packager, enc, 9.1, t0)
    pl = parse_playlist(packager.media("source").decode())
    tags = pl["tags"]
    assert tags["EXT-X-VERSION"] == ["9"]
    target = int(tags["EXT-X-TARGETDURATION"][0])
    assert target == 1  # ~1 s segments: rounded to the nearest integer, each is at most 1
    assert all(round(d) <= target for _, d in pl["segments"])
    assert packager.source.long_segments == 0
    assert tags["EXT-X-SERVER-CONTROL"] == ["CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.625,CAN-SKIP-UNTIL=6.0"]
    assert tags["EXT-X-PART-INF"] == ["PART-TARGET=0.20834"]  # 6 frames + room for jitter
    assert tags["EXT-X-MAP"] == ['URI="init0.mp4"']
    # the window: 4 complete segments, the oldest ones slid out
    assert len(pl["segments"]) == 4
    first_msn = int(tags["EXT-X-MEDIA-SEQUENCE"][0])
    assert first_msn > 0
    assert [uri for uri, _ in pl["segments"]] == [f"seg{first_msn + i}.m4s" for i in range(4)]
    for _, duration in pl["segments"]:
        assert 0.7 <= duration <= 1.1 and round(duration) <= target
    # parts: each <= PART-TARGET, INDEPENDENT on each segment's first part, summing to the EXTINF
    assert pl["parts"] and all(p["duration"] <= 0.20834 for p in pl["parts"])
    seg_msn = first_msn + 3
    own = [p for p in pl["parts"] if p["msn"] == seg_msn]
    assert own[0]["independent"] and not any(p["independent"] for p in own[1:])
    assert math.isclose(sum(p["duration"] for p in own), pl["segments"][3][1], abs_tol=1e-4)
    # the segment in progress: its parts are listed, then a preload hint for the next part
    live = [p for p in pl["parts"] if p["msn"] == seg_msn + 1]
    numbers = [int(p["uri"][4:-4]) for p in pl["parts"]]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # parts are numbered in sequence
    assert live and pl["hint"] == f"part{numbers[-1] + 1}.m4s"
    # PDT before each segment, one wall-clock second per second of media
    pdts = [_pdt(v) for v in pl["pdt"]]
    assert abs(pdts[0] - (t0 + packager.source.segments[0].start / 90000)) < 0.002
    for (_, duration), a, b in zip(pl["segments"], pdts, pdts[1:], strict=False):
        assert abs(b - a - duration) < 0.002
    assert "#EXT-X-ENDLIST" not in pl["lines"]
    # only listed parts can be fetched
    listed = {int(p["uri"][4:-4]) for p in pl["parts"]}
    assert {n for n in range(packager.source.next_part_number) if packager.source.part(n)} == listed
    await packager.close()
    ended = parse_playlist(packager.media("source").decode())
    assert ended["lines"][-1] == "#EXT-X-ENDLIST" and ended["hint"] is None


async def test_old_parts_leave_the_playlist_after_three_target_durations() -> None:
    enc = SyntheticEncoder(fps=30)
    packager = HlsPackager(30, audio=False, window=12, request_keyframe=enc.request_keyframe)
    _push(packager, enc, 11, time.time())
    pl = parse_playlist(packager.media("source").decode())
    with_parts = {p["msn"] for p in pl["parts"]}
    listed = [int(uri[3:-4]) for uri, _ in pl["segments"]]
    old = [m for m in listed if m not in with_parts]
    assert old and old == listed[:len(old)]  # the oldest segments lost their parts, the recent ones kept them
    recent = sum(d for uri, d in pl["segments"] if int(uri[3:-4]) in with_parts)
    target = packager.config.target_duration
    assert recent <= 3 * target + 1.1  # three target durations (plus the segment that crossed the line)
    seg = packager.source.segment(old[0])
    assert seg is not None and seg.parts_dropped and seg.data  # the whole segment is still served
    assert packager.source.part(seg.parts[0].number) is None  # its parts are gone
    await packager.close()


async def test_delta_update_skips_old_segments() -> None:
    enc = SyntheticEncoder(fps=30)
    packager = HlsPackager(30, audio=False, window=20, request_keyframe=enc.request_keyframe)
    _push(packager, enc, 18, time.time())
    full = parse_playlist(packager.media("source").decode())
    delta = parse_playlist(packager.media("source", skip=True).decode())
    skipped = int(delta["tags"]["EXT-X-SKIP"][0].split("=")[1])
    assert skipped > 0
    assert len(delta["segments"]) + skipped == len(full["segments"])
    assert delta["segments"] == full["segments"][skipped:]
    # what remains reaches back at least CAN-SKIP-UNTIL (6 target durations: 6 s) from the live edge
    assert sum(d for _, d in delta["segments"]) + 0.5 >= 6 - 1.1
    assert delta["tags"]["EXT-X-MEDIA-SEQUENCE"] == full["tags"]["EXT-X-MEDIA-SEQUENCE"]
    assert delta["tags"]["EXT-X-MAP"]
    await packager.close()


async def test_master_playlist_lists_codecs_and_resolution() -> None:
    enc = SyntheticEncoder(320, 240, fps=30)
    packager = HlsPackager(30, request_keyframe=enc.request_keyframe, nominal_bitrate_kbps=600)
    _push(packager, enc, 1.5, time.time())
    lines = packager.master().decode().splitlines()
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:9", "#EXT-X-INDEPENDENT-SEGMENTS"]
    inf = lines[3]
    assert inf.startswith("#EXT-X-STREAM-INF:BANDWIDTH=")
    assert 'CODECS="avc1.42c00d,mp4a.40.2"' in inf and "RESOLUTION=320x240" in inf and "FRAME-RATE=30.000" in inf
    bandwidth = int(inf.split("BANDWIDTH=")[1].split(",")[0])
    assert bandwidth >= 600_000 + 128_000
    assert lines[4] == "source/index.m3u8"
    await packager.close()


async def test_segment_boundaries_ask_for_keyframes() -> None:
    enc = SyntheticEncoder(fps=30)
    packager = HlsPackager(30, audio=False, segment_target_s=1.5, request_keyframe=enc.request_keyframe)
    _push(packager, enc, 6, time.time())
    complete = [s for s in packager.source.segments if s.complete]
    assert len(complete) >= 3
    for s in complete:
        assert 1.4 <= s.duration <= 1.55
    assert enc.keyframe_requests >= len(complete)
    assert parse_playlist(packager.media("source").decode())["tags"]["EXT-X-TARGETDURATION"] == ["2"]
    await packager.close()


async def test_bad_rendition_names_are_refused() -> None:
    import threading

    import pytest

    from playcast.media.hls import RenditionSpec

    before = set(threading.enumerate())
    with pytest.raises(ValueError):
        HlsPackager(30, audio=False, renditions=[RenditionSpec("source", 120, 200)])
    with pytest.raises(ValueError):
        HlsPackager(30, audio=False, renditions=[RenditionSpec("a/b", 120, 200)])
    with pytest.raises(ValueError):
        HlsPackager(30, segment_target_s=0.1)
    assert set(threading.enumerate()) <= before  # nothing started for a refused one


def test_with_query_adds_the_query_to_every_listed_uri_and_nothing_else() -> None:
    live = (b'#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="audio/index.m3u8"\n'
            b'#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS="avc1.42e01f"\nsource/index.m3u8\n'
            b'#EXT-X-MAP:URI="init0.mp4"\n#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:00.000Z\n'
            b'#EXT-X-PART:DURATION=0.20000,URI="part0.m4s",INDEPENDENT=YES\n#EXTINF:1.00000,\nseg0.m4s\n'
            b'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part1.m4s"\n'
            b'#EXT-X-RENDITION-REPORT:URI="../low/index.m3u8",LAST-MSN=0,LAST-PART=0\n'
            b'#EXT-X-MAP:URI="init1.mp4?v=2"\r\nseg1.m4s?v=2\r\n\n')
    assert with_query(live, "token=t%2Bk") == (
        b'#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="audio/index.m3u8?token=t%2Bk"\n'
        b'#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS="avc1.42e01f"\nsource/index.m3u8?token=t%2Bk\n'
        b'#EXT-X-MAP:URI="init0.mp4?token=t%2Bk"\n#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:00.000Z\n'
        b'#EXT-X-PART:DURATION=0.20000,URI="part0.m4s?token=t%2Bk",INDEPENDENT=YES\n#EXTINF:1.00000,\n'
        b'seg0.m4s?token=t%2Bk\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part1.m4s?token=t%2Bk"\n'
        b'#EXT-X-RENDITION-REPORT:URI="../low/index.m3u8?token=t%2Bk",LAST-MSN=0,LAST-PART=0\n'
        b'#EXT-X-MAP:URI="init1.mp4?v=2&token=t%2Bk"\r\nseg1.m4s?v=2&token=t%2Bk\r\n\n')
    vod = vod_playlist([("seg0.m4s", 1.0, 0.0, 0, False), ("seg1.m4s", 1.0, 1.0, 0, False)], 1).encode()
    rewritten = with_query(vod, "token=x").decode()
    assert [line for line in rewritten.splitlines() if "token" in line] == [
        '#EXT-X-MAP:URI="init0.mp4?token=x"', "seg0.m4s?token=x", "seg1.m4s?token=x"]
