"""used login tokens: one-time login links any replica accepts once

Revision 0009 (after 0008), written 2026-12-02 15:02:14.937369; never edit it once released."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table('used_login_tokens',
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('nonce')
    )


def downgrade() -> None:
    op.drop_table('used_login_tokens')
