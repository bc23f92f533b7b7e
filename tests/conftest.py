"""Suite-wide fixtures and markers.

`netns`: the test runs WebRTC; it must run inside a private network namespace with only loopback
(`unshare -n`, as `.ci/run` and the README's test command do) so ICE never touches real interfaces."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.s3_support import MotoServer


def _only_loopback() -> bool:
    """True inside a network namespace whose only interface is lo (if_nameindex asks this namespace)."""
    return {name for _, name in socket.if_nameindex()} <= {"lo"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netns: needs a private network namespace with only loopback")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _only_loopback():
        return
    skip = pytest.mark.skip(reason="WebRTC test: run the suite inside `unshare -n` (see README / .ci/run)")
    for item in items:
        if "netns" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """A real S3 (moto_server on loopback) for the module's tests; stopped afterwards."""
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()
    assert server.proc is not None and server.proc.poll() is not None, "moto_server left running"
