"""Tables of the fleet: host tokens (only a hash of each secret is kept).

Models only; control/host_tokens.py mints, checks and revokes."""

from __future__ import annotations

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from playcast.store.models import Base


class HostTokenRow(Base):
    __tablename__ = "host_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # ht-…, the part of a token that is shown
    secret_sha256: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
