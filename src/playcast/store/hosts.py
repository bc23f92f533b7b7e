"""Tables of the fleet: host tokens (only a hash of each secret is kept), hosts as last heard from, replicas.

Models only; control/host_tokens.py and control/fleet_directory.py read and write them."""

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
    warm_launches: Mapped[list[str]] = mapped_column(JSON, default=list)  # launch keys of its idle warm slots
    # the stream group of each idle warm slot, one entry per slot (per-group IdleCapacity in LocationStates)
    warm_groups: Mapped[list[str] | None] = mapped_column(JSON, nullable=True, default=list)
    sessions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # session id -> state (codec wire form)
    status: Mapped[str] = mapped_column(String(16))  # ONLINE | DRAINING | OFFLINE
    replica_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # whose socket it is on
    version: Mapped[str] = mapped_column(String(64), default="")
    encoder: Mapped[str] = mapped_column(String(64), default="")
    public_address: Mapped[str | None] = mapped_column(String(256), nullable=True)
    joined_at: Mapped[float] = mapped_column(Float)
    heartbeat_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_hosts_location", "location", "status"),)


class ReplicaRow(Base):
    """A running `playcast server` replica; its heartbeat says it still holds its hosts' connections."""

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[float] = mapped_column(Float)
    heartbeat_at: Mapped[float] = mapped_column(Float)
