"""batch counters: size, failed records, tags and Catalog's other batch fields

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 19:50:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('size', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('failed_records', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('tags', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('extra', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_column('extra')
        batch_op.drop_column('tags')
        batch_op.drop_column('failed_records')
        batch_op.drop_column('size')
