"""Sound effects for the demo game, synthesized with numpy at the mixer's rate (no sound files shipped).

Pure sample generation plus a tolerant mixer start; it must not fail the game when no audio device exists."""

from __future__ import annotations

import logging
import os

import numpy as np

logger = logging.getLogger(__name__)


def hit_samples(rate: int = 48000, seconds: float = 0.18) -> np.ndarray:
    """A falling two-tone chirp with a fast decay: int16 mono samples."""
    t = np.arange(int(rate * seconds)) / rate
    freq = 1200.0 * np.exp(-t * 6.0) + 300.0
    phase = 2 * np.pi * np.cumsum(freq) / rate
    wave = 0.6 * np.sin(phase) + 0.25 * np.sin(2 * phase)
    envelope = np.exp(-t * 14.0) * np.minimum(1.0, t * 400.0)
    return (wave * envelope * 0.8 * 32767).astype(np.int16)


def shot_samples(rate: int = 48000, seconds: float = 0.06) -> np.ndarray:
    """A short soft blip for firing: int16 mono samples."""
    t = np.arange(int(rate * seconds)) / rate
    wave = np.sin(2 * np.pi * (900.0 - 4000.0 * t) * t)
    envelope = np.exp(-t * 50.0) * np.minimum(1.0, t * 800.0)
    return (wave * envelope * 0.25 * 32767).astype(np.int16)


class Sounds:
    """The game's sound effects, or silence when no audio device can be opened."""

    def __init__(self) -> None:
        self.enabled = False
        self._hit = None
        self._shot = None

    def start(self) -> None:
        import pygame

        try:
            pygame.mixer.pre_init(48000, -16, 2, 512)
            pygame.mixer.init()
            rate, _, channels = pygame.mixer.get_init()
            self._hit = pygame.sndarray.make_sound(_channels(hit_samples(rate), channels))
            self._shot = pygame.sndarray.make_sound(_channels(shot_samples(rate), channels))
            self.enabled = True
            logger.info("audio on (%d Hz, %d channels, SDL driver %s)", rate, channels,
                        os.environ.get("SDL_AUDIODRIVER", "auto"))
        except (pygame.error, TypeError, ValueError) as exc:
            logger.info("no audio device (%s): running silently", exc)
            self.enabled = False

    def hit(self) -> None:
        if self.enabled and self._hit is not None:
            self._hit.play()

    def shot(self) -> None:
        if self.enabled and self._shot is not None:
            self._shot.play()

    def stop(self) -> None:
        import pygame

        if self.enabled:
            pygame.mixer.quit()
            self.enabled = False


def _channels(mono: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1:
        return np.ascontiguousarray(mono)
    return np.ascontiguousarray(np.repeat(mono[:, None], channels, axis=1))

