"""LL-HLS playlist text: the multivariant (master) playlist and each rendition's media playlist.

Renders from a Segmenter's state (RFC 8216bis, version 9 tags); never waits, never does HTTP."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence

from playcast.media.hls.segmenter import Segmenter, part_uri

VERSION = 9
ADVANCE_PART_LIMIT = 3  # parts a blocking request may ask ahead (PART-TARGET < 1 s)
_URI_ATTRIBUTE = re.compile(rb'URI="([^"]*)"')  # quoted strings hold no '"', CR or LF (RFC 8216 4.2)
_URI_LINE = re.compile(rb"^([^#\s][^\r\n]*)", re.MULTILINE)


def _pdt(unix: float) -> str:
    t = dt.datetime.fromtimestamp(unix, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def can_skip_until(seg: Segmenter) -> float:
    return 6.0 * seg.config.target_duration


def media_playlist(seg: Segmenter, skip: bool = False) -> str:
    """The live media playlist (with EXT-X-ENDLIST once ended). `skip`: a delta update (_HLS_skip=YES)."""
    cfg = seg.config
    part_target = cfg.part_target
    segments = list(seg.segments)
    skip_until = can_skip_until(seg)
    out = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{cfg.target_duration}",
        f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * part_target:.3f},"
        f"CAN-SKIP-UNTIL={skip_until:.1f}",
        f"#EXT-X-PART-INF:PART-TARGET={part_target:.5f}",
        f"#EXT-X-MEDIA-SEQUENCE:{seg.first_msn}",
    ]
    if seg.discontinuity_sequence:
        out.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{seg.discontinuity_sequence}")
    out.append("#EXT-X-INDEPENDENT-SEGMENTS")
    skipped = 0
    if skip:
        # segments entirely older than CAN-SKIP-UNTIL from the live edge may be left out
        age = 0.0
        cut = 0
        for i in range(len(segments) - 1, -1, -1):
            age += segments[i].duration
            if age > skip_until and segments[i].complete:
                cut = i + 1
                break
        # keep the first listed segment's EXT-X-MAP valid: never skip across an init change
        while cut and any(s.discontinuity for s in segments[1:cut + 1]):
            cut -= 1
        skipped = cut
        if skipped:
            out.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")
    init_version = None
    for s in segments[skipped:]:
        if s.discontinuity and init_version is not None:
            out.append("#EXT-X-DISCONTINUITY")
        if s.init_version != init_version:
            out.append(f'#EXT-X-MAP:URI="init{s.init_version}.mp4"')
            init_version = s.init_version
        out.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(s.pdt)}")
        if not s.parts_dropped:
            for p in s.parts:
                attrs = f"DURATION={p.duration:.5f},URI=\"{p.uri}\""
                if p.independent:
                    attrs += ",INDEPENDENT=YES"
                out.append(f"#EXT-X-PART:{attrs}")
        if s.complete:
            out.append(f"#EXTINF:{s.duration:.5f},")
            out.append(s.uri)
    if seg.ended:
        out.append("#EXT-X-ENDLIST")
    elif segments:
        out.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{part_uri(seg.next_part_number)}"')
    return "\n".join(out) + "\n"


def master_playlist(renditions: Sequence[tuple[str, Segmenter]], audio_codec: str | None,
                    audio_bitrate: int, nominal_bitrates: dict[str, int]) -> str:
    """The multivariant playlist listing each rendition's media playlist, best first."""
    out = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for name, seg in renditions:
        if seg.video_codec is None:
            continue
        codecs = seg.video_codec + (f",{audio_codec}" if audio_codec else "")
        bandwidth = max(seg.peak_bitrate, nominal_bitrates.get(name, 0)) + (audio_bitrate if audio_codec else 0)
        out.append(f'#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},CODECS="{codecs}",'
                   f"RESOLUTION={seg.width}x{seg.height},FRAME-RATE={seg.config.fps:.3f}")
        out.append(f"{name}/index.m3u8")
    return "\n".join(out) + "\n"


def vod_playlist(entries: Sequence[tuple[str, float, float, int, bool]], target_duration: int,
                 init_uri: Callable[[int], str] | None = None, ended: bool = True) -> str:
    """A recording's playlist. entries: (uri, duration, pdt, init_version, discontinuity)."""
    init_uri = init_uri or (lambda v: f"init{v}.mp4")
    longest = max((d for _, d, _, _, _ in entries), default=0.0)
    out = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{max(target_duration, round(longest))}",
        f"#EXT-X-PLAYLIST-TYPE:{'VOD' if ended else 'EVENT'}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    init_version = None
    for uri, duration, pdt, version, discontinuity in entries:
        if discontinuity and init_version is not None:
            out.append("#EXT-X-DISCONTINUITY")
        if version != init_version:
            out.append(f'#EXT-X-MAP:URI="{init_uri(version)}"')
            init_version = version
        out.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(pdt)}")
        out.append(f"#EXTINF:{duration:.5f},")
        out.append(uri)
    if ended:
        out.append("#EXT-X-ENDLIST")
    return "\n".join(out) + "\n"


def with_query(playlist: bytes, query: str) -> bytes:
    """`playlist` with `query` (`name=value&...`, already URL-encoded) added to every URI it lists, live or VOD:
    the URI lines (media playlists, segments) and every `URI="..."` attribute (EXT-X-MAP, EXT-X-PART,
    EXT-X-PRELOAD-HINT, EXT-X-RENDITION-REPORT, EXT-X-MEDIA ...); a URI that has a query gets `&query`."""
    suffix = query.encode("ascii")

    def add(uri: bytes) -> bytes:
        return uri + (b"&" if b"?" in uri else b"?") + suffix

    tagged = _URI_ATTRIBUTE.sub(lambda m: b'URI="' + add(m.group(1)) + b'"', playlist)
    return _URI_LINE.sub(lambda m: add(m.group(1)), tagged)
