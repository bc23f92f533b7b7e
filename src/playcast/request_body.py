"""Reading HTTP request bodies within a byte limit: one streaming reader for routes, one ASGI guard for the server.

Counts and refuses only; it does not parse bodies or decide who may send one (routes check auth before reading)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_REQUEST_BODY_BYTES = 2 << 20  # the server-wide ceiling; every route's own limit is lower
# A refused body whose Content-Length is at most this is read and dropped by the server after the answer (the
# connection stays open); closing on a client still sending makes the kernel reset the connection, and the reset
# can destroy the answer before the client reads it. Longer or chunked bodies close the connection.
MAX_DRAINED_BODY_BYTES = 16 << 20


class BodyTooLarge(Exception):
    """The request body is (or says it is) larger than `limit` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit} bytes")
        self.limit = limit
        self.message = str(self)


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length an ASGI scope's headers declare, or None (absent, chunked, or not a number)."""
    for name, value in headers:
        if name.lower() == b"content-length":
            text = value.strip()
            return int(text) if text.isdigit() else None
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most `limit` bytes. Raises BodyTooLarge before reading anything when Content-Length
    says more, and as soon as the bytes received (chunked, or a lying Content-Length) pass the limit."""
    declared = declared_length(request.scope["headers"])
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise BodyTooLarge(limit)
        body += chunk
    return bytes(body)


class BodyLimitMiddleware:
    """No request body past `limit` bytes reaches any route, including one that reads without a limit of its own.
    A route that asks for a body whose Content-Length says more gets nothing (BodyTooLarge is raised into it)
    and the client a 413 from this guard; so does one whose body grows past `limit` as it is read (whatever the
    route then sends is dropped). Routes that check the caller or their own limit first answer in their own words,
    before anything is read. A response that starts before a chunked body, or one declared longer than
    `drain_limit`, was read closes the connection after it; a shorter declared body (also one over `limit`) is
    read to its end and dropped by the server after the answer, so that the client reads the answer whole."""

    def __init__(self, app: ASGIApp, limit: int = MAX_REQUEST_BODY_BYTES,
                 drain_limit: int = MAX_DRAINED_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit
        self.drain_limit = max(drain_limit, limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope["headers"])
        too_long = declared is not None and declared > self.limit
        open_ended = (declared is not None and declared > self.drain_limit) or any(
            n.lower() == b"transfer-encoding" for n, _ in scope["headers"])
        body_read = not open_ended and not declared  # nothing to read
        received = 0
        exceeded = started = False

        async def guarded_receive() -> Message:
            nonlocal received, body_read, exceeded
            if too_long and not started:  # a body read now would pass the limit: refuse it unread
                exceeded = True
                raise BodyTooLarge(self.limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise BodyTooLarge(self.limit)
                body_read = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # this guard answers
            if message["type"] == "http.response.start":
                started = True
                if open_ended and not body_read:  # do not make the server drain it
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refuse(send, close=open_ended)

    async def _refuse(self, send: Send, *, close: bool) -> None:
        body = f"request body is larger than {self.limit} bytes\n".encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413,
                    "headers": headers + ([(b"connection", b"close")] if close else [])})
        await send({"type": "http.response.body", "body": body})
