"""One client socket speaking the AppSync Events protocol: connection_init, subscribe, publish, unsubscribe.

Turns each client message into a service call and each refusal into the protocol's error reply; it never
writes to other sockets and never lets one client's bad input reach another."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from . import protocol
from .auth import PUB, SUB
from .channels import parse_channel
from .hooks import HandlerError, Identity, SubscribeContext
from .protocol import (
    BAD_REQUEST,
    LIMIT_EXCEEDED,
    TOO_MANY_REQUESTS,
    UNAUTHORIZED,
    UNAVAILABLE,
    ConnectionInit,
    ProtocolError,
    Publish,
    Subscribe,
    Unsubscribe,
)
from .ratelimit import TokenBucket
from .router import Subscription
from .sockets import Sender

if TYPE_CHECKING:
    from .service import EventsService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventsLimits:
    """Per-connection limits and keep-alive timing."""

    messages_per_s: float = 50.0  # client messages per second per connection (token bucket rate)
    burst: float = 100.0  # ... and how many may come at once
    flood_strikes: int = 50  # refused messages in a row before the socket is closed (4429)
    max_subscriptions: int = 200  # per connection
    keepalive_s: float = 60.0  # a `ka` message this often
    connection_timeout_ms: int = 300_000  # told to clients in connection_ack
    send_buffer_bytes: int = 8 * 1024 * 1024  # unread bytes before a subscriber is cut off as too slow
    send_queue_messages: int = 20_000  # the same for the plain-ASGI sender, in messages
    auth_grace_s: float = 10.0  # a socket refused at connect that sends nothing is closed after this long


class Connection:
    """Protocol state of one WebSocket."""

    def __init__(self, service: EventsService, sender: Sender, identity: Identity | None,
                 auth_error: ProtocolError | None, client: str) -> None:
        self.id = "c-" + secrets.token_hex(8)
        self.service = service
        self.sender = sender
        self.identity = replace(identity, connection_id=self.id) if identity is not None else None
        self.auth_error = auth_error
        self.client = client
        self.subscriptions: dict[str, Subscription] = {}
        self.user_ids: set[str] = {identity.user_id} if identity is not None and identity.user_id else set()
        limits = service.limits
        self._bucket = TokenBucket(limits.messages_per_s, limits.burst)
        self._strikes = 0
        self.closing = False
        self.abandoned = asyncio.Event()  # set when a close frame could not be delivered: stop serving it

    # ------------------------------------------------------------------ entry points
    async def handle_text(self, text: str) -> None:
        if self.closing:
            return
        if self.auth_error is not None:
            await self.refuse(self.auth_error)
            return
        if not self._bucket.take():
            self._strikes += 1
            if self._strikes >= self.service.limits.flood_strikes:
                log.warning("closing %s (%s): message flood", self.id, self.client)
                await self.close(protocol.CLOSE_FLOOD, "message rate limit exceeded")
                return
            self.sender.send_text(protocol.error("error", TOO_MANY_REQUESTS,
                                                 f"more than {self.service.limits.messages_per_s:g} messages per "
                                                 "second on this connection; message dropped",
                                                 _peek_id(text)))
            return
        self._strikes = 0
        try:
            msg = protocol.parse_client_message(text)
            if isinstance(msg, ConnectionInit):
                self.sender.send_text(protocol.connection_ack(self.service.limits.connection_timeout_ms))
            elif isinstance(msg, Subscribe):
                await self._subscribe(msg)
            elif isinstance(msg, Publish):
                await self._publish(msg)
            elif isinstance(msg, Unsubscribe):
                await self._unsubscribe(msg)
        except ProtocolError as exc:
            self.sender.send_text(protocol.error(exc.reply, exc.error_type, exc.message, exc.id))

    async def handle_binary(self) -> None:
        if self.auth_error is not None:
            await self.refuse(self.auth_error)
            return
        self.sender.send_text(protocol.error("error", protocol.BAD_REQUEST,
                                             "binary frames are not supported; send JSON text"))

    async def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        if not await self.sender.close(code, reason):
            self.abandoned.set()

    def slow_consumer(self) -> None:
        """The socket's send buffer overflowed: cut it off (it can reconnect and recover)."""
        if not self.closing:
            log.warning("closing %s (%s): slow consumer", self.id, self.client)
            self.service.spawn(self.close(protocol.CLOSE_SLOW_CONSUMER, "slow consumer: events were not read"))

    async def cleanup(self) -> None:
        """The socket is gone: end every subscription."""
        self.closing = True
        subs, self.subscriptions = list(self.subscriptions.values()), {}
        for sub in subs:
            await self.service.detach(sub)

    # ------------------------------------------------------------------ messages
    async def refuse(self, exc: ProtocolError) -> None:
        """The connect credentials were refused: connection_error, then close 4401."""
        if self.closing:
            return
        self.sender.send_text(protocol.error("connection_error", exc.error_type, exc.message))
        await self.close(protocol.CLOSE_UNAUTHORIZED, "Unauthorized")

    def _identity(self, headers: dict[str, str] | None) -> Identity:
        """The message's own credentials if it carries some, else the connection's."""
        if headers and any(k.lower() in ("x-api-key", "authorization") for k in headers):
            identity = self.service.auth.authenticate(headers, connection_id=self.id)
            if identity.user_id:
                if identity.user_id not in self.user_ids:
                    self.user_ids.add(identity.user_id)
                    self.service.index_user(self, identity.user_id)
            return identity
        if self.identity is None:
            raise ProtocolError(UNAUTHORIZED, "no credentials on the message or the connection")
        return self.identity

    async def _subscribe(self, msg: Subscribe) -> None:
        def fail(error_type: str, message: str) -> ProtocolError:
            return ProtocolError(error_type, message, id=msg.id, reply="subscribe_error")

        try:
            if msg.id in self.subscriptions:
                raise fail(BAD_REQUEST, f"subscription id {msg.id!r} is already in use on this connection")
            if len(self.subscriptions) >= self.service.limits.max_subscriptions:
                raise fail(LIMIT_EXCEEDED, f"at most {self.service.limits.max_subscriptions} subscriptions per "
                           "connection")
            channel = parse_channel(msg.channel, allow_wildcard=True)
            config = self.service.namespace_config(channel.namespace)
            identity = self._identity(msg.authorization)
            self.service.auth.authorize(identity, config, SUB)
            if msg.since is not None and channel.is_wildcard:
                raise fail(BAD_REQUEST, "recovery ('since') needs an exact channel, not a wildcard")
            handler = self.service.handler(channel.namespace)
            if handler is not None:
                try:
                    await handler.on_subscribe(SubscribeContext(channel, identity))
                except HandlerError as exc:
                    raise fail(exc.error_type, exc.message) from None
            sub = Subscription(msg.id, self.sender, channel, identity)
            self.subscriptions[msg.id] = sub
            try:
                recovery = await self.service.attach(sub, msg.since)
            except Exception:
                self.subscriptions.pop(msg.id, None)
                raise
        except ProtocolError as exc:
            exc.id, exc.reply = msg.id, "subscribe_error"
            raise
        except Exception as exc:  # noqa: BLE001 - the bus is down or a handler failed: refuse, keep the socket
            log.warning("subscribe %s on %s failed: %r", msg.channel, self.id, exc)
            raise ProtocolError(UNAVAILABLE, "could not subscribe right now; retry", id=msg.id,
                                reply="subscribe_error") from None
        if self.closing:
            return
        if recovery is None:
            self.sender.send_text(protocol.subscribe_success(msg.id, None, None))
            self.service.router.activate(sub, None)
        else:
            self.sender.send_text(protocol.subscribe_success(
                msg.id, recovery.top, recovery.recovered if msg.since is not None else None))
            if msg.since is not None and recovery.recovered:
                for event in recovery.events:
                    self.sender.write_data(sub.head, protocol.data_tail(event.payload, event.channel,
                                                                        event.position))
            self.service.router.activate(sub, recovery.top)
        await self.service.subscribed(sub)

    async def _publish(self, msg: Publish) -> None:
        try:
            channel = parse_channel(msg.channel, allow_wildcard=False)
            config = self.service.namespace_config(channel.namespace)
            identity = self._identity(msg.authorization)
            self.service.auth.authorize(identity, config, PUB)
            successful, failed = await self.service.publish_raw(channel, config, identity, msg.events)
        except ProtocolError as exc:
            exc.id, exc.reply = msg.id, "publish_error"
            raise
        self.sender.send_text(protocol.publish_success(msg.id, successful, failed))

    async def _unsubscribe(self, msg: Unsubscribe) -> None:
        sub = self.subscriptions.pop(msg.id, None)
        if sub is None:
            raise ProtocolError(BAD_REQUEST, f"no subscription with id {msg.id!r} on this connection", id=msg.id,
                                reply="unsubscribe_error")
        await self.service.detach(sub)
        self.sender.send_text(protocol.unsubscribe_success(msg.id))


def _peek_id(text: str) -> str | None:
    """The id of a message we refuse to parse in full (flooding): a cheap look for '"id":"...'."""
    i = text.find('"id"')
    if i < 0 or i > 4096:
        return None
    j = text.find('"', text.find(":", i) + 1)
    k = text.find('"', j + 1) if j >= 0 else -1
    if j < 0 or k < 0 or k - j > protocol.MAX_ID_CHARS + 1:
        return None
    return text[j + 1:k]
