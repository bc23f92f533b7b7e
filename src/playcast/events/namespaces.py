"""Channel namespaces: which auth modes may publish and subscribe, and how much history each keeps.

Configuration values only; the checks that use them live in auth.py and service.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from playcast.bus.history import HistoryPolicy

from .channels import valid_namespace_name

API_KEY = "API_KEY"
USER_TOKEN = "USER_TOKEN"
SERVER = "SERVER"  # in-process publishes (EventsService.publish); never refused by auth modes
AUTH_MODES = frozenset({API_KEY, USER_TOKEN})


def _modes(value: frozenset[str] | set[str] | list[str] | tuple[str, ...]) -> frozenset[str]:
    modes = frozenset(value)
    unknown = modes - AUTH_MODES
    if unknown:
        raise ValueError(f"unknown auth modes {sorted(unknown)}; use {sorted(AUTH_MODES)}")
    return modes


@dataclass(frozen=True)
class NamespaceConfig:
    """One namespace (the first segment of a channel path).

    publish/subscribe_auth_modes: which of API_KEY / USER_TOKEN may do it (a user token also needs the
    namespace's `pub`/`sub` right). history_size: events kept per channel for recovery (0 = none);
    history_ttl_s: how long they are kept after the last publish; the channel's (epoch, offset) position lives
    for position_ttl_s so that recovery can tell "nothing missed" from "history gone"."""

    name: str
    publish_auth_modes: frozenset[str] = AUTH_MODES
    subscribe_auth_modes: frozenset[str] = AUTH_MODES
    history_size: int = 100
    history_ttl_s: float = 600.0
    position_ttl_s: float = 7 * 24 * 3600.0
    extra: dict[str, object] = field(default_factory=dict, compare=False)  # free-form, for handlers

    def __post_init__(self) -> None:
        if not valid_namespace_name(self.name):
            raise ValueError(f"invalid namespace name {self.name!r}: 1-50 letters, digits or inner dashes")
        object.__setattr__(self, "publish_auth_modes", _modes(self.publish_auth_modes))
        object.__setattr__(self, "subscribe_auth_modes", _modes(self.subscribe_auth_modes))
        if self.history_size < 0 or self.history_size > 100_000:
            raise ValueError("history_size must be between 0 and 100000")
        if self.history_ttl_s <= 0 or self.position_ttl_s < self.history_ttl_s:
            raise ValueError("history_ttl_s must be > 0 and position_ttl_s >= history_ttl_s")


def history_policy(config: NamespaceConfig) -> HistoryPolicy:
    """How the bus records the events of a channel in this namespace."""
    return HistoryPolicy(config.history_size, config.history_ttl_s, config.position_ttl_s)
