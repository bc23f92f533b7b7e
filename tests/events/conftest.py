"""Fixtures for the events tests: an EventsService with test namespaces served by a real uvicorn on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from playcast.events.connection import EventsLimits
from playcast.events.namespaces import API_KEY, USER_TOKEN, NamespaceConfig
from playcast.events.service import EventsService
from tests.events.support import API_KEY as KEY
from tests.events.support import SECRET, Running, events_server


def make_service(limits: EventsLimits | None = None) -> EventsService:
    service = EventsService(KEY, secret=SECRET, limits=limits)
    service.define_namespace(NamespaceConfig("default", publish_auth_modes=frozenset({API_KEY}),
                                             subscribe_auth_modes=frozenset({API_KEY})))
    service.define_namespace(NamespaceConfig("open"))  # API key and user tokens
    service.define_namespace(NamespaceConfig("users", publish_auth_modes=frozenset({USER_TOKEN}),
                                             subscribe_auth_modes=frozenset({USER_TOKEN})))
    service.define_namespace(NamespaceConfig("short", history_size=3))
    return service


@pytest.fixture
async def server() -> AsyncIterator[Running]:
    async with events_server(make_service()) as running:
        yield running


@pytest.fixture(params=["fast", "asgi"])
async def any_server(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    """Both sender paths: frames onto uvicorn's transport, and plain ASGI send."""
    async with events_server(make_service(), fast=request.param == "fast") as running:
        yield running
