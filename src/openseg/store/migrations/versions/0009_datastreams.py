"""datastreams: the Edge Network's configuration of /ee/v2 (a sandbox, an events dataset, a merge policy)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 22:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('datastreams',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('org_id', sa.String(length=128), nullable=False),
    sa.Column('sandbox_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('dataset_id', sa.String(length=32), nullable=False),
    sa.Column('merge_policy_id', sa.String(length=36), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('updated', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['sandbox_id'], ['sandboxes.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('datastreams', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_datastreams_sandbox_id'), ['sandbox_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('datastreams', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_datastreams_sandbox_id'))
    op.drop_table('datastreams')
