"""request_body: the streaming reader with its limit and the server-wide BodyLimitMiddleware, over a real uvicorn
on loopback serving a small app whose routes read greedily, within a limit, or not at all."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from playcast.request_body import BodyLimitMiddleware, BodyTooLarge, read_body
from tests.raw_http import post_streaming
from tests.whip.support import LoopbackServer, free_port

GLOBAL = 200_000
ROUTE = 1000


async def greedy(request: Request) -> Response:
    """A route that forgot its limit: only the guard stands between it and the client's body."""
    return PlainTextResponse(str(len(await request.body())))


async def limited(request: Request) -> Response:
    try:
        return PlainTextResponse(str(len(await read_body(request, ROUTE))))
    except BodyTooLarge as exc:
        return PlainTextResponse(exc.message, 413)


async def deaf(request: Request) -> Response:
    return PlainTextResponse("who are you?", 401)


@pytest.fixture
async def port() -> AsyncIterator[int]:
    app = Starlette(routes=[Route("/greedy", greedy, methods=["POST"]), Route("/limited", limited, methods=["POST"]),
                            Route("/deaf", deaf, methods=["POST"])],
                    middleware=[Middleware(BodyLimitMiddleware, limit=GLOBAL)])
    number = free_port()
    async with LoopbackServer(app, number):
        yield number


async def _post(port: int, path: str, *, declared: int | None, total: int, wait_first_s: float = 0.0):  # type: ignore[no-untyped-def]
    return await asyncio.to_thread(post_streaming, port, path, {}, declared=declared, total=total,
                                   wait_first_s=wait_first_s, timeout_s=20)


async def test_bodies_within_the_limits_arrive_whole(port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        assert (await http.post("/greedy", content=b"x" * GLOBAL)).text == str(GLOBAL)
        assert (await http.post("/limited", content=b"y" * ROUTE)).text == str(ROUTE)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(ROUTE // 100):
                yield b"z" * 100

        assert (await http.post("/limited", content=chunks())).text == str(ROUTE)  # chunked, exactly the limit


async def test_a_content_length_over_the_guards_limit_is_refused_unread(port: int) -> None:
    """The greedy route gets nothing to read (the guard's 413); the others answer in their own words; none of
    them waits for the body, and the connection closes after the answer."""
    for path, status, words in (("/greedy", 413, b"larger than 200000 bytes"),
                                ("/limited", 413, b"larger than 1000 bytes"), ("/deaf", 401, b"who are you?")):
        answer = await _post(port, path, declared=300 << 20, total=4 << 20, wait_first_s=5)
        assert answer.status == status and answer.sent_before_answer == 0, (path, answer)
        assert words in answer.body and "connection: close" in answer.head.lower(), answer
        assert answer.sent < (4 << 20), "the server went on reading after its answer"


async def test_the_guard_cuts_off_a_chunked_body_at_its_limit(port: int) -> None:
    answer = await _post(port, "/greedy", declared=None, total=64 << 20)
    assert answer.status == 413 and "connection: close" in answer.head.lower(), answer
    assert answer.sent < (32 << 20), "the server read on past the limit"  # the rest: what the socket buffers held


async def test_a_route_limit_counts_the_bytes_of_a_chunked_body(port: int) -> None:
    answer = await _post(port, "/limited", declared=None, total=64 << 20)
    assert answer.status == 413 and answer.sent < (32 << 20), answer
    answer = await _post(port, "/limited", declared=ROUTE + 1, total=ROUTE + 1, wait_first_s=5)
    assert answer.status == 413 and answer.sent_before_answer == 0, answer  # its Content-Length, unread


async def test_an_answer_before_the_body_closes_a_chunked_request_and_drains_a_declared_one(port: int) -> None:
    chunked = await _post(port, "/deaf", declared=None, total=64 << 20, wait_first_s=5)
    assert chunked.status == 401 and chunked.sent_before_answer == 0 and "connection: close" in chunked.head.lower()
    assert chunked.sent < (32 << 20)
    # a declared body (under the guard's limit) is read to its end and dropped; the connection serves on
    first, second = await asyncio.to_thread(_refused_then_served, port, "/deaf", GLOBAL // 2, b"who are you?")
    assert first.startswith(b"HTTP/1.1 401") and b"connection: close" not in first.lower()
    assert second.startswith(b"HTTP/1.1 200")


async def test_a_declared_body_over_the_limits_is_refused_then_drained_not_reset(port: int) -> None:
    """A client that sends all of a (moderately) oversized declared body before reading gets the answer whole:
    the server reads the body and drops it instead of closing on a client still sending (whose kernel would then
    reset the connection and could destroy the answer: botocore saw a 413 with an empty message)."""
    for path, words in (("/greedy", b"larger than 200000 bytes\n"), ("/limited", b"larger than 1000 bytes")):
        first, second = await asyncio.to_thread(_refused_then_served, port, path, 3 * GLOBAL, words)
        assert first.startswith(b"HTTP/1.1 413") and b"connection: close" not in first.lower(), (path, first)
        assert second.startswith(b"HTTP/1.1 200"), (path, second)


def _read_until(sock: socket.socket, end: bytes) -> bytes:
    got = b""
    while not got.endswith(end):
        data = sock.recv(65536)
        assert data, f"connection closed; got {got!r}"
        got += data
    return got


def _refused_then_served(port: int, path: str, size: int, words: bytes) -> tuple[bytes, bytes]:
    """On one connection: POST `path` declaring `size` bytes (its answer, ending in `words`, read before the body
    goes), the body, then POST /limited; both answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
        first = _read_until(sock, words)
        sock.sendall(b"x" * size + b"POST /limited HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        return first, _read_until(sock, b"\r\n\r\n3")
