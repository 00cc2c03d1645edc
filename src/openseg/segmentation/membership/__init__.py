"""Segment membership: the membership store is its one owner (layout in ``layout.py``).

Jobs diff and publish through :class:`MembershipDiffer`; every reader and the per-profile write path
go through :class:`MembershipStore`; ``rule.transition`` is the one rule both follow.
"""

from __future__ import annotations

from pathlib import Path

from openseg.segmentation.membership.changes import LogPosition
from openseg.segmentation.membership.differ import (
    QUALIFIED,
    MembershipDiffer,
    StagedMembership,
    qualified_from_columns,
)
from openseg.segmentation.membership.encode import LONG_FORM_SCHEMA, import_long_form, relation_from_long_form
from openseg.segmentation.membership.layout import State
from openseg.segmentation.membership.rule import IN_STATUSES, PairState, Transition, transition
from openseg.segmentation.membership.store import BitsRelation, MembershipStore, write_atomically


def store_for(home: Path, sandbox_id: str, policy_id: str) -> MembershipStore:
    """The membership store of a (sandbox, merge policy) under ``home``."""
    return MembershipStore(home / "membership" / sandbox_id / policy_id)


def all_stores(home: Path) -> list[MembershipStore]:
    """Every membership store under ``home``, one per (sandbox, merge policy) that has one."""
    root = home / "membership"
    return [MembershipStore(path) for path in sorted(root.glob("*/*")) if path.is_dir()]


def publish(staged: StagedMembership) -> None:
    """Move a job's staged files to their places, the state manifest last."""
    for staged_file in staged.files():
        staged_file.publish()


__all__ = [
    "IN_STATUSES",
    "LONG_FORM_SCHEMA",
    "QUALIFIED",
    "BitsRelation",
    "LogPosition",
    "MembershipDiffer",
    "MembershipStore",
    "PairState",
    "StagedMembership",
    "State",
    "Transition",
    "all_stores",
    "import_long_form",
    "publish",
    "qualified_from_columns",
    "relation_from_long_form",
    "store_for",
    "transition",
    "write_atomically",
]
