"""fMP4 writer: our init segments and fragments, read back with PyAV (FFmpeg's mp4 demuxer and decoders)."""

from __future__ import annotations

import asyncio
import io
import struct
import time

import av
import pytest
from hls_support import SyntheticEncoder, boxes_of, decode_all, find_box, tone

from playcast.media.hls import HlsPackager
from playcast.media.hls.h264 import NAL_IDR, NAL_SPS, nal_type, parse_sps, split_annexb, to_sample


@pytest.mark.parametrize("size", [(320, 240), (1280, 720), (1920, 1080), (854, 480)])
def test_sps_size_matches_decoder(size: tuple[int, int]) -> None:
    enc = SyntheticEncoder(*size, fps=30)
    packet = enc.encode(0.0)
    units = split_annexb(packet.data)
    sps = next(u for u in units if nal_type(u) == NAL_SPS)
    info = parse_sps(sps)
    frame = next(iter(av.CodecContext.create("h264", "r").decode(av.Packet(packet.data))))
    assert (info.width, info.height) == (frame.width, frame.height) == size
    assert info.codec_string.startswith("avc1.42")  # constrained baseline, as the encoder is configured


def test_annexb_to_sample_strips_parameter_sets() -> None:
    enc = SyntheticEncoder()
    key = to_sample(enc.encode(0.0).data)
    assert key.idr and key.sps is not None and key.pps is not None
    # the sample is 4-byte length-prefixed NAL units with no SPS/PPS/AUD left in it
    pos, kinds = 0, []
    while pos < len(key.sample):
        (n,) = struct.unpack(">I", key.sample[pos:pos + 4])
        kinds.append(key.sample[pos + 4] & 0x1F)
        pos += 4 + n
    assert pos == len(key.sample)
    assert NAL_IDR in kinds and not {7, 8, 9} & set(kinds)
    delta = to_sample(enc.encode(1 / 30).data)
    assert not delta.idr and delta.sps is None
    with pytest.raises(ValueError):
        parse_sps(b"\x68\x00\x00\x00")


async def _feed(packager: HlsPackager, enc: SyntheticEncoder, seconds: float, t0: float,
                audio: bool = True) -> None:
    """Push `seconds` of video and audio with synthetic capture times; wait until the AAC thread caught up."""
    frames = round(seconds * enc.fps)
    packager.push_video(enc.encode(t0))
    if audio:
        chunks = round(seconds / 0.02)
        for i in range(chunks):
            packager.push_audio(tone(0.02, start_sample=i * 960), at=t0 + i * 0.02)
        aac = packager._aac
        assert aac is not None
        deadline = time.monotonic() + 20
        while aac.frames < chunks * 960 // 1024 - 2:
            assert time.monotonic() < deadline, "AAC encoder thread did not keep up"
            await asyncio.sleep(0.01)
    for i in range(1, frames):
        packager.push_video(enc.encode(t0 + i / enc.fps))


