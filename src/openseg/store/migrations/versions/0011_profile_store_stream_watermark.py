"""profile store stream watermark: the highest stream log seq a build holds, fixed when the build reads its sources

It used to be derived from the build's publication time (the streamed batches completed by then), which also
counted a batch flushed while the build ran and that the build never read. Existing builds get that derived
value, the best this revision can know of them; the next build records its own.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 07:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

#: ``streaming.model.STREAM_SEQ`` as of this revision.
STREAM_SEQ = 'openseg:streamSeq'

profile_stores = sa.table('profile_stores', sa.column('merge_policy_id', sa.String), sa.column('sandbox_id', sa.String),
                          sa.column('built_at', sa.BigInteger), sa.column('stream_watermark', sa.BigInteger))
batches = sa.table('batches', sa.column('sandbox_id', sa.String), sa.column('origin', sa.String),
                   sa.column('completed', sa.BigInteger), sa.column('input_format', sa.JSON))


def upgrade() -> None:
    with op.batch_alter_table('profile_stores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stream_watermark', sa.BigInteger(), server_default='0', nullable=False))
    bind = op.get_bind()
    stores = bind.execute(sa.select(profile_stores.c.merge_policy_id, profile_stores.c.sandbox_id,
                                    profile_stores.c.built_at).where(profile_stores.c.built_at.is_not(None))).all()
    for policy_id, sandbox_id, built_at in stores:
        formats = bind.execute(sa.select(batches.c.input_format).where(
            batches.c.sandbox_id == sandbox_id, batches.c.origin == 'streaming',
            batches.c.completed <= built_at)).scalars()
        watermark = max((int(f[STREAM_SEQ]['last']) for f in formats if f and STREAM_SEQ in f), default=0)
        if watermark:
            bind.execute(profile_stores.update().where(profile_stores.c.merge_policy_id == policy_id)
                         .values(stream_watermark=watermark))


def downgrade() -> None:
    with op.batch_alter_table('profile_stores', schema=None) as batch_op:
        batch_op.drop_column('stream_watermark')
