"""python-xlib opens a local display the way libxcb does: the abstract socket first, /tmp/.X11-unix/X<n> after.

Abstract sockets belong to a network namespace, /tmp does not: with hosts in namespaces of their own on one
machine, each Xvfb picks its display number per namespace, and the path can belong to another namespace's X server
(the game, ffmpeg and every libxcb client already reach their own). Socket plumbing only."""

from __future__ import annotations

import socket
from typing import Any

from Xlib.support import unix_connect

_MARK = "_playcast_abstract_first"


def prefer_abstract_sockets() -> None:
    """Make every later python-xlib connection of this process try the abstract socket first. Idempotent."""
    original = unix_connect.get_socket
    if getattr(original, _MARK, False):
        return

    def get_socket(dname: str, protocol: str | None, host: str | None, dno: int) -> Any:
        if protocol in (None, "unix") and host in (None, "", "unix"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(f"\0/tmp/.X11-unix/X{dno}")
            except OSError:
                sock.close()
            else:
                sock.set_inheritable(False)
                return sock
        return original(dname, protocol, host, dno)

    setattr(get_socket, _MARK, True)
    unix_connect.get_socket = get_socket
