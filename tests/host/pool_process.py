"""A real LocalHostPool in a process of its own, for tests that SIGKILL it (`python -m tests.host.pool_process
STATE_DIR SCOPE APP_DIR EXECUTABLE`): places one client-less session, prints `READY {json}`, then runs until killed.

The JSON names what the session runs: its dir, display number and the pids of its processes."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from playcast.host.pool import LocalHostPool
from playcast.host.runtime import RuntimeOptions
from playcast.hostproto.types import LaunchSpec, Placement


async def main(state_dir: str, scope: str, app_dir: str, executable: str) -> None:
    pool = LocalHostPool("local", 1, RuntimeOptions(width=320, height=240, fps=15, bitrate_kbps=300,
                                                    temp_root=scope), state_dir=Path(state_dir))
    await pool.start()
    spec = LaunchSpec.make("a-test", app_dir, executable)
    await pool.place(Placement("s-1", "g-1", (), spec, None), 60)
    runtime = pool.slots[0].runtime
    assert runtime is not None and runtime.display is not None and runtime.app is not None
    print("READY " + json.dumps({"workdir": str(runtime.workdir), "display": runtime.display.number,
                                 "keeper": runtime.app.keeper_pid, "game": runtime.app.pid}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
