"""application content archives and session file exports

Revision 0007 (after 0006), written 2026-12-02 13:18:26;
never edit it once released."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('content_size', sa.BigInteger(), nullable=True))

    with op.batch_alter_table('stream_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('export_status', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('export_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('export_uri', sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column('log_uri', sa.String(length=1024), nullable=True))

def downgrade() -> None:
    with op.batch_alter_table('stream_sessions', schema=None) as batch_op:
        batch_op.drop_column('log_uri')
        batch_op.drop_column('export_uri')
        batch_op.drop_column('export_reason')
        batch_op.drop_column('export_status')

    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.drop_column('content_size')
        batch_op.drop_column('content_sha256')

