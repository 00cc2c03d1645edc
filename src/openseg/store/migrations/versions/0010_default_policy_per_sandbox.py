"""default merge policy per sandbox: every sandbox gets its default at creation now; give one to each that has none

Sandboxes used to get their default merge policy on first need, which two concurrent first needs could
each create. New sandboxes are created with it (store/tenancy.py); this adds it to older ones still without.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 23:30:00
"""
import time
import uuid

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

sandboxes = sa.table('sandboxes', sa.column('id', sa.String), sa.column('org_id', sa.String))
merge_policies = sa.table(
    'merge_policies', sa.column('id', sa.String), sa.column('org_id', sa.String), sa.column('sandbox_id', sa.String),
    sa.column('name', sa.String), sa.column('schema_name', sa.String), sa.column('identity_graph', sa.String),
    sa.column('attribute_merge', sa.JSON), sa.column('is_default', sa.Boolean), sa.column('is_active_on_edge', sa.Boolean),
    sa.column('version', sa.Integer), sa.column('created', sa.BigInteger), sa.column('updated', sa.BigInteger))


def upgrade() -> None:
    bind = op.get_bind()
    with_default = sa.select(merge_policies.c.sandbox_id).where(merge_policies.c.is_default == sa.true())
    missing = bind.execute(sa.select(sandboxes.c.id, sandboxes.c.org_id).where(sandboxes.c.id.not_in(with_default))).all()
    now = time.time_ns() // 1_000_000
    # The values of profiles.model.MergePolicy.default_for (pdg + timestampOrdered), as of this revision.
    rows = [{"id": str(uuid.uuid4()), "org_id": org_id, "sandbox_id": sandbox_id, "name": "Default timestamp-ordered",
             "schema_name": "_xdm.context.profile", "identity_graph": "pdg", "attribute_merge": {"type": "timestampOrdered"},
             "is_default": True, "is_active_on_edge": False, "version": 1, "created": now, "updated": now}
            for sandbox_id, org_id in missing]
    if rows:
        op.bulk_insert(merge_policies, rows)


def downgrade() -> None:
    pass  # the policies added are ordinary defaults, which a sandbox would have been given on first need anyway
