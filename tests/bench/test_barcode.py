"""The timestamp barcode of bench/vs_selkies.py: what the game draws (bench/barcode.py, into a pygame Surface) is what
the browser's decoder (its DECODE_JS, run in headless Chromium on a PNG of that Surface) reads back; a misread is
refused, never turned into a wrong value; the cells survive an H.264 round trip at the bench's bitrate."""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame  # noqa: E402

from tests.harness import chromium  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "bench_barcode", Path(__file__).resolve().parents[2] / "bench" / "barcode.py")
assert _spec is not None and _spec.loader is not None
barcode = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(barcode)


def frame(value: int, width: int = 1280, height: int = 720) -> pygame.Surface:
    """A frame like the game's: a coloured background, moving things, the barcode on top."""
    s = pygame.Surface((width, height))
    s.fill((20, 24, 48))
    s.fill((250, 170, 40), (300, 200, 160, 160))
    for x in range(0, width, 96):
        s.fill((60, 140, 230), (x, height * 2 // 3, 48, height // 8))
    barcode.draw(s, value)
    return s


def png(surface: pygame.Surface) -> str:
    buf = io.BytesIO()
    pygame.image.save(surface, buf, "x.png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def page() -> Iterator[object]:
    with chromium() as browser:
        p = browser.new_page()  # type: ignore[attr-defined]
        p.set_content("<html><body></body></html>")
        p.evaluate(barcode.DECODE_JS)
        yield p


def decode(page, surface: pygame.Surface) -> int:  # type: ignore[no-untyped-def]
    return page.evaluate("""async (src) => { const img = new Image(); img.src = src; await img.decode();
        return window.__barcode.decode(img, img.naturalWidth); }""", png(surface))


def cell(surface: pygame.Surface, row: int, col: int, colour: tuple[int, int, int]) -> None:
    cw, ch = barcode.cell_size(surface.get_width())
    surface.fill(colour, (col * cw, row * ch, cw, ch))


@pytest.mark.parametrize("width,height", [(1280, 720), (1920, 1080)])
def test_what_the_game_draws_the_browser_reads(page, width: int, height: int) -> None:  # type: ignore[no-untyped-def]
    now = int(time.time() * 1000) & 0xFFFFFFFF
    for value in (0, 1, 0xFFFFFFFF, 0xA5A5A5A5, 0x80000000, now):
        assert decode(page, frame(value, width, height)) == value


def test_a_misread_is_refused(page) -> None:  # type: ignore[no-untyped-def]
    value = 0x12345678
    assert decode(page, frame(value)) == value
    one_cell = frame(value)  # a data cell now equals its inverse: that bit cannot be read
    cell(one_cell, 0, 5, barcode.WHITE if not value >> 26 & 1 else barcode.BLACK)
    assert decode(page, one_cell) == -1
    grey = frame(value)  # a smeared pair (two greys too alike) is no bit either
    cell(grey, 0, 20, (140, 140, 140))
    cell(grey, 1, 20, (110, 110, 110))
    assert decode(page, grey) == -1
    readable = frame(value)  # the black cell of a pair grey, still clearly apart from the white one: the right bit
    cell(readable, 1 if value >> 11 & 1 else 0, 20, (128, 128, 128))
    assert decode(page, readable) == value
    flipped = frame(value)  # a bit and its inverse both flipped: readable, but the CRC catches it
    bit = value >> (31 - 9) & 1
    cell(flipped, 0, 9, barcode.BLACK if bit else barcode.WHITE)
    cell(flipped, 1, 9, barcode.WHITE if bit else barcode.BLACK)
    assert decode(page, flipped) == -2
    guard = frame(value)  # looking at a picture without the guard pattern
    cell(guard, 2, 17, barcode.WHITE)
    assert decode(page, guard) == -3
    shifted = pygame.Surface((1280, 720))  # the barcode drawn half a cell to the right: refused, not misread
    shifted.fill((0, 0, 0))
    shifted.blit(frame(value), (barcode.cell_size(1280)[0] // 2, 0))
    assert decode(page, shifted) < 0
    assert decode(page, pygame.Surface((1280, 720))) < 0  # a black frame before the game drew


def test_the_cells_survive_h264(page) -> None:  # type: ignore[no-untyped-def]
    import av
    import numpy as np

    values = [0x0F0F0F0F + 977 * i for i in range(12)]
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = 1280, 720, "yuv420p"
    enc.time_base, enc.framerate = Fraction(1, 60), Fraction(60)
    enc.bit_rate = 6_000_000
    enc.options = {"preset": "ultrafast", "tune": "zerolatency"}
    dec = av.CodecContext.create("h264", "r")
    decoded = []
    for i, v in enumerate(values):
        rgb = np.ascontiguousarray(pygame.surfarray.array3d(frame(v)).transpose(1, 0, 2))
        vf = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        vf.pts = i
        for pkt in enc.encode(vf):
            decoded += dec.decode(pkt)
    for pkt in enc.encode(None):
        decoded += dec.decode(pkt)
    decoded += dec.decode(None)
    assert len(decoded) == len(values)
    for v, out in zip(values, decoded, strict=True):
        arr = out.to_ndarray(format="rgb24")
        surf = pygame.image.frombuffer(arr.tobytes(), (arr.shape[1], arr.shape[0]), "RGB")
        assert decode(page, surf) == v
