"""A merge policy as the domain services see it: a plain value, not a database row (see ``scheduling/model.py``
for why). Fields are the ``merge_policies`` columns, same names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PROFILE_SCHEMA_NAME", "MergePolicy"]

PROFILE_SCHEMA_NAME = "_xdm.context.profile"


@dataclass(frozen=True)
class MergePolicy:
    """One UPS merge policy (``/config/mergePolicies``): how fragments are stitched and merged."""

    id: str
    org_id: str
    sandbox_id: str
    name: str
    schema_name: str
    identity_graph: str
    attribute_merge: dict[str, Any] = field(hash=False)
    is_default: bool
    is_active_on_edge: bool
    version: int
    created: int
    updated: int

    @classmethod
    def default_for(cls, org_id: str, sandbox_id: str, *, policy_id: str, now: int) -> MergePolicy:
        """The policy a sandbox has before any is created: pdg + timestampOrdered (contract.md)."""
        return cls(id=policy_id, org_id=org_id, sandbox_id=sandbox_id, name="Default timestamp-ordered",
                   schema_name=PROFILE_SCHEMA_NAME, identity_graph="pdg", attribute_merge={"type": "timestampOrdered"},
                   is_default=True, is_active_on_edge=False, version=1, created=now, updated=now)
