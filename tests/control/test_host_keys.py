"""A host id is bound to the key it first joined with, in the database (control/fleet_directory.py): after a
restart of the control plane (a new Fleet on the same database) another machine still cannot take the id over,
while the machine that owns it rejoins; removing the host frees the id."""

from __future__ import annotations

import asyncio
from pathlib import Path

from playcast.control.fleet import Fleet
from playcast.control.fleet_directory import FleetDirectory
from playcast.hostproto import codec
from playcast.hostproto.channel import MemoryChannel
from playcast.hostproto.messages import Hello, Refused, Welcome
from playcast.store.db import open_database


async def _allow(_hello: Hello) -> str | None:
    return None


async def _hello(fleet: Fleet, key: str | None) -> tuple[MemoryChannel, object]:
    host_end, server_end = MemoryChannel.pair()
    asyncio.ensure_future(fleet.serve(server_end))
    await host_end.send(codec.encode(Hello("h-1", "t", "loc-a", 1, "test", "libx264", host_key=key)))
    return host_end, codec.decode_server(await asyncio.wait_for(host_end.recv(), 10))


async def test_the_binding_outlives_a_restart_and_ends_with_removal(tmp_path: Path) -> None:
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    try:
        first = Fleet(_allow)
        await first.attach(FleetDirectory(db, first.replica_id))
        channel, answer = await _hello(first, "machine-1")
        assert isinstance(answer, Welcome)
        await channel.close()
        await first.close()

        again = Fleet(_allow)  # the control plane restarted: nothing in memory
        await again.attach(FleetDirectory(db, again.replica_id))
        channel, answer = await _hello(again, "machine-2")
        assert isinstance(answer, Refused) and "belongs to another machine" in answer.reason
        await channel.close()
        channel, answer = await _hello(again, "machine-1")
        assert isinstance(answer, Welcome)
        await again.wait_for_host("h-1", 10)
        await again.remove("h-1")  # an operator removes it: the id is free
        await channel.close()
        channel, answer = await _hello(again, "machine-2")
        assert isinstance(answer, Welcome), answer
        await channel.close()
        await again.close()
    finally:
        await db.close()
