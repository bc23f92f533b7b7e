"""The Redis bus: replicas share events through Redis pub/sub, per-channel history lives in Redis streams.

Publishing is one Lua script (position, history, PUBLISH atomically, so pub/sub order is offset order).
Each replica hands its listener every event of a watched channel once, in order, or an explicit gap: it
drops duplicates, refills holes from the stream, and after a lost connection (Redis restart) reconnects by
itself and catches up from history. Never blocks the event loop; never decides who may see what."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import RedisError

from playcast.json_input import parse_json

from .base import Bus, BusListener, BusUnavailable
from .history import HistoryPolicy, Position, Recovery, StoredEvent, new_epoch, plan_recovery

log = logging.getLogger(__name__)

REPORT_EVERY_S = 0.2  # how soon subscriber-count changes reach the other replicas
HEARTBEAT_S = 5.0
REPLICA_TTL_S = 20.0
CATCH_UP_WAIT_S = 2.0
STATE_IDLE_S = 600.0  # forget positions of wildcard-discovered channels not seen for this long
RECONNECT_MAX_S = 2.0
CONNECT_WAIT_S = 5.0
MAX_CONTROL_BYTES = 16 << 20  # replicas' requests and replies to each other: a backstop, not a rule

_PUBLISH = """
local meta, stream, pubch = KEYS[1], KEYS[2], KEYS[3]
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', meta, 'e', epoch, 't', 0)
  redis.call('DEL', stream)
