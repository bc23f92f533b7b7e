"""H.264 Annex-B helpers for the fMP4 writer: split NAL units, pick SPS/PPS, read size and profile from an SPS.

Bitstream inspection only: never decodes pictures, never touches containers or I/O."""

from __future__ import annotations

from dataclasses import dataclass

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B access unit (start codes removed, empty units dropped)."""
    units: list[bytes] = []
    n = len(data)
    i = data.find(b"\x00\x00\x01")
    while i != -1:
        start = i + 3
        j = data.find(b"\x00\x00\x01", start)
        end = n if j == -1 else j
        # A 4-byte start code leaves a trailing zero on the previous unit.
        unit_end = end
        while unit_end > start and j != -1 and data[unit_end - 1] == 0:
            unit_end -= 1
        if unit_end > start:
            units.append(data[start:unit_end])
        i = j
    return units


def nal_type(unit: bytes) -> int:
    return unit[0] & 0x1F


@dataclass(frozen=True)
class AccessUnit:
    """One frame, converted for MP4: 4-byte length-prefixed NAL units without SPS/PPS/AUD."""

    sample: bytes
    sps: bytes | None
    pps: bytes | None
    idr: bool


def to_sample(data: bytes) -> AccessUnit:
    """Annex-B access unit -> MP4 sample (parameter sets go to the init segment's avcC instead)."""
    sps = pps = None
    idr = False
    parts: list[bytes] = []
    for unit in split_annexb(data):
        kind = nal_type(unit)
        if kind == NAL_SPS:
            sps = unit
        elif kind == NAL_PPS:
            pps = unit
        elif kind == NAL_AUD:
            continue
        else:
            if kind == NAL_IDR:
                idr = True
            parts.append(len(unit).to_bytes(4, "big"))
            parts.append(unit)
    return AccessUnit(b"".join(parts), sps, pps, idr)


class _Bits:
    """Exp-Golomb reader over an RBSP (emulation prevention bytes removed)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def bit(self) -> int:
        byte = self.pos >> 3
        if byte >= len(self.data):
            raise ValueError("SPS ends early")
        value = (self.data[byte] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code in SPS")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _rbsp(unit: bytes) -> bytes:
    return unit.replace(b"\x00\x00\x03", b"\x00\x00")


@dataclass(frozen=True)
class SpsInfo:
    profile_idc: int
    constraint_flags: int
    level_idc: int
    width: int
    height: int
    chroma_format_idc: int

    @property
    def codec_string(self) -> str:
        """RFC 6381 codec parameter, e.g. avc1.42c01f."""
        return f"avc1.{self.profile_idc:02x}{self.constraint_flags:02x}{self.level_idc:02x}"


def parse_sps(unit: bytes) -> SpsInfo:
    """Picture size and profile from an SPS NAL unit (with its one-byte NAL header)."""
    if len(unit) < 4 or nal_type(unit) != NAL_SPS:
        raise ValueError("not an SPS NAL unit")
    r = _Bits(_rbsp(unit[1:]))
    profile = r.bits(8)
    constraints = r.bits(8)
    level = r.bits(8)
    r.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in _HIGH_PROFILES:
        chroma = r.ue()
        if chroma == 3:
            r.bit()  # separate_colour_plane_flag
        r.ue()  # bit_depth_luma_minus8
        r.ue()  # bit_depth_chroma_minus8
        r.bit()  # qpprime_y_zero_transform_bypass_flag
        if r.bit():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if r.bit():
                    size = 16 if i < 6 else 64
                    last = nxt = 8
                    for _ in range(size):
                        if nxt != 0:
                            nxt = (last + r.se() + 256) % 256
                        last = nxt if nxt != 0 else last
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.bit()
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_map_units = r.ue() + 1
    frame_mbs_only = r.bit()
    if not frame_mbs_only:
        r.bit()  # mb_adaptive_frame_field_flag
    r.bit()  # direct_8x8_inference_flag
    crop = (0, 0, 0, 0)
    if r.bit():  # frame_cropping_flag
        crop = (r.ue(), r.ue(), r.ue(), r.ue())
    sub_w = 2 if chroma in (1, 2) else 1
    sub_h = 2 if chroma == 1 else 1
    if chroma == 0:
        sub_w = sub_h = 1
    height_factor = 2 - frame_mbs_only
    width = width_mbs * 16 - sub_w * (crop[0] + crop[1])
    height = height_map_units * 16 * height_factor - sub_h * height_factor * (crop[2] + crop[3])
    return SpsInfo(profile, constraints, level, width, height, chroma)
