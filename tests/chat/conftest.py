"""Fixtures for the chat tests: a real server (events + chat + LocalHostPool) per module; nothing left behind.

Other test runs may share this machine, so the leak check looks only at this process's children and at session
directories under a temp dir of our own."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chat.support import ChatServer, running_sessions, start_chat_server
from tests.leaks import session_leftovers


def _mine(entry: str, root: str) -> bool:
    if entry.startswith("dir "):
        return entry[4:].startswith(root)
    pid = entry.split(":", 1)[0].removeprefix("pid ").strip()
    if root in entry:
        return True
    try:  # a process of a server we ran in a subprocess with TMPDIR=<root> (reparented if it leaked)
        if f"TMPDIR={root}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            return True
    except OSError:
        pass
    me = os.getpid()
    while pid.isdigit() and int(pid) > 1:
        if int(pid) == me:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = stat.rsplit(")", 1)[1].split()[1]
    return False


def own_leftovers(root: str) -> set[str]:
    return {e for e in session_leftovers() if _mine(e, root)}


def assert_nothing_left(root: str, wait_s: float = 15.0) -> None:
    import time

    deadline = time.monotonic() + wait_s
    while (left := own_leftovers(root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, "left behind:\n" + "\n".join(sorted(left))


@pytest.fixture(scope="module")
def own_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Session directories of this module's servers go here (tempfile.tempdir), so leaks are attributable."""
    root = str(tmp_path_factory.mktemp("sessions"))
    old = tempfile.tempdir
    tempfile.tempdir = root
    try:
        yield root
    finally:
        tempfile.tempdir = old


def serve_chat(tmp_path: Path, own_tmp: str, **options: Any) -> Iterator[ChatServer]:
    """For a module's `srv` fixture: a chat server with 2 slots (start_chat_server `options`) until the module is
    done; then it is stopped and nothing of it may be left."""
    server = start_chat_server(tmp_path, slots=2, **options)
    try:
        yield server
    finally:
        server.stop()
        assert_nothing_left(own_tmp)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, own_tmp: str) -> Iterator[ChatServer]:
    yield from serve_chat(tmp_path_factory.mktemp("chat"), own_tmp)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    from tests.chat.support import SLEEPER, make_app_dir

    return make_app_dir(tmp_path / "game", SLEEPER)


@pytest.fixture
def room(srv: ChatServer, app_dir: Path):  # type: ignore[no-untyped-def]
    """A session of a logged-in player: its id and the player's HTTP client."""
    player_http, player_id = srv.player()
    with running_sessions(srv, app_dir, 1, player_id) as (sid,):
        yield sid, player_http
