"""Fixtures for input tests: a real Xvfb on a free display number and an X client that records input events.

Starts and stops real programs; everything it starts is gone (process, lock file, socket) after the test."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from .xserver import Observer, XServer, start_xvfb, stop_xvfb


@pytest.fixture
def xvfb() -> Iterator[XServer]:
    server = start_xvfb()
    try:
        yield server
    finally:
        stop_xvfb(server)
    assert server.proc.poll() is not None
    deadline = time.monotonic() + 5
    while (server.lock_file.exists() or server.socket.exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.lock_file.exists(), "Xvfb left its lock file"
    assert not server.socket.exists(), "Xvfb left its socket"


@pytest.fixture
def observer(xvfb: XServer) -> Iterator[Observer]:
    obs = Observer(xvfb.display)
    try:
        yield obs
    finally:
        obs.close()
