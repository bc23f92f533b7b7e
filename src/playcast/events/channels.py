"""Channel paths and namespaces: validation, wildcard matching, and the index of local subscriptions.

No I/O and no auth: the index only answers "who on this server wants events of this channel"."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Generic, TypeVar

from .hooks import ChannelPath
from .protocol import BAD_REQUEST, ProtocolError

MAX_SEGMENTS = 5
NAMESPACE_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,48}[A-Za-z0-9])?$")
SEGMENT_RE = re.compile(r"^[A-Za-z0-9_-]{1,50}$")
WILDCARD = "*"


def valid_namespace_name(name: str) -> bool:
    return bool(NAMESPACE_RE.match(name))


def parse_channel(path: str, *, allow_wildcard: bool) -> ChannelPath:
    """'/ns/a/b' -> ChannelPath. A trailing '*' segment (subscriptions only) matches every channel below its
    prefix, at any depth. Raises ProtocolError(BadRequestException) with the reason."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ProtocolError(BAD_REQUEST, f"invalid channel {str(path)[:120]!r}: a channel path starts with '/'")
    segments = tuple(path[1:].split("/"))
    if len(segments) > MAX_SEGMENTS:
        raise ProtocolError(BAD_REQUEST, f"invalid channel {path[:120]!r}: at most {MAX_SEGMENTS} segments")
    if not NAMESPACE_RE.match(segments[0]):
        raise ProtocolError(BAD_REQUEST, f"invalid channel {path[:120]!r}: the namespace {segments[0][:60]!r} must "
                            "be 1-50 letters, digits or inner dashes")
    for i, seg in enumerate(segments[1:], start=1):
        if seg == WILDCARD and i == len(segments) - 1:
            if not allow_wildcard:
                raise ProtocolError(BAD_REQUEST, f"invalid channel {path[:120]!r}: wildcards are for subscribing "
                                    "only")
            continue
        if not SEGMENT_RE.match(seg):
            raise ProtocolError(BAD_REQUEST, f"invalid channel {path[:120]!r}: segment {seg[:60]!r} must be 1-50 "
                                "letters, digits, '-' or '_' ('*' only as the last segment of a subscription)")
    return ChannelPath(path, segments)


def wildcard_prefix(channel: ChannelPath) -> tuple[str, ...]:
    """'/ns/a/*' -> ('ns', 'a')."""
    return channel.segments[:-1]


def wildcard_prefixes(channel: ChannelPath) -> Iterator[tuple[str, ...]]:
    """The prefixes whose wildcard subscriptions match this (concrete) channel: ('ns',), ('ns','a'), ..."""
    segs = channel.segments
    for n in range(1, len(segs)):
        yield segs[:n]


S = TypeVar("S")


class SubscriptionIndex(Generic[S]):
    """Exact channel -> subscriptions, and wildcard prefix -> subscriptions. Insertion-ordered sets (dicts)."""

    def __init__(self) -> None:
        self.exact: dict[str, dict[S, None]] = {}
        self.prefixed: dict[tuple[str, ...], dict[S, None]] = {}

    def add(self, channel: ChannelPath, sub: S) -> bool:
        """Add; True when this is the first subscription for that exact channel or wildcard prefix."""
        if channel.is_wildcard:
            bucket = self.prefixed.setdefault(wildcard_prefix(channel), {})
        else:
            bucket = self.exact.setdefault(channel.path, {})
        bucket[sub] = None
        return len(bucket) == 1

    def remove(self, channel: ChannelPath, sub: S) -> bool:
        """Remove; True when that exact channel or wildcard prefix has no subscription left."""
        if channel.is_wildcard:
            key: object = wildcard_prefix(channel)
            table: dict = self.prefixed
        else:
            key, table = channel.path, self.exact
        bucket = table.get(key)
        if bucket is None or sub not in bucket:
            return False
        del bucket[sub]
        if not bucket:
            del table[key]
            return True
        return False

    def match(self, channel: ChannelPath) -> list[S]:
        """Every subscription that wants events published to this concrete channel."""
        out: list[S] = []
        bucket = self.exact.get(channel.path)
        if bucket:
            out.extend(bucket)
        if self.prefixed:
            segs = channel.segments
            for n in range(1, len(segs)):
                bucket = self.prefixed.get(segs[:n])
                if bucket:
                    out.extend(bucket)
        return out

    def count_exact(self, path: str) -> int:
        bucket = self.exact.get(path)
        return len(bucket) if bucket else 0

    def exact_counts(self) -> dict[str, int]:
        return {path: len(b) for path, b in self.exact.items()}
