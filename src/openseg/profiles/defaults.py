"""The merge policy every sandbox has: created with the sandbox (``store.tenancy.create_sandbox``), found here."""

from __future__ import annotations

from openseg.clock import new_uuid, now_ms
from openseg.profiles.model import MergePolicy
from openseg.profiles.ports import MergePolicyRepository
from openseg.scope import Tenancy

__all__ = ["default_policy"]


def default_policy(policies: MergePolicyRepository, scope: Tenancy) -> MergePolicy:
    """The sandbox's default merge policy: pdg + timestampOrdered (contract.md).

    Every sandbox is created with it; one found without (none should be) gets it in the caller's unit of work.
    """
    existing = next((p for p in policies.in_sandbox(scope.sandbox_id) if p.is_default), None)
    if existing is not None:
        return existing
    policy = MergePolicy.default_for(scope.org_id, scope.sandbox_id, policy_id=new_uuid(), now=now_ms())
    policies.add(policy)
    return policy
