"""segment definitions keep AEP's payloadSchema

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 19:40:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('segment_definitions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload_schema', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('segment_definitions', schema=None) as batch_op:
        batch_op.drop_column('payload_schema')
