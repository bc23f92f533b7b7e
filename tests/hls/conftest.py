"""Fixtures for HLS tests: a packager fed by a real x264 encoder (synthetic pictures) and an HTTP origin."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # hls_support

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from hls_support import MotoServer  # noqa: E402


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()
    assert server.proc is not None and server.proc.poll() is not None, "moto_server left running"
