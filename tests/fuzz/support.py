"""Shared by the fuzz tests: bounded, reproducible hypothesis settings, JSON-ish and mutation strategies, an event
loop in a thread (so sync hypothesis tests can drive real asyncio servers) and a raw ASGI call that records replies.

No fixtures and no assertions about playcast here; each test file says what its parser must do."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

T = TypeVar("T")


def bounded(max_examples: int) -> settings:
    """At most `max_examples` examples, derandomized and without an example database (same run in CI as here,
    nothing written to .hypothesis/), no per-example deadline (a loaded 2-core box is slow, not wrong), and no
    shrinking: a failure reports the example as generated, so a hang costs one timeout rather than hundreds."""
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None, print_blob=False,
                    phases=(Phase.explicit, Phase.generate),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------------------------------- JSON-ish values

def texts(max_size: int, min_size: int = 0, surrogates: bool = True) -> st.SearchStrategy[str]:
    """Any text; with `surrogates`, often lone surrogates too (JSON's "\\ud800" escapes put them in parsed
    strings; text decoded strictly from UTF-8, such as an HTTP body, never holds one)."""
    if not surrogates:
        return st.text(max_size=max_size, min_size=min_size)
    lone = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
    return st.lists(st.characters() | lone, min_size=min_size, max_size=max_size).map("".join)


json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | texts(24))


def json_values(max_leaves: int = 16) -> st.SearchStrategy[Any]:
    """Any JSON value, nested a few levels (json_texts adds the deep ones, as text)."""
    return st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(texts(10), inner, max_size=4), max_leaves=max_leaves)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str], max_edits: int = 4, surrogates: bool = True) -> str:
    """`base` with a few character edits: insert, delete a range, duplicate a range, truncate, flip a char."""
    text = draw(base)
    for _ in range(draw(st.integers(0, max_edits))):
        op = draw(st.sampled_from(("insert", "delete", "duplicate", "truncate", "replace")))
        at = draw(st.integers(0, len(text)))
        if op == "insert":
            text = text[:at] + draw(texts(8, min_size=1, surrogates=surrogates)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 16)):]
        elif op == "duplicate":
            text = text[:at] + text[at:at + draw(st.integers(1, 32))] * 2 + text[at + 1:]
        elif op == "truncate":
            text = text[:at]
        elif at < len(text):
            text = text[:at] + draw(texts(1, min_size=1, surrogates=surrogates)) + text[at + 1:]
    return text


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    """A syntactically valid JSON document nested `depth` levels deep."""
    return opener * depth + closer * depth


def json_texts(max_leaves: int = 16) -> st.SearchStrategy[str]:
    """Text a JSON parser may be handed: valid documents, mutated documents, arbitrary text, documents nested around
    and far past json_input's depth limit."""
    documents = json_values(max_leaves).map(json.dumps)
    deep = st.builds(nested, st.sampled_from([63, 64, 65, 3000, 100_000]),
                     st.sampled_from(["[", '{"a":']), st.sampled_from(["]", "}"]))
    return documents | mutated(documents) | texts(64) | deep


# ------------------------------------------------------------------------------------------- event loop thread

class LoopThread:
    """An asyncio loop running in a daemon thread; `run(coro, timeout)` waits for a coroutine from sync code.

    A coroutine still running after `timeout` is cancelled and reported as TimeoutError (a hang)."""

    def __init__(self, name: str = "fuzz-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Awaitable[T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(_wrap(coro), self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(f"still running after {timeout} s") from None

    def close(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_rest(), 30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


async def _wrap(coro: Awaitable[T]) -> T:
    return await coro


# ------------------------------------------------------------------------------------------------ raw ASGI call

@dataclass
class AsgiReply:
    status: int
    headers: dict[str, str]
    body: bytes
    messages: list[dict[str, Any]] = field(default_factory=list)


async def asgi_call(app: Callable[..., Awaitable[None]], method: str, path: str, query: bytes = b"",
                    headers: list[tuple[bytes, bytes]] | None = None, root_path: str = "") -> AsgiReply:
    """Call an ASGI app with an HTTP scope built from exactly these values (no URL normalisation in between) and
    check that it answered once: one http.response.start, then body messages ending without more_body."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode("utf-8", "surrogateescape"), "query_string": query,
             "root_path": root_path, "headers": headers or [], "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 80), "state": {}}
    sent: list[dict[str, Any]] = []
    request_read = False

    async def receive() -> dict[str, Any]:
        nonlocal request_read
        if not request_read:
            request_read = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects during a call
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert len(starts) == 1, f"{method} {path!r}?{query!r}: {len(starts)} response starts"
    assert bodies and not bodies[-1].get("more_body", False), f"{method} {path!r}: response body not finished"
    reply_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in starts[0].get("headers", [])}
    return AsgiReply(starts[0]["status"], reply_headers, b"".join(m.get("body", b"") for m in bodies), sent)
