"""Recorder: fMP4 HLS segments with PDT, VOD playlists, thumbnails and events in a Storage; failures stop only it."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from pathlib import Path

import av
import pytest
from hls_support import SyntheticEncoder, decode_all, parse_playlist, s3_storage, tone

from playcast.media.hls import HlsPackager
from playcast.media.recorder import Recorder, RecordingStatus, ivs_style_prefix
from playcast.storage import LocalStorage, Storage, StorageError
from tests.s3_support import MotoServer


async def _run(packager: HlsPackager, enc: SyntheticEncoder, seconds: float, t0: float, start: int = 0) -> None:
    """Push `seconds` of frames (+ tone) with capture times from t0, yielding to the loop between segments."""
    for i in range(start, start + round(seconds * enc.fps)):
        at = t0 + i / enc.fps
        packager.push_video(enc.encode(at))
        packager.push_audio(tone(1 / enc.fps, start_sample=i * 1600), at=at)
        if i % 10 == 0:
            await asyncio.sleep(0.005)  # let the AAC thread and the recorder keep pace


async def _wait(cond, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _record(storage: Storage, seconds: float = 7.0, **kw) -> tuple[Recorder, HlsPackager]:  # type: ignore[no-untyped-def]
    enc = SyntheticEncoder(320, 240, fps=30)
    packager = HlsPackager(30, request_keyframe=enc.request_keyframe)
    statuses: list[str] = []
    rec = Recorder(packager, storage, ivs_style_prefix("b1", "rec1", 1_700_000_000), broadcast_id="b1",
                   recording_id="rec1", thumbnail_interval_s=2.0, on_status=lambda r: statuses.append(r.status),
                   **kw)
    await rec.start()
    done: list = []
    packager.add_listener(lambda name, seg: done.append(seg))
    await _run(packager, enc, seconds, time.time())
    await packager.close()
    await rec.stop()
    rec.statuses = statuses  # type: ignore[attr-defined]
    packager.all_segments = done  # type: ignore[attr-defined]
    return rec, packager


def _check_layout(storage: Storage, rec: Recorder, packager: HlsPackager) -> None:
    prefix = rec.prefix
    assert prefix == "b1/2023/11/14/22/13/rec1"
    keys = {i.key[len(prefix) + 1:] for i in storage.list(prefix + "/")}
    started = json.loads(storage.get(f"{prefix}/events/recording-started.json"))
    ended = json.loads(storage.get(f"{prefix}/events/recording-ended.json"))
    assert started["recording_status"] == "RECORDING_STARTED" and started["recording_id"] == "rec1"
    assert ended["recording_status"] == "RECORDING_ENDED" and ended["broadcast_id"] == "b1"
    assert ended["recording_ended_at"] >= ended["recording_started_at"]
    assert ended["media"]["hls"]["renditions"] == [
        {"path": "source", "playlist": "playlist.m3u8", "resolution_width": 320, "resolution_height": 240}]
    segments = packager.all_segments  # type: ignore[attr-defined]
    total = sum(s.duration for s in segments)
    assert abs(ended["media"]["hls"]["duration_ms"] - total * 1000) < 2
    # VOD playlist: every segment with its duration and wall-clock time, ended, seekable
    pl = parse_playlist(storage.get(f"{prefix}/media/hls/source/playlist.m3u8").decode())
    assert pl["tags"]["EXT-X-PLAYLIST-TYPE"] == ["VOD"] and pl["lines"][-1] == "#EXT-X-ENDLIST"
    assert pl["tags"]["EXT-X-MAP"] == ['URI="init0.mp4"']
    assert [d for _, d in pl["segments"]] == [pytest.approx(s.duration, abs=1e-4) for s in segments]
    assert len(pl["pdt"]) == len(segments)
    assert "media/hls/source/init0.mp4" in keys
    assert {f"media/hls/source/seg{i}.m4s" for i in range(len(segments))} <= keys
    master = storage.get(f"{prefix}/media/hls/master.m3u8").decode()
    assert "source/playlist.m3u8" in master and 'CODECS="avc1.42c00d,mp4a.40.2"' in master
    # thumbnails every 2 s of media: real JPEGs of the picture
    thumbs = sorted(k for k in keys if k.startswith("media/thumbnails/"))
    assert len(thumbs) == ended["media"]["thumbnails"]["count"] == rec.thumbnails_written
    expected, last = 0, None
    for seg in segments:  # one at the first segment, then at the first segment >= 2 s later, and so on
        if last is None or seg.pdt - last >= 2.0 - 1e-3:
            expected, last = expected + 1, seg.pdt
    assert len(thumbs) == expected >= math.floor(total / 2)
    jpeg = storage.get(f"{prefix}/{thumbs[0]}")
    assert jpeg[:2] == b"\xff\xd8"
    assert storage.get(f"{prefix}/media/latest_thumbnail/thumb.jpg")[:2] == b"\xff\xd8"
    codec = av.CodecContext.create("mjpeg", "r")
    picture = codec.decode(av.Packet(jpeg))[0]
    assert (picture.width, picture.height) == (320, 240)
    # everything decodes: init + all segments
    frames, audio, c = decode_all(storage.get(f"{prefix}/media/hls/source/init0.mp4"),
                                  [storage.get(f"{prefix}/media/hls/source/seg{i}.m4s") for i in range(len(segments))])
    assert len(frames) == round(total * 30) and audio > 0
    c.close()


async def test_recording_to_a_local_directory_plays_as_vod(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "recordings")
    rec, packager = await _record(storage)
    assert rec.status == RecordingStatus.ENDED and rec.statuses == ["RECORDING", "ENDED"]  # type: ignore[attr-defined]
    _check_layout(storage, rec, packager)
    # FFmpeg's own HLS demuxer plays the VOD playlist from the directory, and seeks in it
    playlist = tmp_path / "recordings" / rec.playlist_key
    with av.open(str(playlist)) as c:
        stream = c.streams.video[0]
        count = sum(1 for _ in c.decode(stream))
        assert count == sum(round(s.duration * 30) for s in packager.all_segments)  # type: ignore[attr-defined]
        c.seek(4 * av.time_base, any_frame=False)
        frame = next(c.decode(stream))
        assert 3.0 <= float((frame.pts - stream.start_time) * stream.time_base) <= 5.5  # the segment around 4 s


async def test_recording_to_s3(moto: MotoServer) -> None:
    storage = s3_storage(moto, f"rec-{uuid.uuid4().hex[:10]}", prefix="ivs/v1")
    rec, packager = await _record(storage, seconds=5.0)
    assert rec.status == RecordingStatus.ENDED
    _check_layout(storage, rec, packager)
    raw = storage._client.head_object(Bucket=storage.bucket, Key=f"ivs/v1/{rec.prefix}/media/hls/source/seg0.m4s")
    assert raw["ContentType"] == "video/mp4" and "immutable" in raw["CacheControl"]


async def test_storage_full_stops_recording_but_not_the_stream(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "small", quota_bytes=60_000)
    enc = SyntheticEncoder(320, 240, fps=30)
    packager = HlsPackager(30, request_keyframe=enc.request_keyframe)
    statuses: list[tuple[str, str]] = []
    rec = Recorder(packager, storage, "r", thumbnail_interval_s=1.0,
                   on_status=lambda r: statuses.append((r.status, r.status_message)))
    await rec.start()
    t0 = time.time()
    await _run(packager, enc, 8.0, t0)
    await _wait(lambda: rec.status == RecordingStatus.FAILED)
    await _wait(lambda: statuses and statuses[-1][0] == "FAILED")
    assert rec.status_message.startswith("storage full:") and "quota" in rec.status_message
    written = rec.segments_written
    assert 0 < written < 8
    # the broadcast goes on: new segments keep coming, the recorder no longer listens
    before = packager.source.live_msn
    await _run(packager, enc, 3.0, t0, start=240)
    assert packager.source.live_msn >= before + 2
    assert rec.segments_written == written
    await packager.close()
    await rec.stop()
    assert rec.status == RecordingStatus.FAILED
    assert not storage.exists("r/events/recording-ended.json")


async def test_unwritable_storage_fails_at_start_with_a_clear_status(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "gone")
    (tmp_path / "gone").rmdir()
    (tmp_path / "gone").write_text("a file, not a directory")
    enc = SyntheticEncoder(fps=30)
    packager = HlsPackager(30, audio=False, request_keyframe=enc.request_keyframe)
    rec = Recorder(packager, storage, "x")
    with pytest.raises(StorageError, match="cannot write"):
        await rec.start()
    assert rec.status == RecordingStatus.FAILED and rec.status_message.startswith("storage error:")
    for i in range(40):
        packager.push_video(enc.encode(time.time() + i / 30))
    assert packager.source.ready  # streaming is unaffected
    await rec.stop()
    await packager.close()


async def test_storage_removed_mid_recording_fails_cleanly(moto: MotoServer) -> None:
    storage = s3_storage(moto, f"del-{uuid.uuid4().hex[:10]}")
    enc = SyntheticEncoder(320, 240, fps=30)
    packager = HlsPackager(30, request_keyframe=enc.request_keyframe)
    rec = Recorder(packager, storage, "r")
    await rec.start()
    t0 = time.time()
    await _run(packager, enc, 2.5, t0)
    await _wait(lambda: rec.segments_written >= 2)
    for item in storage.list():
        storage.delete(item.key)
    storage._client.delete_bucket(Bucket=storage.bucket)
    await _run(packager, enc, 2.5, t0, start=75)
    await _wait(lambda: rec.status == RecordingStatus.FAILED)
    assert "NoSuchBucket" in rec.status_message
    await packager.close()
    await rec.stop()
