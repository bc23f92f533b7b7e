"""SQLAlchemy 2 table models for the control plane's state (SQLite or PostgreSQL).

Only portable column types (String, Text, Integer, Float, Boolean, JSON); timestamps are unix seconds (Float)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ApplicationRow(Base):
    __tablename__ = "applications"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str] = mapped_column(String(80))
    runtime_type: Mapped[str] = mapped_column(String(16))
    runtime_version: Mapped[str] = mapped_column(String(256))
    executable_path: Mapped[str] = mapped_column(String(1024))
    source_uri: Mapped[str] = mapped_column(String(1024))
    log_paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    log_output_uri: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status_message: Mapped[str | None] = mapped_column(Text, nullable=True)  # our detail, not in the AWS shape
    content_dir: Mapped[str] = mapped_column(String(1024))
    # the content as one archive in the server's content storage (control/content.py), once ingested
    content_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    content_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_applications_created", "created_at", "id"),)


class StreamGroupRow(Base):
    __tablename__ = "stream_groups"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str] = mapped_column(String(80))
    stream_class: Mapped[str] = mapped_column(String(32))
    default_application_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # [{"LocationName", "Status", "AlwaysOnCapacity", "OnDemandCapacity", "TargetIdleCapacity", "MaximumCapacity"}]
    locations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(24))
    status_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_stream_groups_created", "created_at", "id"),)


class AssociationRow(Base):
    __tablename__ = "group_applications"

    stream_group_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    application_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    created_at: Mapped[float] = mapped_column(Float)


class StreamSessionRow(Base):
    __tablename__ = "stream_sessions"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256), unique=True)
    stream_group_id: Mapped[str] = mapped_column(String(32))
    application_id: Mapped[str] = mapped_column(String(32))
    application_arn: Mapped[str] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(String(80), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str | None] = mapped_column(String(48), nullable=True)
    status_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    protocol: Mapped[str] = mapped_column(String(16))
    location: Mapped[str | None] = mapped_column(String(32), nullable=True)
    requested_locations: Mapped[list[str]] = mapped_column(JSON, default=list)
    signal_request: Mapped[str] = mapped_column(Text)
    signal_response: Mapped[str | None] = mapped_column(Text, nullable=True)
    offer_digests: Mapped[list[str]] = mapped_column(JSON, default=list)  # sha256 of every offer used so far
    connection_timeout_s: Mapped[int] = mapped_column(Integer)
    session_length_s: Mapped[int] = mapped_column(Integer)
    launch_args: Mapped[list[str]] = mapped_column(JSON, default=list)
    launch_env: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    perf_stats_shared: Mapped[bool] = mapped_column(Boolean, default=False)
    host_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    slot_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    warm: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)  # created_at + SessionLengthSeconds
    deadline_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # connection/reconnection timeout
    connected_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_input_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    application_started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    streaming_started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    streaming_ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # the last ExportStreamSessionFiles (GetStreamSession's ExportFilesMetadata): PENDING|SUCCEEDED|FAILED, why, where
    export_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    export_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    export_uri: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    # where ApplicationLogPaths were written when the session ended (GetStreamSession's LogFileLocationUri)
    log_uri: Mapped[str | None] = mapped_column(String(1024), nullable=True)

    __table_args__ = (
        Index("ix_stream_sessions_group", "stream_group_id", "created_at", "id"),
        Index("ix_stream_sessions_created", "created_at", "id"),
        Index("ix_stream_sessions_status", "status"),
        Index("ix_stream_sessions_user", "user_id"),
    )


class TagRow(Base):
    __tablename__ = "tags"

    resource_arn: Mapped[str] = mapped_column(String(256), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class IdempotencyRow(Base):
    __tablename__ = "idempotency"

    operation: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_token: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class UsedLoginTokenRow(Base):
    """A one-time login token that was used (control/login_tokens.py), kept until it would have expired."""

    __tablename__ = "used_login_tokens"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float)


class SecretRow(Base):
    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
