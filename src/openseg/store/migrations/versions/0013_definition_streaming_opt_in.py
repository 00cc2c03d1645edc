"""segment definitions may opt in to streaming beyond AEP's streamable shapes (``openseg:streamingOptIn``)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 15:10:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('segment_definitions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('streaming_opt_in', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('segment_definitions', schema=None) as batch_op:
        batch_op.drop_column('streaming_opt_in')
