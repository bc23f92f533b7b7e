"""Table of broadcasts: one stream session shown to viewers (WHEP, LL-HLS), with its access token and options.

Model only; queries live in control/broadcasts.py."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base


class BroadcastRow(Base):
    __tablename__ = "broadcasts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    stream_session_id: Mapped[str] = mapped_column(String(32))
    stream_group_id: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(128))  # user id of who started it ("admin" for the admin token)
    status: Mapped[str] = mapped_column(String(16))  # LIVE | ENDED
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    viewer_token: Mapped[str] = mapped_column(String(128))
    publish_token: Mapped[str] = mapped_column(String(128), default="")  # WHIP ingest into this broadcast's stage
    hls: Mapped[bool] = mapped_column(Boolean, default=True)
    record: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_broadcasts_session", "stream_session_id", "status"),)
