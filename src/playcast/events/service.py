"""EventsService: the AppSync Events-compatible pub/sub service (namespaces, handlers, auth, bus, sockets).

The one object the rest of playcast talks to. It wires protocol, routing, auth, history and the bus together;
socket framing lives in ws.py/sockets.py and HTTP in http.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from starlette.routing import BaseRoute, Route, WebSocketRoute

from playcast.bus import Bus, BusUnavailable, MemoryBus
from playcast.bus.history import Position, Recovery

from . import protocol
from .auth import EventsAuth
from .channels import parse_channel
from .connection import Connection, EventsLimits
from .hooks import (
    ChannelPath,
    HandlerError,
    Identity,
    IncomingEvent,
    NamespaceHandler,
    OutgoingEvent,
    PresenceListener,
    PublishContext,
    SubscribeContext,
)
from .namespaces import SERVER, NamespaceConfig, history_policy
from .protocol import BAD_REQUEST, INTERNAL, UNAVAILABLE, ProtocolError
from .router import Router, Subscription

log = logging.getLogger(__name__)

SERVER_IDENTITY = Identity(SERVER)
SWEEP_EVERY_S = 60.0


class EventsService:
    """Pub/sub over the AppSync Events protocol, for one server process (scale out with a RedisBus)."""

    def __init__(self, api_key: str, *, bus: Bus | None = None, secret: bytes | None = None,
                 limits: EventsLimits | None = None) -> None:
        self.auth = EventsAuth(api_key, secret)
        self.bus: Bus = bus or MemoryBus()
        self.limits = limits or EventsLimits()
        self.router = Router()
        self._namespaces: dict[str, NamespaceConfig] = {}
        self._handlers: dict[str, NamespaceHandler] = {}
        self._presence: list[PresenceListener] = []
        self.connections: dict[str, Connection] = {}
        self._by_user: dict[str, set[Connection]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watching: dict[str, asyncio.Future[None]] = {}  # bus watches being set up, by channel/wildcard
        self._loops: list[asyncio.Task[None]] = []
        self._started = False
        self.published = 0  # events this process accepted and handed to the bus (for metrics)
        self.slow_consumers = 0  # sockets cut off because they did not read their events (for metrics)

    # ------------------------------------------------------------------ configuration (public API)
    def define_namespace(self, config: NamespaceConfig) -> None:
        self._namespaces[config.name] = config

    def register_handler(self, namespace: str, handler: NamespaceHandler) -> None:
        self._handlers[namespace] = handler

    def add_presence_listener(self, listener: PresenceListener) -> None:
        self._presence.append(listener)

    def namespaces(self) -> list[NamespaceConfig]:
        return list(self._namespaces.values())

    def namespace_config(self, name: str) -> NamespaceConfig:
        config = self._namespaces.get(name)
        if config is None:
            raise ProtocolError(BAD_REQUEST, f"namespace {name!r} is not defined")
        return config

    def handler(self, namespace: str) -> NamespaceHandler | None:
        return self._handlers.get(namespace)

    def routes(self) -> list[BaseRoute]:
        from .http import publish_endpoint
        from .ws import RealtimeEndpoint

        return [WebSocketRoute("/event/realtime", RealtimeEndpoint(self)),
                Route("/event", publish_endpoint(self), methods=["POST", "OPTIONS"])]

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._started:
            return
        if not self.auth.has_secret:
            log.warning("events: no token signing secret configured; user tokens are valid for this process only")
            self.auth.set_secret(secrets.token_bytes(32))
        await self.bus.start(self)
        self._loops = [asyncio.ensure_future(self._keepalive_loop()), asyncio.ensure_future(self._sweep_loop())]
        self._started = True
        log.info("events service started (bus %s)", type(self.bus).__name__)

    async def close(self) -> None:
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops = []
        conns = list(self.connections.values())
        await asyncio.gather(*(c.close(protocol.CLOSE_GOING_AWAY, "server shutting down") for c in conns),
                             return_exceptions=True)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self.bus.close()
        self._started = False
        log.info("events service stopped")

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keepalive_loop(self) -> None:
        while True:
            await asyncio.sleep(self.limits.keepalive_s)
            for conn in list(self.connections.values()):
                if not conn.closing and conn.auth_error is None:
                    conn.sender.send_text(protocol.KA)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            sweep = getattr(self.bus, "sweep", None)
            if sweep is not None:
                sweep()

    # ------------------------------------------------------------------ connections (used by ws.py)
    def register(self, conn: Connection) -> None:
        self.connections[conn.id] = conn
        for user in conn.user_ids:
            self.index_user(conn, user)

    def index_user(self, conn: Connection, user_id: str) -> None:
        self._by_user.setdefault(user_id, set()).add(conn)

    async def unregister(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        for user in conn.user_ids:
            conns = self._by_user.get(user)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self._by_user[user]
        await conn.cleanup()

    # ------------------------------------------------------------------ subscriptions (used by connection.py)
    async def attach(self, sub: Subscription, since: Position | None) -> Recovery | None:
        """Register a (pending) subscription, make sure the bus delivers its channel here, and for an exact
        channel read the position (and what was missed since `since`)."""
        key = sub.channel.path
        if self.router.add(sub):
            pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._watching[key] = pending
            try:
                await self.bus.watch(key)
                pending.set_result(None)
            except Exception as exc:
                pending.set_exception(exc)
                pending.exception()  # retrieved: others waiting on it see it; nobody else must
                if self.router.remove(sub):
                    self.spawn(self._unwatch(key))
                raise
            finally:
                if self._watching.get(key) is pending:
                    del self._watching[key]
        elif (pending := self._watching.get(key)) is not None:
            try:
                await asyncio.shield(pending)  # the first subscriber's watch is still being set up
            except Exception:
                if self.router.remove(sub):
                    self.spawn(self._unwatch(key))
                raise
        self.bus.counts_changed()
        if sub.channel.is_wildcard:
            return None
        try:
            config = self.namespace_config(sub.channel.namespace)
            return await self.bus.recover(sub.channel.path, since, history_policy(config))
        except Exception:
            await self.detach(sub)
            raise

    async def _unwatch(self, key: str) -> None:
        try:
            await self.bus.unwatch(key)
        except Exception as exc:  # noqa: BLE001
            log.debug("unwatch %s failed: %r", key, exc)

    async def subscribed(self, sub: Subscription) -> None:
        sub.joined = True
        for listener in self._presence:
            try:
                await listener(sub.channel.path, sub.identity, True)
            except Exception:  # noqa: BLE001
                log.exception("presence listener failed on join of %s", sub.channel.path)

    async def detach(self, sub: Subscription) -> None:
        if self.router.remove(sub):
            await self._unwatch(sub.channel.path)
        self.bus.counts_changed()
        if not sub.joined:
            return
        sub.joined = False
        handler = self._handlers.get(sub.channel.namespace)
        if handler is not None:
            try:
                await handler.on_unsubscribe(SubscribeContext(sub.channel, sub.identity))
            except Exception:  # noqa: BLE001
                log.exception("on_unsubscribe failed for %s", sub.channel.path)
        for listener in self._presence:
            try:
                await listener(sub.channel.path, sub.identity, False)
            except Exception:  # noqa: BLE001
                log.exception("presence listener failed on leave of %s", sub.channel.path)

    # ------------------------------------------------------------------ publishing
    async def publish(self, channel: str, payloads: list[Any], identity: Identity | None = None) -> list[OutgoingEvent]:
        """Server-side publish of JSON-able values: runs the namespace handler, records history and fans out
        (here and on every replica). Returns one OutgoingEvent per payload (with `error` set where it failed).
        Raises ProtocolError for an invalid channel, an undefined namespace, a handler's refusal or an
        unavailable bus."""
        path = parse_channel(channel, allow_wildcard=False)
        config = self.namespace_config(path.namespace)
        entries: list[tuple[int, str, str | None, Any, str | None]] = []
        for i, value in enumerate(payloads):
            try:
                text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                entries.append((i, _event_id(), None, None, f"payload is not JSON-serializable: {exc}"))
                continue
            checked, parsed, why = protocol.check_event(text)
            entries.append((i, _event_id(), checked, value if checked is not None else None, why))
        published, failed = await self._publish_entries(path, config, identity or SERVER_IDENTITY, entries)
        out: dict[int, OutgoingEvent] = {}
        for index, event in published:
            out[index] = event
        for item in failed:
            out[item["index"]] = OutgoingEvent(item["identifier"], None, item["message"])
        return [out[i] for i in sorted(out)]

    async def publish_raw(self, channel: ChannelPath, config: NamespaceConfig, identity: Identity,
                          events: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """A client's publish (WebSocket or HTTP) of event strings -> (successful, failed) as AppSync reports."""
        entries = []
        for i, raw in enumerate(events):
            text, value, why = protocol.check_event(raw)
            entries.append((i, _event_id(), text, value, why))
        published, failed = await self._publish_entries(channel, config, identity, entries)
        successful = [{"identifier": ev.id, "index": index} for index, ev in published]
        return successful, failed

    async def _publish_entries(self, channel: ChannelPath, config: NamespaceConfig, identity: Identity,
                               entries: list[tuple[int, str, str | None, Any, str | None]],
                               ) -> tuple[list[tuple[int, OutgoingEvent]], list[dict[str, Any]]]:
        failed = [{"identifier": eid, "index": i, "code": 400, "message": why}
                  for i, eid, _, _, why in entries if why is not None]
        valid = [(i, eid, text, value) for i, eid, text, value, why in entries if why is None]
        if not valid:
            return [], failed
        by_id = {eid: (i, text, value) for i, eid, text, value in valid}
        incoming = [IncomingEvent(eid, value) for _, eid, _, value in valid]
        handler = self._handlers.get(channel.namespace)
        result: list[OutgoingEvent] | None = None
        if handler is not None:
            try:
                result = await handler.on_publish(PublishContext(channel, identity, incoming, time.time()))
            except HandlerError as exc:
                raise ProtocolError(exc.error_type, exc.message) from None
            except Exception:
                log.exception("on_publish handler of namespace %s failed", channel.namespace)
                raise ProtocolError(INTERNAL, "the namespace handler failed") from None
        to_send: list[tuple[int, OutgoingEvent, str]] = []
        filtered: list[tuple[int, OutgoingEvent]] = []
        if result is None:
            to_send = [(i, OutgoingEvent(eid, value), text) for i, eid, text, value in valid]
        else:
            returned: set[str] = set()
            for out in result:
                known = by_id.get(out.id)
                if known is None:
                    log.warning("handler of %s returned an unknown event id %r; ignored", channel.namespace, out.id)
                    continue
                returned.add(out.id)
                index, text, value = known
                if out.error is not None:
                    failed.append({"identifier": out.id, "index": index, "code": 400, "message": out.error})
                    continue
                if out.payload is not value:
                    text = json.dumps(out.payload, separators=(",", ":"), ensure_ascii=False)
                to_send.append((index, out, text))
            # events the handler left out were filtered (accepted, not broadcast)
            filtered = [(i, OutgoingEvent(eid, None)) for i, eid, _, _ in valid if eid not in returned]
        if to_send:
            try:
                await self.bus.publish(channel.path, [(out.id, text) for _, out, text in to_send],
                                       history_policy(config))
            except BusUnavailable as exc:
                raise ProtocolError(UNAVAILABLE, f"events cannot be published right now ({exc}); retry") from None
            self.published += len(to_send)
        published = [(i, out) for i, out, _ in to_send] + filtered
        published.sort(key=lambda item: item[0])
        failed.sort(key=lambda item: item["index"])
        return published, failed

    # ------------------------------------------------------------------ cluster-wide operations
    async def disconnect_user(self, user_id: str, reason: str) -> int:
        """Close every socket of this user, on every replica. Returns how many were closed."""
        closed = await self._disconnect_local(user_id, reason)
        try:
            replies = await self.bus.ask_others({"op": "disconnect_user", "user_id": user_id, "reason": reason})
        except Exception as exc:  # noqa: BLE001
            log.warning("disconnect_user %s: other replicas not reached: %r", user_id, exc)
            replies = []
        return closed + sum(int(r.get("closed", 0)) for r in replies)

    async def _disconnect_local(self, user_id: str, reason: str) -> int:
        conns = [c for c in self._by_user.get(user_id, ()) if not c.closing]
        await asyncio.gather(*(c.close(protocol.CLOSE_KICKED, reason[:120]) for c in conns), return_exceptions=True)
        return len(conns)

    async def subscriber_count(self, channel: str) -> int:
        """Subscriptions to exactly this channel, cluster-wide (other replicas as they last reported)."""
        local = self.router.index.count_exact(channel)
        try:
            return local + await self.bus.remote_subscriber_count(channel)
        except Exception as exc:  # noqa: BLE001
            log.debug("remote subscriber count of %s unavailable: %r", channel, exc)
            return local

    # ------------------------------------------------------------------ BusListener
    def on_event(self, event: Any) -> None:
        self.router.on_event(event)

    def on_gap(self, channel: str, top: Position | None) -> None:
        self.router.on_gap(channel, top)

    async def on_request(self, message: dict[str, Any]) -> dict[str, Any]:
        if message.get("op") == "disconnect_user" and isinstance(message.get("user_id"), str):
            return {"closed": await self._disconnect_local(message["user_id"], str(message.get("reason", "")))}
        return {}

    def local_counts(self) -> dict[str, int]:
        return self.router.local_counts()

    def stats(self) -> dict[str, Any]:
        return {"connections": len(self.connections), **self.router.stats()}


def _event_id() -> str:
    return str(uuid.uuid4())
