"""A small real HostPool for control-plane tests: each session is a real subprocess (the app's executable).

It reports APP_EXITED when the process ends by itself. It has no display or WebRTC: the offer is only checked
for shape, the answer is a fixed SDP, and client events are injected by the test through `client_event()`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass, field

from playcast.hostproto.types import (
    LaunchSpec,
    LocationCapacity,
    Placement,
    PlacementError,
    PlacementResult,
    SessionEvent,
    SessionEventHandler,
    SessionEventKind,
    SignalError,
)

ANSWER_SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def _check_offer(signal_request: str) -> None:
    offer = json.loads(signal_request)
    if "m=video" not in offer.get("sdp", ""):
        raise SignalError("offer has no video section")


@dataclass
class Running:
    session_id: str
    proc: asyncio.subprocess.Process
    slot_id: str
    terminating: bool = False
    watcher: asyncio.Task[None] | None = None
    offers: list[str] = field(default_factory=list)


class ProcessHostPool:
    """HostPool with `slots` slots in one location, running each session's executable as a subprocess."""

    def __init__(self, location: str = "local", slots: int = 2, extra_locations: tuple[str, ...] = ()) -> None:
        self.location = location
        self.slots = slots
        self.extra_locations = extra_locations
        self.running: dict[str, Running] = {}
        self.handlers: list[SessionEventHandler] = []
        self.warm_targets: dict[tuple[str, str], tuple[list[LaunchSpec], int]] = {}
        self.warm_pause: dict[tuple[str, str], bool] = {}
        self.terminated: list[tuple[str, str]] = []
        self.placements: list[Placement] = []
        self._freed = asyncio.Event()

    # -- HostPool -------------------------------------------------------------------------------------

    def on_event(self, handler: SessionEventHandler) -> None:
        self.handlers.append(handler)

    def locations(self) -> list[str]:
        return [self.location, *self.extra_locations]

    def capacity(self, location: str) -> LocationCapacity:
        if location == self.location:
            return LocationCapacity(location, self.slots, len(self.running), 0)
        if location in self.extra_locations:
            return LocationCapacity(location, 1, 0, 0)
        return LocationCapacity(location, 0, 0, 0)

    def hosts_online(self) -> set[str]:
        return {"proc-host"}

    def on_host_joined(self, handler: object) -> None:
        """Never called: these processes do not come and go."""

    def running_sessions(self) -> set[str]:
        return set(self.running)

    async def set_warm_target(self, stream_group_id: str, location: str, launches: list[LaunchSpec],
                              count: int, pause_idle: bool = True) -> None:
        self.warm_targets[(stream_group_id, location)] = (list(launches), count)
        self.warm_pause[(stream_group_id, location)] = pause_idle

    async def place(self, placement: Placement, timeout_s: float) -> PlacementResult:
        self.placements.append(placement)
        if placement.locations and self.location not in placement.locations:
            raise PlacementError("placementTimeout", "no host in the requested locations")
        if placement.signal_request is not None:
            try:
                _check_offer(placement.signal_request)
            except (SignalError, ValueError) as exc:
                raise PlacementError("invalidSignalRequest", str(exc)) from None
        deadline = time.monotonic() + timeout_s
        while len(self.running) >= self.slots:
            self._freed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PlacementError("placementTimeout", "no free slot")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), remaining)
        spec = placement.launch
        env = {**os.environ, **dict(spec.env)}
        try:
            proc = await asyncio.create_subprocess_exec(
                os.path.join(spec.source_dir, spec.executable), *spec.args, cwd=spec.source_dir, env=env,
                start_new_session=True, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            raise PlacementError("applicationExit", f"cannot start: {exc}") from None
        slot = f"slot-{len(self.running)}"
        run = Running(placement.session_id, proc, slot)
        self.running[placement.session_id] = run
        try:
            await asyncio.wait_for(proc.wait(), 0.2)
        except TimeoutError:
            pass
        else:
            self.running.pop(placement.session_id, None)
            raise PlacementError("applicationExit", f"the application exited at launch (rc={proc.returncode})")
        run.watcher = asyncio.get_running_loop().create_task(self._watch(run))
        answer = None
        if placement.signal_request is not None:
            run.offers.append(placement.signal_request)
            answer = json.dumps({"type": "answer", "sdp": ANSWER_SDP})
        return PlacementResult("proc-host", slot, self.location, answer, False)

    async def connect(self, session_id: str, signal_request: str) -> str:
        run = self.running.get(session_id)
        if run is None:
            raise SignalError(f"session {session_id} is not running here")
        try:
            _check_offer(signal_request)
        except ValueError as exc:
            raise SignalError(str(exc)) from None
        run.offers.append(signal_request)
        return json.dumps({"type": "answer", "sdp": ANSWER_SDP})

    async def terminate(self, session_id: str, reason: str = "terminated") -> None:
        await self._stop(session_id, reason)
        await self._emit(SessionEvent(session_id, SessionEventKind.ENDED, time.time()))

    async def terminate_on(self, host_id: str, session_id: str) -> None:
        """This pool is one host: stop the session here, reporting nothing (the control plane does not run it)."""
        if host_id in self.hosts_online():
            await self._stop(session_id, "terminated")

    async def _stop(self, session_id: str, reason: str) -> None:
        self.terminated.append((session_id, reason))
        run = self.running.get(session_id)
        if run is not None:
            run.terminating = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(run.proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.proc.pid, signal.SIGKILL)
                await run.proc.wait()
            if run.watcher is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await run.watcher
            self.running.pop(session_id, None)
            self._freed.set()

    # -- test helpers ---------------------------------------------------------------------------------

    async def client_event(self, session_id: str, kind: SessionEventKind) -> None:
        """What a real host reports when the browser's peer connects, drops or sends input."""
        await self._emit(SessionEvent(session_id, kind, time.time()))

    async def close(self) -> None:
        for sid in list(self.running):
            await self.terminate(sid)

    async def _watch(self, run: Running) -> None:
        await run.proc.wait()
        if run.terminating:
            return
        self.running.pop(run.session_id, None)
        self._freed.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.proc.pid, signal.SIGKILL)
        await self._emit(SessionEvent(run.session_id, SessionEventKind.APP_EXITED, time.time(),
                                      {"returncode": run.proc.returncode}))

    async def _emit(self, event: SessionEvent) -> None:
        for handler in list(self.handlers):
            await handler(event)
