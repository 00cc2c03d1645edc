"""metadata generation: one counter every commit that changes lasting metadata raises

Processes keep what requests read of the metadata (definitions, datasets, datastreams, merge policies,
profile store records) while the counter stays where it was when they read it (``Database.generation``).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 21:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        'metadata_generation',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column('value', sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(table, [{'id': 1, 'value': 0}])


def downgrade() -> None:
    op.drop_table('metadata_generation')
