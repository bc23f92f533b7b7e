"""fleet metrics: paused warm slots per host, placements refused for want of a host slot

Revision 0006 (after 0005), written 2026-12-02 13:18:37.052557; never edit it once released."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table('placement_refusals',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('location', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('placement_refusals', schema=None) as batch_op:
        batch_op.create_index('ix_placement_refusals_at', ['at'], unique=False)

    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paused', sa.Integer(), nullable=False, server_default='0'))



def downgrade() -> None:
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_column('paused')

    with op.batch_alter_table('placement_refusals', schema=None) as batch_op:
        batch_op.drop_index('ix_placement_refusals_at')

    op.drop_table('placement_refusals')
