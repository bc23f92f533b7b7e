"""hosts: media_url and media_key (a host's LL-HLS endpoint, relayed by any replica)

Revision 0005 (after 0004), written 2026-12-02 13:36:23.660761; never edit it once released."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('media_url', sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column('media_key', sa.String(length=256), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_column('media_key')
        batch_op.drop_column('media_url')

