"""A real PostgreSQL server for tests: `initdb` (as the postgres user when run as root) and `postgres` on a free
loopback port, a database `playcast` in it; stopped and removed afterwards.

Skips nothing itself: callers decide what to do when the binaries are missing (`available()`)."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def available() -> bool:
    return bool(_bin("initdb") and _bin("postgres"))


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgres_server() -> Iterator[str]:
    """The asyncpg SQLAlchemy URL of a fresh server's `playcast` database."""
    initdb, postgres = _bin("initdb"), _bin("postgres")
    assert initdb and postgres, "PostgreSQL server binaries are not installed"
    data = Path(tempfile.mkdtemp(prefix="playcast-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = None
    try:
        subprocess.run(_as_postgres([initdb, "-D", str(data / "db"), "-A", "trust", "-U", "playcast"]),
                       check=True, capture_output=True)
        proc = subprocess.Popen(_as_postgres([postgres, "-D", str(data / "db"), "-p", str(port), "-k", str(data),
                                              "-h", "127.0.0.1", "-c", "fsync=off"]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("PostgreSQL did not start") from None
                time.sleep(0.1)

        async def createdb() -> None:
            import asyncpg

            for _ in range(50):
                try:
                    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="playcast", database="postgres")
                    break
                except (OSError, asyncpg.CannotConnectNowError):
                    await asyncio.sleep(0.1)
            await conn.execute("CREATE DATABASE playcast")
            await conn.close()

        asyncio.run(createdb())
        yield f"postgresql+asyncpg://playcast@127.0.0.1:{port}/playcast"
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(data, ignore_errors=True)
