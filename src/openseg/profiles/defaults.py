"""The merge policy every sandbox has: found, or created on first need, through the merge-policy port."""

from __future__ import annotations

from openseg.clock import new_uuid, now_ms
from openseg.profiles.model import MergePolicy
from openseg.profiles.ports import MergePolicyRepository
from openseg.scope import Tenancy

__all__ = ["default_policy"]


def default_policy(policies: MergePolicyRepository, scope: Tenancy) -> MergePolicy:
    """The sandbox's default merge policy: pdg + timestampOrdered (contract.md), created on first need.

    It is added in the caller's unit of work: it exists once that commits.
    """
    existing = next((p for p in policies.in_sandbox(scope.sandbox_id) if p.is_default), None)
    if existing is not None:
        return existing
    policy = MergePolicy.default_for(scope.org_id, scope.sandbox_id, policy_id=new_uuid(), now=now_ms())
    policies.add(policy)
    return policy
