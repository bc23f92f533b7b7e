"""What an LL-HLS origin answers for one path of a broadcast's packager: playlists (blocking reloads waited for),
init segments, parts (the preload-hinted one waited for) and segments, or why not.

Shared by the server's origin (api/hls.py) and a host's own endpoint (host/hls_endpoint.py); no HTTP, no access
rules: callers turn `HlsFile` and `HlsUnavailable` into responses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from playcast.media.hls.packager import HlsPackager
from playcast.media.hls.playlist import ADVANCE_PART_LIMIT
from playcast.media.hls.segmenter import Segmenter

# How long what is answered stays true, for callers to turn into cache headers.
LIVE_PLAYLIST = "live-playlist"  # a playlist without _HLS_msn: changes with every part
BLOCKING_PLAYLIST = "blocking-playlist"  # _HLS_msn URLs name a state that only grows
MASTER = "master"
ENDED = "ended"  # the broadcast has ended: its playlists no longer change
MEDIA = "media"  # init, parts and segments never change
FRESHNESS = (LIVE_PLAYLIST, BLOCKING_PLAYLIST, MASTER, ENDED, MEDIA)

# Why a path has no answer (HlsUnavailable.kind).
NOT_FOUND, BAD_REQUEST, NOT_READY = "not-found", "bad-request", "not-ready"


@dataclass(frozen=True)
class HlsFile:
    body: bytes
    playlist: bool  # an m3u8 (else fMP4 media)
    freshness: str  # one of FRESHNESS


class HlsUnavailable(Exception):
    """No answer for that path: NOT_FOUND, BAD_REQUEST (a malformed or impossible query), NOT_READY (the stream
    has not started, or what a blocking request waited for did not arrive in time: try again in `retry_after`)."""

    def __init__(self, kind: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after


LateHandler = Callable[[str], None]  # called with "playlist" | "part" | "segment" when a blocking wait gives up


def _int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 12:  # "²".isdigit(), and int() refuses it
        raise HlsUnavailable(BAD_REQUEST, f"{name} must be a non-negative integer")
    return int(value)


class HlsReader:
    """`await read(packager, names, params)`: `names` are the path segments after the broadcast id (`["master.m3u8"]`
    or `[rendition, file]`), `params` the query (`_HLS_msn`, `_HLS_part`, `_HLS_skip`; others ignored)."""

    def __init__(self, *, ready_timeout_s: float = 6.0, on_late: LateHandler | None = None) -> None:
        self.ready_timeout_s = ready_timeout_s
        self.on_late = on_late or (lambda kind: None)

    async def read(self, packager: HlsPackager, names: list[str], params: dict[str, str]) -> HlsFile:
        if len(names) == 1:
            if names[0] != "master.m3u8":
                raise HlsUnavailable(NOT_FOUND, "not found")
            await self._wait_ready(packager, all_renditions=True)
            return HlsFile(packager.master(), True, ENDED if packager.closed else MASTER)
        if len(names) != 2:
            raise HlsUnavailable(NOT_FOUND, "not found")
        seg = packager.segmenter(names[0])
        if seg is None:
            raise HlsUnavailable(NOT_FOUND, "no such rendition")
        name = names[1]
        if name == "index.m3u8":
            return await self._media_playlist(packager, seg, names[0], params)
        if name.endswith(".m4s"):
            if name.startswith("part"):
                return HlsFile(await self._part(seg, name[4:-4]), False, MEDIA)
            if name.startswith("seg"):
                return HlsFile(await self._segment(seg, name[3:-4]), False, MEDIA)
        elif name.startswith("init") and name.endswith(".mp4"):
            version = _int(name[4:-4], "init version")
            await self._wait_ready(packager, seg)
            init = seg.inits.get(version if version is not None else -1)
            if init is None:
                raise HlsUnavailable(NOT_FOUND, "no such init segment")
            return HlsFile(init, False, MEDIA)
        raise HlsUnavailable(NOT_FOUND, "not found")

    async def _wait_ready(self, packager: HlsPackager, seg: Segmenter | None = None,
                          all_renditions: bool = False) -> None:
        target = packager.source if seg is None else seg

        def ready() -> bool:
            return packager.ready if all_renditions else target.ready

        if not ready() and not await target.wait(ready, self.ready_timeout_s) and not ready():
            if all_renditions and packager.source.ready:
                return  # list what is there rather than fail
            raise HlsUnavailable(NOT_READY, "the stream has not started yet", retry_after=1)

    async def _media_playlist(self, packager: HlsPackager, seg: Segmenter, name: str,
                              params: dict[str, str]) -> HlsFile:
        msn = _int(params.get("_HLS_msn"), "_HLS_msn")
        part = _int(params.get("_HLS_part"), "_HLS_part")
        skip_value = params.get("_HLS_skip")
        if skip_value is not None and skip_value not in ("YES", "v2"):
            raise HlsUnavailable(BAD_REQUEST, "_HLS_skip must be YES or v2")
        if part is not None and msn is None:
            raise HlsUnavailable(BAD_REQUEST, "_HLS_part requires _HLS_msn")
        await self._wait_ready(packager, seg)
        freshness = LIVE_PLAYLIST
        if msn is not None:
            live = seg.live_msn
            last_msn, last_index = seg.last_part
            if msn > live + 2:
                raise HlsUnavailable(BAD_REQUEST, f"_HLS_msn {msn} is too far in the future (live segment is {live})")
            if part is not None and msn >= last_msn and not seg.ended:
                ahead = part - last_index if msn == last_msn else part + msn - last_msn
                if ahead > ADVANCE_PART_LIMIT:
                    raise HlsUnavailable(
                        BAD_REQUEST, f"_HLS_part {part} is too far ahead of the last part ({last_msn}.{last_index})")
            timeout = 3.0 * seg.config.target_duration
            if not await seg.wait(lambda: seg.has(msn, part), timeout) and not seg.ended:
                self.on_late("playlist")
                raise HlsUnavailable(NOT_READY, "the requested segment or part did not arrive in time", retry_after=1)
            freshness = BLOCKING_PLAYLIST
        if seg.ended:
            freshness = ENDED
        return HlsFile(packager.media(name, skip_value is not None), True, freshness)

    async def _part(self, seg: Segmenter, ref: str) -> bytes:
        number = _int(ref, "part number")
        assert number is not None
        part = seg.part(number)
        if part is None:
            if number != seg.next_part_number or seg.ended:
                raise HlsUnavailable(NOT_FOUND, "no such part")
            # the preload-hinted part: hold the request until it is published
            await seg.wait(lambda: seg.part(number) is not None, 3.0 * seg.config.target_duration)
            part = seg.part(number)
            if part is None:
                self.on_late("part")
                raise HlsUnavailable(NOT_READY, "the part did not arrive in time", retry_after=1)
        return part.data

    async def _segment(self, seg: Segmenter, ref: str) -> bytes:
        msn = _int(ref, "segment sequence")
        assert msn is not None
        s = seg.segment(msn)
        if s is None:
            raise HlsUnavailable(NOT_FOUND, "no such segment")
        if not s.complete:
            await seg.wait(lambda: s.complete or s not in seg.segments, 3.0 * seg.config.target_duration)
            if not s.complete or not s.parts:
                self.on_late("segment")
                raise HlsUnavailable(NOT_READY, "the segment did not complete in time", retry_after=1)
        return s.data
