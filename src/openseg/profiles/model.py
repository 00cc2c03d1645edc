"""A merge policy and its profile store's record as the domain services see them: plain values, not database
rows (see ``scheduling/model.py`` for why). Fields are the ``merge_policies`` and ``profile_stores`` columns,
same names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openseg.profiles.merge_policy import MergePolicySpec

__all__ = ["PROFILE_SCHEMA_NAME", "MergePolicy", "ProfileStoreRecord"]

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

    def spec(self) -> MergePolicySpec:
        """The engine-side view of the policy (what a build merges by)."""
        order = tuple((self.attribute_merge.get("data") or {}).get("order") or ())
        return MergePolicySpec(id=self.id, identity_graph=self.identity_graph,  # type: ignore[arg-type]
                               attribute_merge=self.attribute_merge["type"],
                               dataset_order=order, version=self.version)


@dataclass(frozen=True)
class ProfileStoreRecord:
    """What the metadata store knows of one merge policy's profile store (the ``profile_stores`` columns).

    ``path`` is the store's directory once built, ``policy_version`` the policy version it was built for,
    ``built_at`` when its last build was published (ms since the epoch), ``stats`` that build's statistics,
    ``stream_watermark`` the highest stream log ``seq`` that build holds (the last of the streamed batches
    recorded when it read its sources: messages above it are laid over it, ``profiles/overlay.py``).
    ``membership_path`` and ``membership_job_id`` are the membership the segment jobs last published.
    """

    merge_policy_id: str
    sandbox_id: str
    path: str | None = None
    policy_version: int = 0
    built_at: int | None = None
    stats: dict[str, Any] = field(default_factory=dict, hash=False)
    membership_path: str | None = None
    membership_job_id: str | None = None
    stream_watermark: int = 0
