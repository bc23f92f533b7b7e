"""Encoder selection: NVENC when it really opens, libx264 otherwise, and the settings of the context."""

from __future__ import annotations

import logging

import av
import pytest

from playcast.media.encoding import (
    NVENC,
    X264,
    EncoderSettings,
    choose_encoder,
    codec_usable,
    input_format,
    make_context,
)


def test_auto_prefers_nvenc_when_usable() -> None:
    assert choose_encoder("auto", lambda name: True) == NVENC


def test_auto_falls_back_to_x264_without_gpu() -> None:
    assert choose_encoder("auto", lambda name: name == X264) == X264


def test_forced_nvenc_falls_back_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert choose_encoder("nvenc", lambda name: name != NVENC) == X264
    assert "falling back" in caplog.text


def test_x264_preference_never_probes_nvenc() -> None:
    probed: list[str] = []

    def usable(name: str) -> bool:
        probed.append(name)
        return True

    assert choose_encoder("x264", usable) == X264
    assert probed == [X264]


def test_unknown_preference_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown encoder preference"):
        choose_encoder("vp9", lambda name: True)


def test_real_probe_on_this_machine_has_no_nvenc() -> None:
    # This machine has no NVIDIA GPU: the real probe must say so instead of crashing, and auto picks x264.
    assert codec_usable(NVENC) is False
    assert codec_usable(X264) is True
    assert choose_encoder("auto", codec_usable) == X264


def test_input_formats() -> None:
    assert input_format(NVENC) == "bgr0"
    assert input_format(X264) == "yuv420p"


def test_x264_context_gives_idr_only_on_request() -> None:
    ctx = make_context(X264, EncoderSettings(320, 240, 60, 1000))
    keyframes = []
    nal_types_at_idr: list[set[int]] = []
    for i in range(40):
        frame = av.VideoFrame(320, 240, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 7) % 256]) * plane.buffer_size)
        frame.pts = i
        frame.pict_type = av.video.frame.PictureType.I if i == 20 else av.video.frame.PictureType.NONE
        for packet in ctx.encode(frame):
            keyframes.append((packet.pts, packet.is_keyframe))
            if packet.is_keyframe:
                data = bytes(packet)
                nal_types_at_idr.append({data[j + 3] & 0x1F for j in range(len(data) - 3)
                                         if data[j:j + 3] == b"\x00\x00\x01"})
    # zerolatency: one packet per frame, no delay; keyframes only at 0 and at the forced frame.
    assert len(keyframes) == 40
    assert [pts for pts, key in keyframes if key] == [0, 20]
    # IDRs repeat SPS/PPS in band (NAL types 7 and 8 with 5), so a late joiner can decode from any of them.
    assert all({5, 7, 8} <= types for types in nal_types_at_idr)
