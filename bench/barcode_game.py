"""The source picture of bench/vs_selkies.py: a 60 fps pygame animation whose every frame carries, in a barcode at
the top (bench/barcode.py), the wall-clock millisecond at which it was drawn; it counts the frames it drew.

Runs as a playcast application (its launcher passes PLAYCAST_WIDTH/HEIGHT) and as the X client of Selkies' display
alike; it needs no audio, input or network. BARCODE_COUNT_FILE: where it writes "frames-drawn wall-time" twice a
second and at exit. Run: DISPLAY=:1 python bench/barcode_game.py [--size 1280x720] [--fps 60]"""

from __future__ import annotations

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEO_WINDOW_POS", "0,0")
os.environ.setdefault("SDL_FRAMEBUFFER_ACCELERATION", "0")  # plain X11 framebuffer, as the demo game does

import argparse  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pygame  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import barcode  # noqa: E402

BG = (20, 24, 48)
BOX = (250, 170, 40)
BAND = [(60, 140, 230), (230, 230, 240)]
BOX_SPEED = (420.0, 260.0)  # px/s
BAND_SPEED = 360.0  # px/s
STRIPE = 48  # px


class Counter:
    """Frames drawn, written to BARCODE_COUNT_FILE (atomically: the bench reads it while the game runs)."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self.frames = 0
        self._written_at = 0.0

    def tick(self, now: float, force: bool = False) -> None:
        self.frames += 0 if force else 1
        if self.path is None or (not force and now - self._written_at < 0.5):
            return
        self._written_at = now
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(f"{self.frames} {time.time():.3f}\n")
        tmp.replace(self.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default=f"{os.environ.get('PLAYCAST_WIDTH', '1280')}x"
                                      f"{os.environ.get('PLAYCAST_HEIGHT', '720')}")
    ap.add_argument("--fps", type=int, default=60)
    args, _ = ap.parse_known_args()
    w, h = (int(x) for x in args.size.split("x"))
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    pygame.display.init()
    screen = pygame.display.set_mode((w, h), pygame.NOFRAME)
    pygame.display.set_caption("barcode")
    clock = pygame.time.Clock()
    counter = Counter(os.environ.get("BARCODE_COUNT_FILE"))
    bw, bh = 160, 160
    x, y, vx, vy = w / 3, h / 2, *BOX_SPEED
    band_y, band_h = h * 2 // 3, h // 8
    top = barcode.ROWS * barcode.cell_size(w)[1] + 8  # the box never covers the barcode
    start = time.monotonic()
    try:
        while running:
            dt = min(clock.tick(args.fps) / 1000.0, 0.05)
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    running = False
            x, y = x + vx * dt, y + vy * dt
            if not 0 <= x <= w - bw:
                vx, x = -vx, min(max(x, 0), w - bw)
            if not top <= y <= h - bh:
                vy, y = -vy, min(max(y, top), h - bh)
            screen.fill(BG)
            offset = int((time.monotonic() - start) * BAND_SPEED) % (2 * STRIPE)
            for i, sx in enumerate(range(-2 * STRIPE + offset, w, STRIPE)):
                screen.fill(BAND[i % 2], (sx, band_y, STRIPE, band_h))
            screen.fill(BOX, (int(x), int(y), bw, bh))
            now = time.time()
            barcode.draw(screen, int(now * 1000) & 0xFFFFFFFF)  # stamped last: the moment this picture is shown
            pygame.display.flip()
            counter.tick(now)
    finally:
        counter.tick(time.time(), force=True)
        pygame.quit()


if __name__ == "__main__":
    main()
