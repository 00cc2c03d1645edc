"""streaming connections and stream offsets

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 19:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('streaming_connections',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('org_id', sa.String(length=128), nullable=False),
    sa.Column('sandbox_id', sa.String(length=36), nullable=False),
    sa.Column('inlet_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('dataset_id', sa.String(length=32), nullable=False),
    sa.Column('source_id', sa.String(length=512), nullable=False),
    sa.Column('data_type', sa.String(length=16), nullable=False),
    sa.Column('authentication_required', sa.Boolean(), nullable=False),
    sa.Column('etag', sa.String(length=64), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('updated', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['sandbox_id'], ['sandboxes.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('inlet_id')
    )
    with op.batch_alter_table('streaming_connections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_streaming_connections_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_streaming_connections_sandbox_id'), ['sandbox_id'], unique=False)
    op.create_table('stream_offsets',
    sa.Column('consumer', sa.String(length=128), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('updated', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('consumer')
    )


def downgrade() -> None:
    op.drop_table('stream_offsets')
    with op.batch_alter_table('streaming_connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_streaming_connections_sandbox_id'))
        batch_op.drop_index(batch_op.f('ix_streaming_connections_org_id'))
    op.drop_table('streaming_connections')
