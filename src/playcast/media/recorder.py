"""Recording of a broadcast: the packager's fMP4 segments, VOD playlists with PDT, thumbnails and events to a Storage.

Writes on its own thread (storage I/O, JPEG encoding); a full or broken storage stops only the recording."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import io
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import av

from playcast.media.hls.packager import HlsPackager
from playcast.media.hls.playlist import vod_playlist
from playcast.media.hls.segmenter import Segment
from playcast.storage.base import Storage, StorageError, StorageFull

log = logging.getLogger(__name__)

HLS_DIR = "media/hls"
THUMB_DIR = "media/thumbnails"
LATEST_THUMB = "media/latest_thumbnail/thumb.jpg"
MASTER = "master.m3u8"
PLAYLIST = "playlist.m3u8"


class RecordingStatus(enum.StrEnum):
    STARTING = "STARTING"
    RECORDING = "RECORDING"
    ENDED = "ENDED"
    FAILED = "FAILED"


def _iso(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ivs_style_prefix(channel: str, recording_id: str, started: float | None = None) -> str:
    """`<channel>/<yyyy>/<m>/<d>/<hh>/<mm>/<recording_id>` as IVS lays out its recordings."""
    t = dt.datetime.fromtimestamp(started or time.time(), dt.UTC)
    return f"{channel}/{t.year}/{t.month}/{t.day}/{t.hour}/{t.minute}/{recording_id}"


@dataclass
class _Track:
    name: str
    entries: list[tuple[str, float, float, int, bool]] = field(default_factory=list)
    inits_written: set[int] = field(default_factory=set)
    last_msn: int | None = None
    last_init: int | None = None
    width: int = 0
    height: int = 0
    codec: str | None = None
    peak_bitrate: int = 0


def jpeg_thumbnail(init: bytes, fragment: bytes, height: int | None = None) -> tuple[bytes, int, int]:
    """Decode the first picture of init+fragment (it starts with a keyframe) and encode it as JPEG."""
    with av.open(io.BytesIO(init + fragment), format="mp4") as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if height and height < frame.height:
                width = max(2, round(frame.width * height / frame.height / 2) * 2)
                frame = frame.reformat(width=width, height=height)
            codec = av.CodecContext.create("mjpeg", "w")
            codec.width, codec.height = frame.width, frame.height
            codec.pix_fmt = "yuvj420p"
            codec.time_base = Fraction(1, 25)
            codec.options = {"qmin": "2", "qmax": "6"}
            codec.open()
            packets = codec.encode(frame.reformat(format="yuvj420p"))
            packets += codec.encode(None)
            return b"".join(bytes(p) for p in packets), frame.width, frame.height
    raise ValueError("no picture in the segment")


class Recorder:
    """Records `packager`'s renditions under `prefix` in `storage` from `await start()` to `await stop()`.

    Layout (IVS-like): events/recording-{started,ended,failed}.json, media/hls/master.m3u8,
    media/hls/<rendition>/{playlist.m3u8,init<v>.mp4,seg<n>.m4s}, media/thumbnails/thumb<n>.jpg,
    media/latest_thumbnail/thumb.jpg. Stop the packager first (`await packager.close()`) so the last
    segment is included. `on_status(recorder)` is called on the event loop when the status changes."""

    def __init__(self, packager: HlsPackager, storage: Storage, prefix: str, *, recording_id: str | None = None,
                 broadcast_id: str = "", thumbnail_interval_s: float = 60.0, thumbnail_height: int | None = None,
                 max_pending: int = 60, on_status: Callable[[Recorder], None] | None = None) -> None:
        self.packager = packager
        self.storage = storage
        self.prefix = prefix.strip("/")
        self.recording_id = recording_id or uuid.uuid4().hex
        self.broadcast_id = broadcast_id
        self.thumbnail_interval_s = thumbnail_interval_s
        self.thumbnail_height = thumbnail_height
        self.on_status = on_status
        self.status = RecordingStatus.STARTING
        self.status_message = ""
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.segments_written = 0
        self.bytes_written = 0
        self.thumbnails_written = 0
        self.duration_s = 0.0
        self._tracks = {name: _Track(name) for name in packager.names}
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(max_pending)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_thumb_pdt: float | None = None
        self._master_written: set[str] = set()
        self._failed_event_written = False

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    @property
    def playlist_key(self) -> str:
        """Key of the multivariant playlist players open."""
        return self.key(f"{HLS_DIR}/{MASTER}")

    # ------------------------------------------------------------------ lifecycle (event loop)
    async def start(self) -> None:
        """Write recording-started.json and begin with the next segment. Raises StorageError when the storage
        cannot take even that (status FAILED)."""
        self._loop = asyncio.get_running_loop()
        self.started_at = time.time()
        try:
            await asyncio.to_thread(self._put_json, "events/recording-started.json", self._event("RECORDING_STARTED"))
        except StorageError as exc:
            self._fail(exc)
            await asyncio.to_thread(self._write_failed_event)
            raise
        self._thread = threading.Thread(target=self._run, name=f"recorder-{self.recording_id[:8]}", daemon=True)
        self._thread.start()
        self.packager.add_listener(self._on_segment)
        self._set_status(RecordingStatus.RECORDING, "")
        log.info("recording started", extra={"recording": self.recording_id, "to": self.storage.describe()})

    async def stop(self) -> None:
        """Finish: final VOD playlists (EXT-X-ENDLIST) and recording-ended.json. Idempotent."""
        self.packager.remove_listener(self._on_segment)
        if self._thread is None:
            return
        thread, self._thread = self._thread, None
        if self.status == RecordingStatus.RECORDING:
            await asyncio.to_thread(self._jobs.put, self._finish)
        await asyncio.to_thread(self._jobs.put, None)
        await asyncio.to_thread(thread.join)
        if self.status == RecordingStatus.RECORDING:
            self._set_status(RecordingStatus.ENDED, "")

    def _on_segment(self, rendition: str, segment: Segment) -> None:
        if self.status != RecordingStatus.RECORDING:
            return
        seg = self.packager.segmenter(rendition)
        if seg is None or rendition not in self._tracks:
            return
        init = seg.inits.get(segment.init_version)
        if init is None:
            return
        job = self._segment_job(rendition, segment, init, seg.width, seg.height, seg.video_codec,
                                seg.peak_bitrate, seg.config.target_duration)
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            self._fail(StorageError(f"storage too slow: more than {self._jobs.maxsize} writes pending"))

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if self.status == RecordingStatus.FAILED:
                self._write_failed_event()
            if job is None:
                return
            if self.status != RecordingStatus.RECORDING:
                continue
            try:
                job()
            except StorageError as exc:
                self._fail(exc)
                self._write_failed_event()
            except Exception as exc:  # noqa: BLE001 - recording problems never reach the stream
                log.exception("recording job failed")
                self._fail(StorageError(f"recording failed: {exc}"))
                self._write_failed_event()

    def _segment_job(self, rendition: str, segment: Segment, init: bytes, width: int, height: int,
                     codec: str | None, peak: int, target: int) -> Callable[[], None]:
        data = segment.data
        msn, duration, pdt, version = segment.msn, segment.duration, segment.pdt, segment.init_version
        first_part = segment.parts[0].data if segment.parts and segment.parts[0].data else data

        def job() -> None:
            track = self._tracks[rendition]
            base = f"{HLS_DIR}/{rendition}"
            if version not in track.inits_written:
                self._put(f"{base}/init{version}.mp4", init)
                track.inits_written.add(version)
            uri = f"seg{len(track.entries)}.m4s"
            self._put(f"{base}/{uri}", data)
            discontinuity = track.last_init is not None and (
                version != track.last_init or (track.last_msn is not None and msn != track.last_msn + 1))
            track.entries.append((uri, duration, pdt, version, discontinuity))
            track.last_msn, track.last_init = msn, version
            track.width, track.height, track.codec = width, height, codec
            track.peak_bitrate = max(track.peak_bitrate, peak)
            self._put(f"{base}/{PLAYLIST}", vod_playlist(track.entries, target, ended=False).encode())
            if rendition not in self._master_written:
                self._write_master()
                self._master_written.add(rendition)
            self.segments_written += 1
            if rendition == self.packager.source_name:
                self.duration_s += duration
                if self._last_thumb_pdt is None or pdt - self._last_thumb_pdt >= self.thumbnail_interval_s - 1e-3:
                    self._last_thumb_pdt = pdt
                    self._thumbnail(init, first_part)

        return job

    def _thumbnail(self, init: bytes, fragment: bytes) -> None:
        try:
            jpeg, _, _ = jpeg_thumbnail(init, fragment, self.thumbnail_height)
        except (ValueError, av.error.FFmpegError) as exc:
            log.warning("thumbnail failed: %s", exc)
            return
        self._put(f"{THUMB_DIR}/thumb{self.thumbnails_written}.jpg", jpeg)
        self._put(LATEST_THUMB, jpeg)
        self.thumbnails_written += 1

    def _write_master(self) -> None:
        audio = self.packager.audio_codec
        lines = ["#EXTM3U", "#EXT-X-VERSION:9", "#EXT-X-INDEPENDENT-SEGMENTS"]
        for name in self.packager.names:
            track = self._tracks[name]
            if not track.entries or track.codec is None:
                continue
            codecs = track.codec + (f",{audio}" if audio else "")
            bandwidth = max(track.peak_bitrate, 1) + (128_000 if audio else 0)
            lines.append(f'#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},CODECS="{codecs}",'
                         f"RESOLUTION={track.width}x{track.height},FRAME-RATE={self.packager.fps:.3f}")
            lines.append(f"{name}/{PLAYLIST}")
        self._put(f"{HLS_DIR}/{MASTER}", ("\n".join(lines) + "\n").encode())

    def _finish(self) -> None:
        self.ended_at = time.time()
        target = self.packager.config.target_duration
        for name, track in self._tracks.items():
            if track.entries:
                self._put(f"{HLS_DIR}/{name}/{PLAYLIST}", vod_playlist(track.entries, target, ended=True).encode())
        self._write_master()
        self._put_json("events/recording-ended.json", self._event("RECORDING_ENDED"))

    # ------------------------------------------------------------------ helpers
    def _put(self, rel: str, data: bytes) -> None:
        cache = "no-cache" if rel.endswith(".m3u8") or rel == LATEST_THUMB else "public, max-age=31536000, immutable"
        self.storage.put_bytes(self.key(rel), data, cache_control=cache)
        self.bytes_written += len(data)

    def _put_json(self, rel: str, doc: dict) -> None:
        self._put(rel, json.dumps(doc, indent=2).encode())

    def _event(self, status: str) -> dict:
        renditions = [{"path": name, "playlist": PLAYLIST, "resolution_width": t.width,
                       "resolution_height": t.height} for name, t in self._tracks.items() if t.entries]
        doc: dict = {
            "version": "v1",
            "recording_id": self.recording_id,
            "broadcast_id": self.broadcast_id,
            "recording_started_at": _iso(self.started_at or time.time()),
            "recording_status": status,
            "recording_status_message": self.status_message,
            "media": {
                "hls": {"path": HLS_DIR, "playlist": MASTER, "renditions": renditions},
                "thumbnails": {"path": THUMB_DIR, "interval_s": self.thumbnail_interval_s},
            },
        }
        if status != "RECORDING_STARTED":
            doc["recording_ended_at"] = _iso(self.ended_at or time.time())
            doc["media"]["hls"]["duration_ms"] = round(self.duration_s * 1000)
            doc["media"]["thumbnails"]["count"] = self.thumbnails_written
        return doc

    def _fail(self, exc: StorageError) -> None:
        """Stop recording (any thread); the writer thread then leaves recording-failed.json if it can."""
        if self.status == RecordingStatus.FAILED:
            return
        kind = "storage full" if isinstance(exc, StorageFull) else "storage error"
        self.ended_at = time.time()
        self.status_message = f"{kind}: {exc}"
        self.status = RecordingStatus.FAILED
        log.warning("recording %s stopped (the broadcast goes on): %s", self.recording_id, self.status_message)
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self.packager.remove_listener, self._on_segment)
            if self.on_status is not None:
                loop.call_soon_threadsafe(self.on_status, self)
        except RuntimeError:  # loop already closed
            pass

    def _write_failed_event(self) -> None:
        if self._failed_event_written:
            return
        self._failed_event_written = True
        try:  # best effort: the storage may refuse this too
            self.storage.put_bytes(self.key("events/recording-failed.json"),
                                   json.dumps(self._event("RECORDING_FAILED"), indent=2).encode())
        except StorageError:
            pass

    def _set_status(self, status: RecordingStatus, message: str) -> None:
        self.status = status
        self.status_message = message
        if self.on_status is not None:
            try:
                self.on_status(self)
            except Exception:  # noqa: BLE001
                log.exception("recording status callback failed")
