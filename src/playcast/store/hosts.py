"""Tables of the fleet: host tokens (only a hash of each secret is kept), hosts as last heard from, replicas, and
placements refused for want of a host slot (the capacity signal's recent refusals).

Models only; control/host_tokens.py, control/fleet_directory.py and control/placement_stats.py read and write them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from playcast.store.models import Base


class HostTokenRow(Base):
    __tablename__ = "host_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # ht-…, the part of a token that is shown
    secret_sha256: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class HostRow(Base):
    """A host as the whole control plane sees it: written by the replica that holds its connection, from its
    hello and heartbeats; read by every replica (placement, capacity, /v1/hosts)."""

    __tablename__ = "hosts"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    location: Mapped[str] = mapped_column(String(128))
    slots: Mapped[int] = mapped_column(Integer, default=0)
    busy: Mapped[int] = mapped_column(Integer, default=0)
    warm: Mapped[int] = mapped_column(Integer, default=0)
    paused: Mapped[int] = mapped_column(Integer, default=0)  # of the warm slots, those whose game is paused
    warm_launches: Mapped[list[str]] = mapped_column(JSON, default=list)  # launch keys of its idle warm slots
    # the stream group of each idle warm slot, one entry per slot (per-group IdleCapacity in LocationStates)
    warm_groups: Mapped[list[str] | None] = mapped_column(JSON, nullable=True, default=list)
    sessions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # session id -> state (codec wire form)
    status: Mapped[str] = mapped_column(String(16))  # ONLINE | DRAINING | OFFLINE
    replica_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # whose socket it is on
    version: Mapped[str] = mapped_column(String(64), default="")
    encoder: Mapped[str] = mapped_column(String(64), default="")
    public_address: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # SHA-256 of the host key it first joined with: its id is its own (another machine cannot take the id over)
    key_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # its LL-HLS endpoint and the key to present there (hostproto/media_endpoint.py): any replica's origin relays
    media_url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    media_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    joined_at: Mapped[float] = mapped_column(Float)
    heartbeat_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_hosts_location", "location", "status"),)


class ReplicaRow(Base):
    """A running `playcast server` replica; its heartbeat says it still holds its hosts' connections."""

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[float] = mapped_column(Float)
    heartbeat_at: Mapped[float] = mapped_column(Float)


class PlacementRefusalRow(Base):
    """A session refused because no host slot was to be had in `location` (no host there, or every slot busy):
    recent ones are demand the fleet did not meet, read by every replica for the capacity signal."""

    __tablename__ = "placement_refusals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    location: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(32))  # no_capacity | no_host
    at: Mapped[float] = mapped_column(Float)  # unix time

    __table_args__ = (Index("ix_placement_refusals_at", "at"),)
