"""Tells when the game on a session's X display has drawn its first frame: X DAMAGE on the root window after a
top-level window is mapped. One short-lived X connection; it closes itself once the frame is seen.

Watches only: it never draws, captures or sends input, and it must not block the event loop (setup runs in a
thread, events are read when the socket is readable)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from Xlib import X
from Xlib import display as xdisplay
from Xlib import error as xerror
from Xlib.ext import damage

from playcast.host.xsocket import prefer_abstract_sockets

log = logging.getLogger(__name__)
prefer_abstract_sockets()  # this namespace's Xvfb, never another's behind a shared /tmp


class FirstFrameWatch:
    """`await FirstFrameWatch.open(":5")` before the game starts; `drawn` is set at its first drawing after a
    window of it is mapped (the damage of the map itself counts: callers that want a full picture wait a little
    longer). `close()` is idempotent."""

    def __init__(self, conn: xdisplay.Display, mapped: bool) -> None:
        self._conn: xdisplay.Display | None = conn
        self._mapped = mapped
        self.drawn = asyncio.Event()
        self.drawn_at: float | None = None  # loop time of the first frame
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(conn.fileno(), self._readable)

    @classmethod
    async def open(cls, display_name: str) -> FirstFrameWatch:
        """Raises OSError / Xlib errors when the display cannot be watched (no DAMAGE extension, gone)."""
        conn, mapped = await asyncio.to_thread(_connect, display_name)
        return cls(conn, mapped)

    def _readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.pending_events():
                event = conn.next_event()
                if event.type == X.MapNotify:
                    self._mapped = True
                elif event.type == conn.extension_event.DamageNotify:
                    # Raw rectangles: every drawing is reported, in order with the MapNotify (no damage region
                    # to clear, so nothing drawn between a map and our reading of older events is lost)
                    if self._mapped:
                        self.drawn_at = self._loop.time()
                        self.drawn.set()
                        self.close()
                        return
        except (xerror.ConnectionClosedError, OSError) as exc:  # Xvfb went away: nothing will ever draw
            log.debug("first-frame watch ended: %s", exc)
            self.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            self._loop.remove_reader(conn.fileno())
        with contextlib.suppress(Exception):
            conn.close()


def _connect(display_name: str) -> tuple[xdisplay.Display, bool]:
    conn = xdisplay.Display(display_name)
    try:
        if not conn.has_extension("DAMAGE"):
            raise OSError(f"display {display_name} has no DAMAGE extension")
        conn.damage_query_version()
        root = conn.screen().root
        root.damage_create(damage.DamageReportRawRectangles)  # lives as long as the connection
        root.change_attributes(event_mask=X.SubstructureNotifyMask)  # MapNotify of top-level windows
        mapped = any(child.get_attributes().map_state == X.IsViewable for child in root.query_tree().children)
        conn.flush()
    except BaseException:
        conn.close()
        raise
    return conn, mapped
