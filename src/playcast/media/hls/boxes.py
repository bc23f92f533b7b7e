"""ISO BMFF (fMP4 / CMAF) box writer: the init segment (ftyp+moov) and media fragments (moof+mdat).

Pure byte building for one H.264 video track and one optional AAC-LC audio track; no timing policy, no I/O."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from playcast.media.hls.h264 import parse_sps

VIDEO_TRACK = 1
AUDIO_TRACK = 2

_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
_SAMPLE_SYNC = 0x02000000  # sample_depends_on = 2 (I-frame)
_SAMPLE_NON_SYNC = 0x01010000  # depends on others, sample_is_non_sync_sample


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


@dataclass(frozen=True)
class VideoConfig:
    sps: bytes
    pps: bytes
    timescale: int

    @property
    def info(self):  # type: ignore[no-untyped-def]
        return parse_sps(self.sps)


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int
    channels: int
    asc: bytes  # AudioSpecificConfig from the encoder
    bitrate: int

    @property
    def codec_string(self) -> str:
        return "mp4a.40.2"


# ------------------------------------------------------------------ init segment
def _avcc(sps: bytes, pps: bytes) -> bytes:
    info = parse_sps(sps)
    body = bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + struct.pack(">H", len(sps)) + sps
    body += bytes([1]) + struct.pack(">H", len(pps)) + pps
    if info.profile_idc in (100, 110, 122, 144):
        body += bytes([0xFC | info.chroma_format_idc, 0xF8, 0xF8, 0])
    return box(b"avcC", body)


def _avc1(v: VideoConfig) -> bytes:
    info = v.info
    entry = (b"\x00" * 6 + struct.pack(">H", 1) + b"\x00" * 16
             + struct.pack(">HHIIIH", info.width, info.height, 0x00480000, 0x00480000, 0, 1)
             + b"\x00" * 32 + struct.pack(">Hh", 0x0018, -1))
    return box(b"avc1", entry, _avcc(v.sps, v.pps))


def _descriptor(tag: int, body: bytes) -> bytes:
    n = len(body)
    # 4-byte expandable size (always valid, simple)
    size = bytes([0x80 | ((n >> 21) & 0x7F), 0x80 | ((n >> 14) & 0x7F), 0x80 | ((n >> 7) & 0x7F), n & 0x7F])
    return bytes([tag]) + size + body


def _mp4a(a: AudioConfig) -> bytes:
    dsi = _descriptor(0x05, a.asc)
    dcd = _descriptor(0x04, bytes([0x40, 0x15]) + (0).to_bytes(3, "big") + struct.pack(">II", a.bitrate, a.bitrate)
                      + dsi)
    esd = _descriptor(0x03, struct.pack(">HB", 0, 0) + dcd + _descriptor(0x06, b"\x02"))
    entry = (b"\x00" * 6 + struct.pack(">H", 1) + b"\x00" * 8
             + struct.pack(">HHHHI", a.channels, 16, 0, 0, a.sample_rate << 16))
    return box(b"mp4a", entry, full_box(b"esds", 0, 0, esd))


def _trak(track_id: int, handler: bytes, timescale: int, width: int, height: int, media_header: bytes,
          sample_entry: bytes) -> bytes:
    volume = 0x0100 if handler == b"soun" else 0
    tkhd = full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, track_id, 0, 0), b"\x00" * 8,
                    struct.pack(">hhhH", 0, 0, volume, 0), _MATRIX, struct.pack(">II", width << 16, height << 16))
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, 0x55C4, 0))
    name = b"VideoHandler\x00" if handler == b"vide" else b"SoundHandler\x00"
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I", 0), handler, b"\x00" * 12, name)
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    stbl = box(b"stbl",
               full_box(b"stsd", 0, 0, struct.pack(">I", 1), sample_entry),
               full_box(b"stts", 0, 0, struct.pack(">I", 0)),
               full_box(b"stsc", 0, 0, struct.pack(">I", 0)),
               full_box(b"stsz", 0, 0, struct.pack(">II", 0, 0)),
               full_box(b"stco", 0, 0, struct.pack(">I", 0)))
    minf = box(b"minf", media_header, dinf, stbl)
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


def init_segment(video: VideoConfig, audio: AudioConfig | None) -> bytes:
    """ftyp + moov for the video track (id 1) and, when given, the audio track (id 2)."""
    info = video.info
    ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6cmfcmp41")
    next_id = AUDIO_TRACK + 1 if audio else VIDEO_TRACK + 1
    mvhd = full_box(b"mvhd", 0, 0, struct.pack(">IIIIIH", 0, 0, 1000, 0, 0x00010000, 0x0100), b"\x00" * 10,
                    _MATRIX, b"\x00" * 24, struct.pack(">I", next_id))
    traks = [_trak(VIDEO_TRACK, b"vide", video.timescale, info.width, info.height,
                   full_box(b"vmhd", 0, 1, b"\x00" * 8), _avc1(video))]
    trexs = [full_box(b"trex", 0, 0, struct.pack(">IIIII", VIDEO_TRACK, 1, 0, 0, 0))]
    if audio is not None:
        traks.append(_trak(AUDIO_TRACK, b"soun", audio.sample_rate, 0, 0,
                           full_box(b"smhd", 0, 0, b"\x00" * 4), _mp4a(audio)))
        trexs.append(full_box(b"trex", 0, 0, struct.pack(">IIIII", AUDIO_TRACK, 1, 0, 0, 0)))
    return ftyp + box(b"moov", mvhd, *traks, box(b"mvex", *trexs))


# ------------------------------------------------------------------ fragments
@dataclass(frozen=True)
class Sample:
    data: bytes
    duration: int  # in the track's timescale
    sync: bool = True


@dataclass(frozen=True)
class TrackRun:
    track_id: int
    base_time: int  # baseMediaDecodeTime of the first sample
    samples: Sequence[Sample]
    with_flags: bool  # per-sample flags (video); audio samples are all sync


def fragment(sequence: int, runs: Sequence[TrackRun]) -> bytes:
    """One moof+mdat pair holding the given runs (empty runs are skipped)."""
    runs = [r for r in runs if r.samples]
    if not runs:
        raise ValueError("a fragment needs at least one sample")
    trafs: list[bytes] = []
    offset_positions: list[int] = []  # where each trun's data_offset sits inside moof
    mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", sequence))
    pos = 8 + len(mfhd)  # inside moof
    for r in runs:
        tfhd = full_box(b"tfhd", 0, 0x020000, struct.pack(">I", r.track_id))
        tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", r.base_time))
        flags = 0x000001 | 0x000100 | 0x000200 | (0x000400 if r.with_flags else 0)
        if r.with_flags:
            entries = b"".join(struct.pack(">III", s.duration, len(s.data),
                                           _SAMPLE_SYNC if s.sync else _SAMPLE_NON_SYNC) for s in r.samples)
        else:
            entries = b"".join(struct.pack(">II", s.duration, len(s.data)) for s in r.samples)
        trun = full_box(b"trun", 0, flags, struct.pack(">Ii", len(r.samples), 0), entries)
        traf = box(b"traf", tfhd, tfdt, trun)
        # trun's data_offset field: traf header 8 + tfhd + tfdt + trun header 8 + version/flags 4 + count 4
        offset_positions.append(pos + 8 + len(tfhd) + len(tfdt) + 16)
        pos += len(traf)
        trafs.append(traf)
    moof = bytearray(box(b"moof", mfhd, *trafs))
    data_start = len(moof) + 8  # first byte of mdat payload, relative to moof start
    payload: list[bytes] = []
    for r, at in zip(runs, offset_positions, strict=True):
        struct.pack_into(">i", moof, at, data_start)
        for s in r.samples:
            payload.append(s.data)
            data_start += len(s.data)
    body = b"".join(payload)
    return bytes(moof) + struct.pack(">I", 8 + len(body)) + b"mdat" + body
