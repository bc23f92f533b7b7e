"""Damage-driven screen capture of one X display: MIT-SHM reads, XDamage says when the game drew, libyuv converts.

Calls Debian's libX11, libXext, libXdamage and libyuv through ctypes (nothing to compile). Knows nothing of
encoding, processes or the network; one instance belongs to one thread."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import time
from collections.abc import Callable
from dataclasses import dataclass

_IPC_PRIVATE = 0
_IPC_CREAT = 0o1000
_IPC_RMID = 0
_ZPIXMAP = 2
_ALL_PLANES = 0xFFFFFFFF
_DAMAGE_REPORT_NON_EMPTY = 3
_DAMAGE_NOTIFY = 0
# Reads follow the game's drawing: a draw is read at once when at least this many frame periods passed since the
# last read. Not 1: a game drawing a little faster than fps (61 for 60) would then wait for the period each time,
# by a delay that drifts through the whole period.
MIN_INTERVAL_PERIODS = 0.75


class _ShmSegmentInfo(ctypes.Structure):
    _fields_ = [("shmseg", ctypes.c_ulong), ("shmid", ctypes.c_int), ("shmaddr", ctypes.c_void_p),
                ("readOnly", ctypes.c_int)]


class _XImage(ctypes.Structure):
    # The leading fields of Xlib's XImage, as far as this module reads them.
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int), ("xoffset", ctypes.c_int),
                ("format", ctypes.c_int), ("data", ctypes.c_void_p), ("byte_order", ctypes.c_int),
                ("bitmap_unit", ctypes.c_int), ("bitmap_bit_order", ctypes.c_int), ("bitmap_pad", ctypes.c_int),
                ("depth", ctypes.c_int), ("bytes_per_line", ctypes.c_int), ("bits_per_pixel", ctypes.c_int)]


class CaptureError(RuntimeError):
    """The display cannot be captured this way (no MIT-SHM, no DAMAGE, wrong depth, a library missing)."""


def _load(name: str, soname: str) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(soname)
    except OSError:
        found = ctypes.util.find_library(name)
        if found is None:
            raise CaptureError(f"{soname} is not installed (Debian package for lib{name})") from None
        return ctypes.CDLL(found)


@dataclass
class _Libs:
    x11: ctypes.CDLL
    xext: ctypes.CDLL
    damage: ctypes.CDLL
    yuv: ctypes.CDLL
    libc: ctypes.CDLL


def _libs() -> _Libs:
    x11 = _load("X11", "libX11.so.6")
    xext = _load("Xext", "libXext.so.6")
    damage = _load("Xdamage", "libXdamage.so.1")
    yuv = _load("yuv", "libyuv.so.0")
    libc = ctypes.CDLL(None, use_errno=True)
    vp, ul, i, u = ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_uint
    x11.XOpenDisplay.restype, x11.XOpenDisplay.argtypes = vp, [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [vp]
    x11.XDefaultScreen.argtypes = [vp]
    x11.XRootWindow.restype, x11.XRootWindow.argtypes = ul, [vp, i]
    x11.XDefaultVisual.restype, x11.XDefaultVisual.argtypes = vp, [vp, i]
    x11.XDefaultDepth.argtypes = [vp, i]
    x11.XDisplayWidth.argtypes = [vp, i]
    x11.XDisplayHeight.argtypes = [vp, i]
    x11.XConnectionNumber.argtypes = [vp]
    x11.XPending.argtypes = [vp]
    x11.XNextEvent.argtypes = [vp, vp]
    x11.XSync.argtypes = [vp, i]
    x11.XFlush.argtypes = [vp]
    x11.XDestroyImage.argtypes = [vp]
    xext.XShmQueryExtension.argtypes = [vp]
    xext.XShmCreateImage.restype = ctypes.POINTER(_XImage)
    xext.XShmCreateImage.argtypes = [vp, vp, u, i, ctypes.c_char_p, ctypes.POINTER(_ShmSegmentInfo), u, u]
    xext.XShmAttach.argtypes = [vp, ctypes.POINTER(_ShmSegmentInfo)]
    xext.XShmDetach.argtypes = [vp, ctypes.POINTER(_ShmSegmentInfo)]
    xext.XShmGetImage.argtypes = [vp, ul, ctypes.POINTER(_XImage), i, i, ul]
    damage.XDamageQueryExtension.argtypes = [vp, ctypes.POINTER(i), ctypes.POINTER(i)]
    damage.XDamageCreate.restype, damage.XDamageCreate.argtypes = ul, [vp, ul, i]
    damage.XDamageSubtract.argtypes = [vp, ul, ul, ul]
    damage.XDamageDestroy.argtypes = [vp, ul]
    yuv.ARGBToI420.argtypes = [vp, i, vp, i, vp, i, vp, i, i, i]
    libc.shmget.restype, libc.shmget.argtypes = i, [i, ctypes.c_size_t, i]
    libc.shmat.restype, libc.shmat.argtypes = vp, [i, vp, i]
    libc.shmdt.argtypes = [vp]
    libc.shmctl.argtypes = [i, i, vp]
    return _Libs(x11, xext, damage, yuv, libc)


@dataclass(frozen=True)
class Grab:
    """One captured picture: the BGRX pixels stay in the shared segment until the next grab."""

    captured_at: float  # unix time of the read
    damaged: bool  # False: a refresh of an unchanged screen
    address: int  # first pixel (BGRX, little endian)
    stride: int  # bytes per row


class X11Capture:
    """Reads the root window of `display` when it changes, at most 4/3 x `fps` times a second.

    `next_grab(timeout)` blocks until the game has drawn since the last read (and MIN_INTERVAL_PERIODS passed), a
    `wake()` arrives, or `timeout` seconds pass; a read takes the whole screen into one shared-memory segment.
    The segment is marked for removal as soon as the X server has attached it, so it cannot outlive the process."""

    def __init__(self, display: str, width: int, height: int, fps: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lib = _libs()
        self.width, self.height, self.fps = width, height, fps
        self._clock = clock
        self._min_interval = MIN_INTERVAL_PERIODS / fps
        self._last_grab = -1e9
        self._dirty = True  # the first grab always reads
        lib = self._lib
        self._dpy = lib.x11.XOpenDisplay(display.encode())
        if not self._dpy:
            raise CaptureError(f"cannot open X display {display}")
        self._shm = _ShmSegmentInfo()
        self._image: ctypes._Pointer[_XImage] | None = None
        self._damage = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        try:
            self._setup(width, height)
        except BaseException:
            self.close()
            raise

    def _setup(self, width: int, height: int) -> None:
        lib, dpy = self._lib, self._dpy
        screen = lib.x11.XDefaultScreen(dpy)
        self._root = lib.x11.XRootWindow(dpy, screen)
        sw, sh = lib.x11.XDisplayWidth(dpy, screen), lib.x11.XDisplayHeight(dpy, screen)
        if width > sw or height > sh:
            raise CaptureError(f"capture size {width}x{height} exceeds the screen {sw}x{sh}")
        if not lib.xext.XShmQueryExtension(dpy):
            raise CaptureError("the X server has no MIT-SHM extension")
        ev_base, err_base = ctypes.c_int(), ctypes.c_int()
        if not lib.damage.XDamageQueryExtension(dpy, ctypes.byref(ev_base), ctypes.byref(err_base)):
            raise CaptureError("the X server has no DAMAGE extension")
        self._damage_event = ev_base.value + _DAMAGE_NOTIFY
        depth = lib.x11.XDefaultDepth(dpy, screen)
        if depth not in (24, 32):
            raise CaptureError(f"screen depth {depth} is not 24 or 32 bits")
        image = lib.xext.XShmCreateImage(dpy, lib.x11.XDefaultVisual(dpy, screen), depth, _ZPIXMAP, None,
                                         ctypes.byref(self._shm), width, height)
        if not image:
            raise CaptureError("XShmCreateImage failed")
        self._image = image
        if image.contents.bits_per_pixel != 32:
            raise CaptureError(f"{image.contents.bits_per_pixel} bits per pixel; 32 expected")
        size = image.contents.bytes_per_line * height
        shmid = lib.libc.shmget(_IPC_PRIVATE, size, _IPC_CREAT | 0o600)
        if shmid < 0:
            raise CaptureError(f"shmget: {os.strerror(ctypes.get_errno())}")
        self._shm.shmid = shmid
        addr = lib.libc.shmat(shmid, None, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            lib.libc.shmctl(shmid, _IPC_RMID, None)
            raise CaptureError(f"shmat: {os.strerror(ctypes.get_errno())}")
        self._shm.shmaddr = addr
        self._shm.readOnly = 0
        image.contents.data = addr
        attached = lib.xext.XShmAttach(dpy, ctypes.byref(self._shm))
        lib.x11.XSync(dpy, 0)
        lib.libc.shmctl(shmid, _IPC_RMID, None)  # gone once both ends detach, even after kill -9
        if not attached:
            raise CaptureError("XShmAttach failed")
        self._attached = True
        self._damage = lib.damage.XDamageCreate(dpy, self._root, _DAMAGE_REPORT_NON_EMPTY)
        lib.x11.XSync(dpy, 0)
        self._event = ctypes.create_string_buffer(192)  # sizeof(XEvent)
        self._xfd = lib.x11.XConnectionNumber(dpy)

    def wake(self) -> None:
        """Make a waiting `next_grab` return at once with a fresh grab (thread-safe): for keyframes and commands."""
        try:
            os.write(self._wake_w, b"w")
        except (BlockingIOError, OSError):
            pass

    def _drain_events(self) -> None:
        lib, dpy = self._lib, self._dpy
        while lib.x11.XPending(dpy):
            lib.x11.XNextEvent(dpy, self._event)
            if ctypes.c_int.from_buffer(self._event).value == self._damage_event:
                self._dirty = True

    def _drain_wake(self) -> bool:
        woke = False
        try:
            while os.read(self._wake_r, 64):
                woke = True
        except BlockingIOError:
            pass
        return woke

    def next_grab(self, timeout: float) -> Grab | None:
        """Wait until the game has drawn (and a frame period has passed since the last read), then read the screen.

        None when `timeout` passed with nothing drawn, or when `wake()` was called first."""
        deadline = self._clock() + timeout
        while True:
            self._drain_events()
            if self._drain_wake():
                return None
            now = self._clock()
            due = self._last_grab + self._min_interval
            if self._dirty and now >= due:
                return self.read_now()
            if now >= deadline:
                return None
            wait = deadline - now
            if self._dirty:
                wait = min(wait, due - now)
            select.select([self._xfd, self._wake_r], [], [], max(wait, 0.0))

    def read_now(self) -> Grab:
        """Read the whole screen now, drawn or not."""
        damaged = self._dirty
        self._dirty = False
        lib = self._lib
        lib.damage.XDamageSubtract(self._dpy, self._damage, 0, 0)  # drawing after this raises a new event
        assert self._image is not None
        if not lib.xext.XShmGetImage(self._dpy, self._root, self._image, 0, 0, _ALL_PLANES):
            raise CaptureError("XShmGetImage failed")
        self._last_grab = self._clock()
        return Grab(captured_at=time.time(), damaged=damaged, address=self._shm.shmaddr,
                    stride=self._image.contents.bytes_per_line)

    def to_i420(self, grab: Grab, y: int, y_stride: int, u: int, u_stride: int, v: int, v_stride: int) -> None:
        """Convert `grab` (BGRX) into the three I420 planes at the given addresses (libyuv, SIMD)."""
        rc = self._lib.yuv.ARGBToI420(grab.address, grab.stride, y, y_stride, u, u_stride, v, v_stride,
                                      self.width, self.height)
        if rc != 0:
            raise CaptureError(f"ARGBToI420 failed ({rc})")

    def close(self) -> None:
        lib, dpy = self._lib, self._dpy
        if dpy:
            if self._damage:
                lib.damage.XDamageDestroy(dpy, self._damage)
            if getattr(self, "_attached", False):
                lib.xext.XShmDetach(dpy, ctypes.byref(self._shm))
                lib.x11.XSync(dpy, 0)
            if self._image is not None:
                self._image.contents.data = None  # the segment is not Xlib's to free
                lib.x11.XDestroyImage(self._image)
                self._image = None
            lib.x11.XCloseDisplay(dpy)
            self._dpy = None
        if self._shm.shmaddr:
            lib.libc.shmdt(self._shm.shmaddr)
            self._shm.shmaddr = None
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1
