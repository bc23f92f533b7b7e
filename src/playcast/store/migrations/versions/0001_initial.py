"""The whole schema as it stood when migrations began (what models.py, broadcasts.py and chat.py declared then).

Revision 0001, the first; a frozen copy written from autogenerate's output against an empty database: never edit it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Columns that playcast added to existing tables before it had migrations (ALTER TABLE … ADD COLUMN, nullable, so
# rows from before hold NULL): a database from then has those NULLs replaced by these values (the models' defaults)
# and the columns made NOT NULL, as this revision declares them. See store/legacy.py.
LEGACY_FILL: dict[tuple[str, str], Any] = {
    ("stream_sessions", "offer_digests"): [],
    ("broadcasts", "publish_token"): "",
}


def schema() -> sa.MetaData:
    """The tables and indexes of this revision, on a MetaData of their own."""
    m = sa.MetaData()
    sa.Table(
        "applications", m,
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("arn", sa.String(length=256), nullable=False),
        sa.Column("description", sa.String(length=80), nullable=False),
        sa.Column("runtime_type", sa.String(length=16), nullable=False),
        sa.Column("runtime_version", sa.String(length=256), nullable=False),
        sa.Column("executable_path", sa.String(length=1024), nullable=False),
        sa.Column("source_uri", sa.String(length=1024), nullable=False),
        sa.Column("log_paths", sa.JSON(), nullable=False),
        sa.Column("log_output_uri", sa.String(length=1024), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=32), nullable=True),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("content_dir", sa.String(length=1024), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("arn"),
        sa.Index("ix_applications_created", "created_at", "id"),
    )
    sa.Table(
        "broadcasts", m,
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("stream_session_id", sa.String(length=32), nullable=False),
        sa.Column("stream_group_id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("viewer_token", sa.String(length=128), nullable=False),
        sa.Column("publish_token", sa.String(length=128), nullable=False),
        sa.Column("hls", sa.Boolean(), nullable=False),
        sa.Column("record", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("end_reason", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.Index("ix_broadcasts_session", "stream_session_id", "status"),
    )
    sa.Table(
        "chat_bans", m,
        sa.Column("room_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("banned_by", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("room_id", "user_id"),
    )
    sa.Table(
        "chat_entries", m,
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("room_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("sender_id", sa.String(length=128), nullable=True),
        sa.Column("sender_name", sa.String(length=128), nullable=True),
        sa.Column("sender_role", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("target_id", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("deleted_at", sa.Float(), nullable=True),
        sa.Column("deleted_by", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.Index("ix_chat_entries_room_time", "room_id", "created_at", "id"),
    )
    sa.Table(
        "group_applications", m,
        sa.Column("stream_group_id", sa.String(length=32), nullable=False),
        sa.Column("application_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("stream_group_id", "application_id"),
        sa.Index("ix_group_applications_application_id", "application_id"),
    )
    sa.Table(
        "idempotency", m,
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("client_token", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("operation", "client_token"),
    )
    sa.Table(
        "server_secrets", m,
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    sa.Table(
        "stream_groups", m,
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("arn", sa.String(length=256), nullable=False),
        sa.Column("description", sa.String(length=80), nullable=False),
        sa.Column("stream_class", sa.String(length=32), nullable=False),
        sa.Column("default_application_id", sa.String(length=32), nullable=True),
        sa.Column("locations", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("status_reason", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("arn"),
        sa.Index("ix_stream_groups_created", "created_at", "id"),
    )
    sa.Table(
        "stream_sessions", m,
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("arn", sa.String(length=256), nullable=False),
        sa.Column("stream_group_id", sa.String(length=32), nullable=False),
        sa.Column("application_id", sa.String(length=32), nullable=False),
        sa.Column("application_arn", sa.String(length=256), nullable=False),
        sa.Column("description", sa.String(length=80), nullable=True),
        sa.Column("user_id", sa.String(length=1024), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_reason", sa.String(length=48), nullable=True),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("location", sa.String(length=32), nullable=True),
        sa.Column("requested_locations", sa.JSON(), nullable=False),
        sa.Column("signal_request", sa.Text(), nullable=False),
        sa.Column("signal_response", sa.Text(), nullable=True),
        sa.Column("offer_digests", sa.JSON(), nullable=False),
        sa.Column("connection_timeout_s", sa.Integer(), nullable=False),
        sa.Column("session_length_s", sa.Integer(), nullable=False),
        sa.Column("launch_args", sa.JSON(), nullable=False),
        sa.Column("launch_env", sa.JSON(), nullable=False),
        sa.Column("perf_stats_shared", sa.Boolean(), nullable=False),
        sa.Column("host_id", sa.String(length=128), nullable=True),
        sa.Column("slot_id", sa.String(length=128), nullable=True),
        sa.Column("warm", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("deadline_at", sa.Float(), nullable=True),
        sa.Column("connected_at", sa.Float(), nullable=True),
        sa.Column("last_input_at", sa.Float(), nullable=True),
        sa.Column("application_started_at", sa.Float(), nullable=True),
        sa.Column("streaming_started_at", sa.Float(), nullable=True),
        sa.Column("streaming_ended_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("arn"),
        sa.Index("ix_stream_sessions_created", "created_at", "id"),
        sa.Index("ix_stream_sessions_group", "stream_group_id", "created_at", "id"),
        sa.Index("ix_stream_sessions_status", "status"),
        sa.Index("ix_stream_sessions_user", "user_id"),
    )
    sa.Table(
        "tags", m,
        sa.Column("resource_arn", sa.String(length=256), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("resource_arn", "key"),
    )
    return m


def upgrade() -> None:
    schema().create_all(op.get_bind(), checkfirst=False)


def downgrade() -> None:
    schema().drop_all(op.get_bind(), checkfirst=False)
