"""The bundled demo game: fly a ship, hit targets, see viewers' messages; pygame on the session's X display.

A real 60 fps game loop that stays cheap on CPU (the encoder and a browser share the cores); it must never block
on the network or fail for lack of an audio device or gamepad. Run: python -m playcast.demo.game
"""

from __future__ import annotations

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEO_WINDOW_POS", "0,0")
# The window surface as a plain X11 (MIT-SHM) framebuffer: SDL would otherwise route every frame through
# OpenGL, which on a GPU-less host is Mesa software rendering and costs ~6 ms of CPU per frame.
os.environ.setdefault("SDL_FRAMEBUFFER_ACCELERATION", "0")
# Find gamepads by watching /dev/input (inotify) rather than through udev events: hosts in containers often run
# no udevd, and the host's virtual pads (uinput) appear after the game has started.
os.environ.setdefault("SDL_JOYSTICK_DISABLE_UDEV", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import pygame  # noqa: E402

from playcast.demo.appclient import CLIENT_CONNECTED, CLIENT_DISCONNECTED, MESSAGE, AppMessageClient  # noqa: E402
from playcast.demo.feed import Feed, describe  # noqa: E402
from playcast.demo.sounds import Sounds  # noqa: E402

logger = logging.getLogger("playcast.demo")

PROBE_SIZE = 64  # the latency probe square at (0, 0); nothing else draws there
HUD_X = PROBE_SIZE + 20
STARFIELD_SPEED = 40.0  # px/s
SHIP_SPEED = 520.0  # px/s for keyboard and gamepad
SHIP_SIZE = 22
BULLET_SPEED = 1100.0
FIRE_INTERVAL = 0.12
MAX_TARGETS = 6
DEADZONE = 0.2

BG = (14, 16, 32)
SHIP = (90, 220, 255)
FLAME = (255, 170, 60)
TARGET = (255, 90, 120)
BONUS = (255, 215, 70)
BULLET = (240, 240, 255)
TEXT = (225, 230, 245)
DIM = (130, 140, 170)


@dataclass
class Target:
    x: float
    y: float
    vx: float
    vy: float
    r: float
    bonus: bool = False


@dataclass
class Flash:
    x: float
    y: float
    born: float
    color: tuple[int, int, int]


class Game:
    """Game state, input handling, simulation and drawing. The main loop owns timing and the network."""

    def __init__(self, screen: pygame.Surface, rng: random.Random, sounds: Sounds, feed: Feed,
                 probe: bool) -> None:
        self.screen = screen
        self.w, self.h = screen.get_size()
        self.rng = rng
        self.sounds = sounds
        self.feed = feed
        self.probe = probe
        self.x, self.y = self.w / 2, self.h * 0.75
        self.score = 0
        self.targets: list[Target] = []
        self.bullets: list[list[float]] = []
        self.flashes: list[Flash] = []
        self.space_held = False
        self.fire_latched = False  # a press seen since the last shot (key down and up within one frame)
        self.mouse_fire = False
        self.relative_mouse = False
        self.pads: dict[int, pygame.joystick.JoystickType] = {}
        self.next_shot = 0.0
        self.moving = False
        self.app_status = ""
        self._font = pygame.font.Font(None, 34)
        self._small = pygame.font.Font(None, 24)
        self._background = self._make_background()
        self._text_cache: dict[str, pygame.Surface] = {}
        self._feed_version = -1
        self._feed_surfaces: list[pygame.Surface] = []
        for _ in range(MAX_TARGETS):
            self.spawn()

    # ------------------------------------------------------------------ setup
    def _make_background(self) -> pygame.Surface:
        bg = pygame.Surface((self.w, self.h)).convert()
        bg.fill(BG)
        for gx in range(0, self.w, 80):
            pygame.draw.line(bg, (20, 24, 46), (gx, 0), (gx, self.h))
        for gy in range(0, self.h, 80):
            pygame.draw.line(bg, (20, 24, 46), (0, gy), (self.w, gy))
        for _ in range(140):
            shade = self.rng.randint(60, 170)
            bg.set_at((self.rng.randrange(self.w), self.rng.randrange(self.h)), (shade, shade, shade + 30))
        return bg

    def spawn(self, bonus: bool = False) -> None:
        r = 26.0 if bonus else self.rng.uniform(18, 34)
        angle = self.rng.uniform(0, 2 * math.pi)
        speed = self.rng.uniform(40, 120) * (1.6 if bonus else 1.0)
        self.targets.append(Target(self.rng.uniform(r + 80, self.w - r), self.rng.uniform(r + 80, self.h * 0.6),
                                   math.cos(angle) * speed, math.sin(angle) * speed, r, bonus))

    # ------------------------------------------------------------------ input
    def handle_event(self, e: pygame.event.Event) -> None:
        if e.type == pygame.KEYDOWN:
            if e.key == pygame.K_SPACE:
                self.space_held = True
                self.fire_latched = True  # a tap shorter than one frame still fires
            elif e.key == pygame.K_m:
                self.set_relative_mouse(not self.relative_mouse)
            elif e.key == pygame.K_ESCAPE:
                self.set_relative_mouse(False)
        elif e.type == pygame.KEYUP:
            if e.key == pygame.K_SPACE:
                self.space_held = False
        elif e.type == pygame.MOUSEMOTION:
            if self.relative_mouse:
                self.move_to(self.x + e.rel[0], self.y + e.rel[1])
            else:
                self.move_to(*e.pos)
        elif e.type == pygame.MOUSEBUTTONDOWN:
            if e.button == 1:
                self.mouse_fire = True
                self.fire_latched = True
            elif e.button == 3:
                self.set_relative_mouse(not self.relative_mouse)
        elif e.type == pygame.MOUSEBUTTONUP and e.button == 1:
            self.mouse_fire = False
        elif e.type == pygame.JOYDEVICEADDED:
            pad = pygame.joystick.Joystick(e.device_index)
            self.pads[pad.get_instance_id()] = pad
            self.feed.system(f"gamepad connected: {pad.get_name()}")
            logger.info("gamepad connected: %s", pad.get_name())
        elif e.type == pygame.JOYDEVICEREMOVED:
            pad = self.pads.pop(e.instance_id, None)
            if pad is not None:
                self.feed.system("gamepad disconnected")
                logger.info("gamepad disconnected")
        elif e.type == pygame.WINDOWFOCUSLOST:
            self.space_held = self.mouse_fire = False

    def set_relative_mouse(self, on: bool) -> None:
        """Relative mode hides the cursor and grabs the pointer (SDL relative motion); absolute shows it."""
        if on == self.relative_mouse:
            return
        self.relative_mouse = on
        pygame.mouse.set_visible(not on)
        pygame.event.set_grab(on)
        logger.info("mouse mode: %s", "relative (locked)" if on else "absolute")

    def move_to(self, x: float, y: float) -> None:
        self.x = min(max(x, SHIP_SIZE), self.w - SHIP_SIZE)
        self.y = min(max(y, SHIP_SIZE), self.h - SHIP_SIZE)

    # ------------------------------------------------------------------ simulation
    def update(self, dt: float, now: float) -> None:
        keys = pygame.key.get_pressed()
        dx = (keys[pygame.K_RIGHT] or keys[pygame.K_d]) - (keys[pygame.K_LEFT] or keys[pygame.K_a])
        dy = (keys[pygame.K_DOWN] or keys[pygame.K_s]) - (keys[pygame.K_UP] or keys[pygame.K_w])
        vx, vy = float(dx), float(dy)
        pad_fire = False
        for pad in self.pads.values():
            ax = pad.get_axis(0) if pad.get_numaxes() > 0 else 0.0
            ay = pad.get_axis(1) if pad.get_numaxes() > 1 else 0.0
            if abs(ax) > DEADZONE:
                vx += ax
            if abs(ay) > DEADZONE:
                vy += ay
            if pad.get_numhats() > 0:
                hx, hy = pad.get_hat(0)
                vx += hx
                vy -= hy
            if pad.get_numbuttons() > 0 and pad.get_button(0):
                pad_fire = True
        norm = math.hypot(vx, vy)
        if norm > 1:
            vx, vy = vx / norm, vy / norm
        self.moving = norm > 0
        if self.moving:
            self.move_to(self.x + vx * SHIP_SPEED * dt, self.y + vy * SHIP_SPEED * dt)

        if (self.space_held or self.mouse_fire or pad_fire or self.fire_latched) and now >= self.next_shot:
            self.fire_latched = False
            self.bullets.append([self.x, self.y - SHIP_SIZE])
            self.next_shot = now + FIRE_INTERVAL
            self.sounds.shot()
        for b in self.bullets:
            b[1] -= BULLET_SPEED * dt
        self.bullets = [b for b in self.bullets if b[1] > -10]

        for t in self.targets:
            t.x += t.vx * dt
            t.y += t.vy * dt
            if t.x < t.r or t.x > self.w - t.r:
                t.vx = -t.vx
                t.x = min(max(t.x, t.r), self.w - t.r)
            if t.y < t.r or t.y > self.h - t.r:
                t.vy = -t.vy
                t.y = min(max(t.y, t.r), self.h - t.r)

        hit: list[Target] = []
        for t in self.targets:
            if math.hypot(t.x - self.x, t.y - self.y) < t.r + SHIP_SIZE * 0.8:
                hit.append(t)
                continue
            for b in self.bullets:
                if abs(b[0] - t.x) < t.r and abs(b[1] - t.y) < t.r:
                    hit.append(t)
                    b[1] = -100.0  # spent
                    break
        for t in hit:
            self.targets.remove(t)
            self.score += 5 if t.bonus else 1
            self.flashes.append(Flash(t.x, t.y, now, BONUS if t.bonus else TARGET))
            self.sounds.hit()
        while sum(not t.bonus for t in self.targets) < MAX_TARGETS:
            self.spawn()
        self.flashes = [f for f in self.flashes if now - f.born < 0.3]

    def react(self) -> None:
        """A viewer's reaction drops a golden bonus target into the game."""
        if sum(t.bonus for t in self.targets) < 5:
            self.spawn(bonus=True)

    # ------------------------------------------------------------------ drawing
    def _text(self, text: str, small: bool = False, color: tuple[int, int, int] = TEXT) -> pygame.Surface:
        key = f"{small}|{color}|{text}"
        surf = self._text_cache.get(key)
        if surf is None:
            if len(self._text_cache) > 64:
                self._text_cache.clear()
            surf = (self._small if small else self._font).render(text, True, color)
            self._text_cache[key] = surf
        return surf

    def draw(self, now: float) -> None:
        s = self.screen
        # The starfield drifts down, as space shooters do: the picture is never still.
        off = int(now * STARFIELD_SPEED) % self.h
        s.blit(self._background, (0, off))
        s.blit(self._background, (0, off - self.h))
        for t in self.targets:
            color = BONUS if t.bonus else TARGET
            pygame.draw.circle(s, color, (int(t.x), int(t.y)), int(t.r))
            pygame.draw.circle(s, (255, 255, 255), (int(t.x), int(t.y)), int(t.r), 2)
        for f in self.flashes:
            age = (now - f.born) / 0.3
            pygame.draw.circle(s, f.color, (int(f.x), int(f.y)), int(20 + 60 * age), 3)
        for b in self.bullets:
            s.fill(BULLET, (int(b[0]) - 2, int(b[1]) - 8, 4, 14))
        x, y, k = self.x, self.y, SHIP_SIZE
        if self.moving:
            pygame.draw.polygon(s, FLAME, [(x - k * 0.4, y + k * 0.8), (x + k * 0.4, y + k * 0.8),
                                           (x, y + k * 1.6)])
        pygame.draw.polygon(s, SHIP, [(x, y - k), (x - k * 0.8, y + k * 0.8), (x + k * 0.8, y + k * 0.8)])

        s.blit(self._text(f"SCORE {self.score}"), (HUD_X, 18))
        status = self._text(self.app_status, small=True, color=DIM)
        s.blit(status, (self.w - status.get_width() - 16, 16))
        mode = "mouse: locked (M / right click / Esc to release)" if self.relative_mouse else \
            "mouse: follow (M / right click to lock)"
        hint = self._text("arrows/WASD, mouse or gamepad to move · Space, click or A to fire · " + mode,
                          small=True, color=DIM)
        s.blit(hint, (self.w - hint.get_width() - 16, self.h - 30))
        self._draw_feed(now)
        if self.probe:  # drawn last, every frame
            s.fill((255, 255, 255) if self.space_held else (0, 0, 0), (0, 0, PROBE_SIZE, PROBE_SIZE))

    def _draw_feed(self, now: float) -> None:
        if self._feed_version != self.feed.version:
            self._feed_version = self.feed.version
            colors = {"chat": TEXT, "reaction": BONUS, "message": (170, 220, 255), "system": DIM}
            self._feed_surfaces = [self._small.render(item.text, True, colors[item.kind])
                                   for item in self.feed.items]
        y = self.h - 44 - 24 * len(self._feed_surfaces)
        for surf in self._feed_surfaces:
            self.screen.blit(surf, (16, y))
            y += 24


def _display_size() -> tuple[int, int]:
    sizes = pygame.display.get_desktop_sizes()
    if sizes and sizes[0][0] > 0 and sizes[0][1] > 0:
        return sizes[0]
    return (int(os.environ.get("PLAYCAST_WIDTH", "1280")), int(os.environ.get("PLAYCAST_HEIGHT", "720")))


def _app_port() -> int | None:
    raw = os.environ.get("PLAYCAST_APP_MESSAGE_PORT", "").strip()
    if not raw:
        return None
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        logger.warning("ignoring PLAYCAST_APP_MESSAGE_PORT=%r: not a port number", raw)
        return None
    return port


def run(fps: int, seed: int | None, probe: bool) -> int:
    stop = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stop
        logger.info("got %s, quitting", signal.Signals(signum).name)
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    pygame.display.init()
    pygame.font.init()
    pygame.joystick.init()
    size = _display_size()
    screen = pygame.display.set_mode(size, pygame.NOFRAME)
    pygame.display.set_caption("playcast demo")
    sounds = Sounds()
    sounds.start()
    feed = Feed()
    game = Game(screen, random.Random(seed), sounds, feed, probe)
    port = _app_port()
    client = AppMessageClient(port) if port else None
    clients: set[int] = set()
    logger.info("demo running: %dx%d at %d fps, display %s, probe %s, app messages %s", size[0], size[1], fps,
                os.environ.get("DISPLAY", "?"), "on" if probe else "off", f"port {port}" if port else "off")
    clock = pygame.time.Clock()
    frames, report_at = 0, time.monotonic() + 30
    try:
        while not stop:
            dt = min(clock.tick(fps) / 1000.0, 0.05)
            now = time.monotonic()
            for e in pygame.event.get():
                if e.type == pygame.QUIT:
                    stop = True
                else:
                    game.handle_event(e)
            if client is not None:
                for ev in client.poll():
                    if ev.kind == CLIENT_CONNECTED:
                        clients.add(ev.client_id)
                        feed.system(f"client {ev.client_id} joined")
                    elif ev.kind == CLIENT_DISCONNECTED:
                        clients.discard(ev.client_id)
                        feed.system(f"client {ev.client_id} left")
                    elif ev.kind == MESSAGE:
                        item = describe(ev.client_id, ev.payload)
                        feed.add(item)
                        if item.kind == "reaction":
                            game.react()
                        client.send(ev.client_id, ev.payload)  # echo to the sender
                if not client.connected:
                    clients.clear()
                game.app_status = (f"messages: connected, {len(clients)} client(s)" if client.connected
                                   else "messages: waiting for bridge")
            game.update(dt, now)
            game.draw(now)
            pygame.display.flip()
            frames += 1
            if now >= report_at:
                logger.info("running: %.1f fps, score %d", clock.get_fps(), game.score)
                report_at = now + 30
    finally:
        if client is not None:
            client.close()
        sounds.stop()
        pygame.quit()
    logger.info("demo stopped after %d frames, score %d", frames, game.score)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="playcast-demo", description=__doc__)
    parser.add_argument("--fps", type=int, default=int(os.environ.get("PLAYCAST_FPS", "60") or 60))
    parser.add_argument("--seed", type=int, default=None, help="random seed for target placement")
    parser.add_argument("--probe", action="store_true",
                        help="latency probe square at (0,0), as PLAYCAST_DEMO_PROBE=1 does")
    args, unknown = parser.parse_known_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if unknown:
        logger.info("ignoring unknown arguments: %s", " ".join(unknown))
    probe = args.probe or os.environ.get("PLAYCAST_DEMO_PROBE", "") == "1"
    try:
        return run(max(1, min(args.fps, 240)), args.seed, probe)
    except pygame.error as exc:
        logger.error("cannot run the demo: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