async def test_init_and_segments_decode_with_pyav() -> None:
    enc = SyntheticEncoder(320, 240, fps=30)
    packager = HlsPackager(30, request_keyframe=enc.request_keyframe, segment_target_s=1.0)
    t0 = time.time()
    await _feed(packager, enc, 4.0, t0)
    await packager.close()
    assert packager._aac is not None and not packager._aac._thread.is_alive()  # the AAC thread ended
    seg = packager.source
    init = seg.inits[0]
    assert [k for k, _, _ in boxes_of(init)] == [b"ftyp", b"moov"]
    assert find_box(init, [b"moov", b"mvex", b"trex"]) is not None
    avcc = find_box(init, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"])
    assert avcc is not None and b"avcC" in avcc

    segments = list(seg.segments)
    assert len(segments) >= 4
    frames, audio_samples, container = decode_all(init, [s.data for s in segments])
    video, audio = container.streams.video[0], container.streams.audio[0]
    assert (video.codec_context.name, video.codec_context.width, video.codec_context.height) == ("h264", 320, 240)
    assert (audio.codec_context.name, audio.codec_context.sample_rate, audio.codec_context.channels) == ("aac", 48000, 2)
    assert len(frames) == 120  # every frame pushed comes back out
    assert abs(audio_samples / 48000 - 4.0) < 0.15
    # timestamps follow the capture clock: frame i at i/30 s
    assert [round(float(f.pts * f.time_base) * 30) for f in frames] == list(range(120))
    # every segment starts with a keyframe and decodes on its own (init + that segment only)
    for s in segments:
        alone, _, c = decode_all(init, [s.data])
        assert alone and alone[0].key_frame
        assert alone[0].pts == s.start  # 90 kHz, like the playlist's timeline
        c.close()
    container.close()


async def test_fragment_layout_tfdt_and_durations() -> None:
    enc = SyntheticEncoder(320, 240, fps=30)
    packager = HlsPackager(30, request_keyframe=enc.request_keyframe)
    await _feed(packager, enc, 2.5, time.time())
    await packager.close()
    video_time = 0
    audio_next = None
    for s in packager.source.segments:
        part_total = 0.0
        for p in s.parts:
            kinds = [k for k, _, _ in boxes_of(p.data)]
            assert kinds == [b"moof", b"mdat"]
            # first traf is video; its tfdt is where the previous part ended
            tfdt = find_box(p.data, [b"moof", b"traf", b"tfdt"])
            assert tfdt is not None
            assert struct.unpack(">Q", tfdt[4:12])[0] == video_time
            video_time += round(p.duration * 90000)
            part_total += p.duration
            assert p.duration <= packager.config.part_target
            moof_payload = find_box(p.data, [b"moof"])
            assert moof_payload is not None
            # audio tracks runs continue without gaps from part to part
            trafs = [moof_payload[start + 8:start + size] for k, start, size in boxes_of(moof_payload)
                     if k == b"traf"]
            for traf in trafs[1:]:
                tfhd = find_box(traf, [b"tfhd"])
                assert tfhd is not None and struct.unpack(">I", tfhd[4:8])[0] == 2
                a_tfdt = struct.unpack(">Q", find_box(traf, [b"tfdt"])[4:12])[0]
                trun = find_box(traf, [b"trun"])
                count = struct.unpack(">I", trun[4:8])[0]
                if audio_next is not None:
                    assert a_tfdt == audio_next
                audio_next = a_tfdt + count * 1024
        assert abs(part_total - s.duration) < 1e-6
        assert s.parts[0].independent
    assert audio_next is not None


async def test_resolution_change_starts_a_new_init_with_discontinuity() -> None:
    small, big = SyntheticEncoder(320, 240, fps=30), SyntheticEncoder(640, 360, fps=30)
    current = [small]
    packager = HlsPackager(30, audio=False, request_keyframe=lambda why: current[0].request_keyframe(why))
    t0 = time.time()
    for i in range(45):
        packager.push_video(small.encode(t0 + i / 30))
    current[0] = big  # the encoder restarted at another size (its first frame is an IDR)
    for i in range(45, 90):
        packager.push_video(big.encode(t0 + i / 30))
    await packager.close()
    seg = packager.source
    assert sorted(seg.inits) == [0, 1]
    versions = [s.init_version for s in seg.segments]
    assert versions[0] == 0 and versions[-1] == 1
    changed = [s for s in seg.segments if s.discontinuity]
    assert len(changed) == 1 and changed[0].start == 45 * 3000
    text = packager.media("source").decode()
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    assert '#EXT-X-MAP:URI="init1.mp4"' in text.split("#EXT-X-DISCONTINUITY\n")[1]
    after, _, c = decode_all(seg.inits[1], [s.data for s in seg.segments if s.init_version == 1])
    assert after[0].width == 640 and len(after) == 45
    c.close()


async def test_packets_before_first_keyframe_are_skipped_and_audio_only_runs_after() -> None:
    enc = SyntheticEncoder(fps=30)
    enc.encode(time.time())  # swallow the first IDR: the packager sees a stream starting mid-GOP
    packager = HlsPackager(30, audio=False)
    t0 = time.time()
    for i in range(5):
        packager.push_video(enc.encode(t0 + i / 30))
    assert packager.t0 is None and not packager.source.segments
    enc.request_keyframe()
    for i in range(5, 20):
        packager.push_video(enc.encode(t0 + i / 30))
    assert packager.t0 == pytest.approx(t0 + 5 / 30)
    await packager.close()
    frames, samples, c = decode_all(packager.source.inits[0], [s.data for s in packager.source.segments])
    assert len(frames) == 15 and samples == 0 and len(c.streams.audio) == 0
    c.close()


def test_pyav_reads_init_header_without_fragments() -> None:
    async def make() -> bytes:
        enc = SyntheticEncoder(fps=30)
        packager = HlsPackager(30)
        packager.push_video(enc.encode(time.time()))
        init = packager.source.inits[0]
        await packager.close()
        return init

    init = asyncio.run(make())
    with av.open(io.BytesIO(init), format="mp4") as c:
        assert [s.type for s in c.streams] == ["video", "audio"]


async def test_capture_bursts_and_stalls_keep_the_timeline_on_the_capture_clock() -> None:
    """x11grab starts with a burst and catches up after stalls: the timeline must not drift from the capture
    clock (audio sync, PDT) and must have no holes (players stall on them)."""
    enc = SyntheticEncoder(fps=30)
    packager = HlsPackager(30, audio=False, request_keyframe=enc.request_keyframe)
    t0 = time.time()
    times = [t0] * 5  # five frames grabbed at once
    times += [t0 + i / 30 for i in range(1, 60)]
    times += [t0 + 2.4 + i / 30 for i in range(60)]  # a 400 ms stall, then regular again
    for at in times:
        packager.push_video(enc.encode(at))
    await packager.close()
    seg = packager.source
    limit = packager.config.part_target
    parts = [p for s in seg.segments for p in s.parts]
    assert [p for p in parts if p.duration > limit + 1e-9] == [p for p in parts if p.duration > 0.4]
    assert seg.long_parts == 1  # only the part holding the stalled frame is longer than PART-TARGET
    frames, _, c = decode_all(seg.inits[0], [s.data for s in seg.segments])
    pts = [f.pts / 90000 for f in frames]
    assert pts == sorted(pts) and len(set(pts)) == len(times) == len(frames)
    # right after the burst, and for ever after, each frame sits at its capture time (no lead carried on)
    assert all(abs(p - (at - t0)) < 0.002 for p, at in zip(pts[5:], times[5:], strict=True))
    assert pts[4] - pts[0] < 1 / 30  # the burst was squeezed into less than one frame time
    # no holes: segments and parts tile the timeline
    for a, b in zip(seg.segments, list(seg.segments)[1:], strict=False):
        assert abs(a.start / 90000 + a.duration - b.start / 90000) < 1e-6
    c.close()