end
local size = tonumber(ARGV[2])
local out = {epoch}
for i = 5, #ARGV, 2 do
  local off = redis.call('HINCRBY', meta, 't', 1)
  if size > 0 then
    redis.call('XADD', stream, 'MAXLEN', size, '0-' .. off, 'i', ARGV[i], 'p', ARGV[i + 1])
  end
  redis.call('PUBLISH', pubch, epoch .. '\\n' .. off .. '\\n' .. ARGV[i] .. '\\n' .. ARGV[i + 1])
  out[#out + 1] = off
end
redis.call('PEXPIRE', meta, ARGV[4])
if size > 0 then redis.call('PEXPIRE', stream, ARGV[3]) end
return out
"""

_RECOVER = """
local meta, stream = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', meta, 'e', epoch, 't', 0)
  redis.call('DEL', stream)
  redis.call('PEXPIRE', meta, ARGV[2])
end
local top = tonumber(redis.call('HGET', meta, 't') or '0')
local from = tonumber(ARGV[3])
local entries = {}
if from >= 0 and from < top and ARGV[4] == epoch then
  entries = redis.call('XRANGE', stream, '0-' .. (from + 1), '+')
end
return {epoch, top, entries}
"""

_RANGE = """
local meta, stream = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'e')
if not epoch then return {false, 0, {}} end
local top = tonumber(redis.call('HGET', meta, 't') or '0')
local entries = {}
if ARGV[1] ~= '' then entries = redis.call('XRANGE', stream, '0-' .. ARGV[1], '0-' .. ARGV[2]) end
return {epoch, top, entries}
"""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entries(channel: str, epoch: str, raw: list[Any]) -> list[StoredEvent]:
    out = []
    for entry_id, fields in raw:
        offset = int(_s(entry_id).split("-", 1)[1])
        values = {_s(fields[i]): fields[i + 1] for i in range(0, len(fields), 2)}
        out.append(StoredEvent(channel, Position(epoch, offset), _s(values["i"]), _s(values["p"])))
    return out


@dataclass
class _ChannelState:
    """What this replica delivered of one channel: position, a hold while refilling, catch-up waiters."""

    epoch: str
    last: int
    holding: list[StoredEvent] | None = None
    waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)
    seen: float = field(default_factory=time.monotonic)


class RedisBus(Bus):
    def __init__(self, url: str, *, prefix: str = "playcast:ev:", replica_id: str | None = None) -> None:
        self.url = url
        self.prefix = prefix
        self.replica_id = replica_id or "r-" + secrets.token_hex(6)
        self._listener: BusListener | None = None
        self._redis: Redis | None = None
        self._sub_redis: Redis | None = None
        self._pubsub: Any = None
        self._connected = asyncio.Event()
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._exact: set[str] = set()  # watched exact channel paths
        self._patterns: set[str] = set()  # watched wildcard paths ('/ns/*')
        self._states: dict[str, _ChannelState] = {}
        self._confirm: dict[tuple[str, str], list[asyncio.Future[None]]] = {}
        self._sub_lock = asyncio.Lock()
        self._replies: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._counts_dirty = True
        self._counts_event = asyncio.Event()
        self._publish_script: Any = None
        self._recover_script: Any = None
        self._range_script: Any = None
        self.reconnects = 0

    # ------------------------------------------------------------------ names
    def _chan(self, path: str) -> str:
        return f"{self.prefix}c:{path}"

    def _meta(self, path: str) -> str:
        return f"{self.prefix}m:{path}"

    def _stream(self, path: str) -> str:
        return f"{self.prefix}h:{path}"

    @property
    def _ctl(self) -> str:
        return f"{self.prefix}ctl"

    def _reply_chan(self, replica: str) -> str:
        return f"{self.prefix}reply:{replica}"

    def _counts_key(self, replica: str) -> str:
        return f"{self.prefix}counts:{replica}"

    @property
    def _replicas_key(self) -> str:
        return f"{self.prefix}replicas"

    # ------------------------------------------------------------------ lifecycle
    async def start(self, listener: BusListener) -> None:
        self._listener = listener
        self._redis = Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5,
                                     retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
                                     health_check_interval=0)
        self._sub_redis = Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=None,
                                         retry=Retry(NoBackoff(), 0))
        self._publish_script = self._redis.register_script(_PUBLISH)
        self._recover_script = self._redis.register_script(_RECOVER)
        self._range_script = self._redis.register_script(_RANGE)
        self._tasks = [asyncio.ensure_future(self._pump()), asyncio.ensure_future(self._report_loop())]
        try:
            await asyncio.wait_for(self._connected.wait(), 10)
        except TimeoutError:
            await self.close()
            raise BusUnavailable(f"cannot reach Redis at {self.url}") from None
        log.info("redis bus %s connected to %s", self.replica_id, self.url)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for task in list(self._background):
            task.cancel()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.delete(self._counts_key(self.replica_id))
                await self._redis.zrem(self._replicas_key, self.replica_id)
            await self._redis.aclose()
        if self._sub_redis is not None:
            await self._sub_redis.aclose()
        self._listener = None

    @property
    def healthy(self) -> bool:
        return self._connected.is_set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ publish / recover
    async def publish(self, channel: str, items: list[tuple[str, str]], policy: HistoryPolicy) -> list[StoredEvent]:
        assert self._publish_script is not None
        args: list[Any] = [new_epoch(), policy.size, int(policy.ttl_s * 1000), int(policy.position_ttl_s * 1000)]
        for event_id, payload in items:
            args += [event_id, payload]
        try:
            result = await self._publish_script(keys=[self._meta(channel), self._stream(channel),
                                                      self._chan(channel)], args=args)
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis: {exc}") from exc
        epoch = _s(result[0])
        return [StoredEvent(channel, Position(epoch, int(off)), event_id, payload)
                for (event_id, payload), off in zip(items, result[1:], strict=True)]

    async def recover(self, channel: str, since: Position | None, policy: HistoryPolicy) -> Recovery:
        assert self._recover_script is not None
        args = [new_epoch(), int(policy.position_ttl_s * 1000),
                since.offset if since is not None else -1, since.epoch if since is not None else ""]
        try:
            epoch_raw, top_raw, raw = await self._recover_script(
                keys=[self._meta(channel), self._stream(channel)], args=args)
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis: {exc}") from exc
        top = Position(_s(epoch_raw), int(top_raw))
        await self._caught_up(channel, top)
        return plan_recovery(top, since, _entries(channel, top.epoch, raw))

    async def _caught_up(self, channel: str, top: Position) -> None:
        """Make "recovery said top" and "live delivery" meet: wait until everything up to `top` was handed
        to the listener (it is in flight on pub/sub), or start tracking the channel at `top`."""
        state = self._states.get(channel)
        if state is None:
            if channel in self._exact or self._covered(channel):
                self._states[channel] = _ChannelState(top.epoch, top.offset)
            return
        if state.epoch != top.epoch or state.last >= top.offset:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiters.append((top.offset, fut))
        try:
            await asyncio.wait_for(fut, CATCH_UP_WAIT_S)
        except TimeoutError:
            log.warning("events of %s up to %d did not arrive in %.0fs; refilling from history", channel,
                        top.offset, CATCH_UP_WAIT_S)
            if state.holding is None:
                state.holding = []
                self._spawn(self._refill(channel, state, state.last + 1, top.offset))

    # ------------------------------------------------------------------ watching
    def _covered(self, channel: str) -> bool:
        segs = channel[1:].split("/")
        return any("/" + "/".join(segs[:n]) + "/*" in self._patterns for n in range(1, len(segs)))

    async def watch(self, key: str) -> None:
        wildcard = key.endswith("/*")
        (self._patterns if wildcard else self._exact).add(key)
        if not self._connected.is_set():
            try:
                await asyncio.wait_for(self._connected.wait(), CONNECT_WAIT_S)
            except TimeoutError:
                (self._patterns if wildcard else self._exact).discard(key)
                raise BusUnavailable("redis is not connected") from None
        async with self._sub_lock:  # (un)subscribe commands reach Redis in call order
            if key in (self._patterns if wildcard else self._exact):
                await self._subscribe(key, wildcard)

    async def _subscribe(self, key: str, wildcard: bool) -> None:
        pubsub = self._pubsub
        if pubsub is None or not self._connected.is_set():
            return  # the pump subscribes every watched key when it reconnects, then catches up
        kind = "psubscribe" if wildcard else "subscribe"
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm.setdefault((kind, self._chan(key)), []).append(fut)
        try:
            if wildcard:
                await pubsub.psubscribe(self._chan(key))
            else:
                await pubsub.subscribe(self._chan(key))
            await asyncio.wait_for(asyncio.shield(fut), CONNECT_WAIT_S)
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("redis %s %s not confirmed: %r (the reconnect will redo it)", kind, key, exc)

    async def unwatch(self, key: str) -> None:
        wildcard = key.endswith("/*")
        watched = self._patterns if wildcard else self._exact
        watched.discard(key)
        if not wildcard and not self._covered(key):
            state = self._states.pop(key, None)
            if state is not None:
                self._release(state)
        async with self._sub_lock:
            pubsub = self._pubsub
            if key in watched or pubsub is None or not self._connected.is_set():
                return  # watched again meanwhile, or the next connection will not subscribe it anyway
            with contextlib.suppress(RedisError, OSError):
                if wildcard:
                    await pubsub.punsubscribe(self._chan(key))
                else:
                    await pubsub.unsubscribe(self._chan(key))

    # ------------------------------------------------------------------ the pub/sub pump
    async def _pump(self) -> None:
        assert self._sub_redis is not None
        backoff = 0.05
        first = True
        while not self._closed:
            pubsub = self._sub_redis.pubsub()
            try:
                async with self._sub_lock:
                    exact, patterns = list(self._exact), list(self._patterns)
                    await pubsub.subscribe(self._ctl, self._reply_chan(self.replica_id))
                    if exact:
                        await pubsub.subscribe(*[self._chan(k) for k in exact])
                    if patterns:
                        await pubsub.psubscribe(*[self._chan(k) for k in patterns])
                    # Wait for Redis to confirm them all before calling it connected.
                    expected = 2 + len(exact) + len(patterns)
                    confirmed = 0
                    while confirmed < expected:
                        msg = await pubsub.get_message(timeout=CONNECT_WAIT_S)
                        if msg is None:
                            raise ConnectionError("no subscribe confirmation from redis")
                        if msg["type"] in ("subscribe", "psubscribe"):
                            confirmed += 1
                        else:
                            self._dispatch(msg)
                    self._pubsub = pubsub
                    self._connected.set()
                self._counts_dirty = True
                self._counts_event.set()
                if not first:
                    self.reconnects += 1
                    log.info("redis bus %s reconnected; catching up %d channels", self.replica_id,
                             len(self._states))
                    self._spawn(self._catch_up_all())
                first = False
                backoff = 0.05
                while not self._closed:
                    msg = await pubsub.get_message(timeout=HEARTBEAT_S)
                    if msg is not None:
                        self._dispatch(msg)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except (RedisError, OSError, ConnectionError) as exc:
                if self._connected.is_set():
                    log.warning("redis bus %s lost its connection: %r; reconnecting", self.replica_id, exc)
                self._connected.clear()
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                self._fail_confirmations()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_S)

    def _fail_confirmations(self) -> None:
        for futs in self._confirm.values():
            for fut in futs:
                if not fut.done():
                    fut.set_result(None)
        self._confirm.clear()

    def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        channel = _s(msg["channel"])
        if kind in ("subscribe", "psubscribe"):
            for fut in self._confirm.pop((kind, channel), []):
                if not fut.done():
                    fut.set_result(None)
            return
        if kind not in ("message", "pmessage"):
            return
        data = msg["data"]
        if channel == self._ctl:
            self._on_control(data)
            return
        if channel == self._reply_chan(self.replica_id):
            self._on_reply(data)
            return
        path = channel[len(self.prefix) + 2:]
        try:
            epoch, offset, event_id, payload = _s(data).split("\n", 3)
            event = StoredEvent(path, Position(epoch, int(offset)), event_id, payload)
        except ValueError:
            log.warning("malformed bus message on %s ignored", channel)
            return
        self._accept(event)

    # ------------------------------------------------------------------ ordering, dedup and holes
    def _accept(self, event: StoredEvent) -> None:
        path = event.channel
        state = self._states.get(path)
        if state is None:
            if path not in self._exact and not self._covered(path):
                return  # no longer watched
            state = _ChannelState(event.position.epoch, event.position.offset - 1)
            self._states[path] = state
        state.seen = time.monotonic()
        if state.holding is not None:
            state.holding.append(event)
            return
        self._deliver_in_order(path, state, event)

    def _deliver_in_order(self, path: str, state: _ChannelState, event: StoredEvent) -> None:
        pos = event.position
        if pos.epoch != state.epoch:
            # The channel's history started over (Redis lost it): whatever came before may be lost.
            # (epoch "" = already reported as lost when we found Redis without this channel.)
            if state.epoch:
                self._gap(path, Position(pos.epoch, pos.offset - 1))
            state.epoch, state.last = pos.epoch, pos.offset - 1
        if pos.offset <= state.last:
            return  # duplicate (e.g. both an exact and a pattern subscription matched)
        if pos.offset > state.last + 1:
            state.holding = [event]
            self._spawn(self._refill(path, state, state.last + 1, pos.offset - 1))
            return
        state.last = pos.offset
        listener = self._listener
        if listener is not None:
            listener.on_event(event)
        if state.waiters:
            self._wake(state)

    def _wake(self, state: _ChannelState, everyone: bool = False) -> None:
        keep = []
        for offset, fut in state.waiters:
            if everyone or offset <= state.last:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((offset, fut))
        state.waiters = keep

    def _release(self, state: _ChannelState) -> None:
        self._wake(state, everyone=True)

    def _gap(self, path: str, top: Position | None) -> None:
        if self._listener is not None:
            self._listener.on_gap(path, top)

    async def _refill(self, path: str, state: _ChannelState, first: int, last: int) -> None:
        """Fetch offsets first..last from the stream, deliver them, then what was held meanwhile."""
        assert self._range_script is not None
        try:
            epoch_raw, top_raw, raw = await self._range_script(keys=[self._meta(path), self._stream(path)],
                                                               args=[first, last] if first <= last else ["", ""])
            epoch = _s(epoch_raw) if epoch_raw else None
            entries = _entries(path, epoch, raw) if epoch else []
        except (RedisError, OSError) as exc:
            log.warning("refilling %s %d..%d failed: %r", path, first, last, exc)
            epoch, entries = None, []
        complete = (epoch == state.epoch and len(entries) == last - first + 1
                    and all(e.position.offset == first + i for i, e in enumerate(entries)))
        if complete:
            for event in entries:
                state.last = event.position.offset
                if self._listener is not None:
                    self._listener.on_event(event)
        else:
            self._gap(path, Position(state.epoch, last))
            state.last = max(state.last, last)
        held, state.holding = state.holding or [], None
        for event in held:
            if state.holding is not None:  # a new hole started: keep holding the rest
                state.holding.append(event)
            else:
                self._deliver_in_order(path, state, event)
        self._wake(state)

    async def _catch_up_all(self) -> None:
        """After a reconnect: for every tracked channel, deliver what was published while we were away (from
        history), or say there is a gap. Wildcard subscriptions cannot know their channels: they get a gap."""
        assert self._range_script is not None
        for pattern in list(self._patterns):
            self._gap(pattern, None)
        for path, state in list(self._states.items()):
            if state.holding is not None:
                continue
            state.holding = []
            try:
                epoch_raw, top_raw, _ = await self._range_script(keys=[self._meta(path), self._stream(path)],
                                                                 args=["", ""])
            except (RedisError, OSError) as exc:
                log.warning("catch-up of %s failed: %r", path, exc)
                epoch_raw, top_raw = None, 0
            if not epoch_raw:
                # Redis has no position for it any more (restarted empty): anything after `last` may be lost.
                self._gap(path, None)
                state.epoch, state.last = "", 0
                await self._release_held(path, state)
                continue
            epoch, top = _s(epoch_raw), int(top_raw)
            if epoch != state.epoch:
                self._gap(path, Position(epoch, top))
                state.epoch, state.last = epoch, top
                await self._release_held(path, state)
            elif top > state.last:
                await self._refill(path, state, state.last + 1, top)
            else:
                await self._release_held(path, state)

    async def _release_held(self, path: str, state: _ChannelState) -> None:
        held, state.holding = state.holding or [], None
        for event in held:
            if state.holding is not None:
                state.holding.append(event)
            else:
                self._deliver_in_order(path, state, event)
        self._wake(state)

    # ------------------------------------------------------------------ requests between replicas
    async def ask_others(self, message: dict[str, Any], timeout_s: float = 2.0) -> list[dict[str, Any]]:
        assert self._redis is not None
        req = uuid.uuid4().hex
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._replies[req] = queue
        try:
            body = json.dumps({"req": req, "from": self.replica_id, "msg": message})
            try:
                receivers = int(await self._redis.publish(self._ctl, body))
            except (RedisError, OSError) as exc:
                raise BusUnavailable(f"redis: {exc}") from exc
            expected = max(0, receivers - 1)  # we hear our own request too
            replies: list[dict[str, Any]] = []
            deadline = time.monotonic() + timeout_s
            while len(replies) < expected:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("only %d of %d replicas answered %s", len(replies), expected, message.get("op"))
                    break
                try:
                    replies.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    continue
            return replies
        finally:
            self._replies.pop(req, None)

    def _on_control(self, data: Any) -> None:
        try:
            body = parse_json(data, max_bytes=MAX_CONTROL_BYTES)
        except ValueError:
            return
        if not isinstance(body, dict) or body.get("from") == self.replica_id:
            return
        self._spawn(self._answer(body))

    async def _answer(self, body: dict[str, Any]) -> None:
        listener, redis = self._listener, self._redis
        if listener is None or redis is None:
            return
        try:
            reply = await listener.on_request(body.get("msg") or {})
        except Exception:  # noqa: BLE001
            log.exception("request %r failed", body.get("msg"))
            reply = {}
        with contextlib.suppress(RedisError, OSError):
            await redis.publish(self._reply_chan(str(body.get("from"))),
                                json.dumps({"req": body.get("req"), "reply": reply}))

    def _on_reply(self, data: Any) -> None:
        try:
            body = parse_json(data, max_bytes=MAX_CONTROL_BYTES)
        except ValueError:
            return
        queue = self._replies.get(body.get("req")) if isinstance(body, dict) else None
        if queue is not None and isinstance(body.get("reply"), dict):
            queue.put_nowait(body["reply"])

    # ------------------------------------------------------------------ subscriber counts
    def counts_changed(self) -> None:
        self._counts_dirty = True
        self._counts_event.set()

    async def remote_subscriber_count(self, channel: str) -> int:
        assert self._redis is not None
        try:
            now = time.time()
            replicas = await self._redis.zrangebyscore(self._replicas_key, now - REPLICA_TTL_S, "+inf")
            others = [_s(r) for r in replicas if _s(r) != self.replica_id]
            if not others:
                return 0
            pipe = self._redis.pipeline(transaction=False)
            for replica in others:
                pipe.hget(self._counts_key(replica), channel)
            values = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis: {exc}") from exc
        return sum(int(v) for v in values if v is not None)

    async def _report_loop(self) -> None:
        """Publish this replica's subscription counts (debounced) and a heartbeat; prune idle positions."""
        last_beat = 0.0
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._counts_event.wait(), HEARTBEAT_S)
            self._counts_event.clear()
            await asyncio.sleep(REPORT_EVERY_S)
            now = time.monotonic()
            if not self._connected.is_set() or self._listener is None or self._redis is None:
                continue
            if not self._counts_dirty and now - last_beat < HEARTBEAT_S:
                continue
            counts = self._listener.local_counts()
            key = self._counts_key(self.replica_id)
            try:
                pipe = self._redis.pipeline(transaction=True)
                pipe.delete(key)
                if counts:
                    pipe.hset(key, mapping=counts)
                pipe.expire(key, int(REPLICA_TTL_S) + 5)
                pipe.zadd(self._replicas_key, {self.replica_id: time.time()})
                pipe.zremrangebyscore(self._replicas_key, "-inf", time.time() - 3 * REPLICA_TTL_S)
                await pipe.execute()
                self._counts_dirty = False
                last_beat = now
            except (RedisError, OSError) as exc:
                log.debug("reporting counts failed: %r", exc)
            self._prune_states(now)

    def _prune_states(self, now: float) -> None:
        for path, state in list(self._states.items()):
            if path in self._exact or state.holding is not None or state.waiters:
                continue
            if now - state.seen > STATE_IDLE_S or not self._covered(path):
                del self._states[path]

