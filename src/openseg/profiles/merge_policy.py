"""Merge policies: how profile fragments become one merged profile.

A merge policy has two independent choices, mirroring AEP's UPS merge policy resource
(``identityGraph.type`` and ``attributeMerge.type``); see ``shared/spec/contract.md``,
"Decisions where AEP leaves room", for the exact semantics openseg implements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

IdentityGraphType = Literal["none", "pdg"]
AttributeMergeType = Literal["timestampOrdered", "dataSetPrecedence"]

IDENTITY_GRAPH_TYPES: tuple[str, ...] = get_args(IdentityGraphType)
ATTRIBUTE_MERGE_TYPES: tuple[str, ...] = get_args(AttributeMergeType)


class MergePolicyError(ValueError):
    """A merge policy specification is invalid; the message names the offending field."""


@dataclass(frozen=True)
class MergePolicySpec:
    """The engine-side view of a merge policy.

    Attributes:
        id: The merge policy id (also the store directory name).
        identity_graph: ``"pdg"`` stitches fragments transitively through shared identities;
            ``"none"`` keys each profile by one identity (see ``openseg.profiles.identity``).
        attribute_merge: ``"timestampOrdered"`` or ``"dataSetPrecedence"``.
        dataset_order: Dataset ids, highest precedence first (``attributeMerge.data.order``).
            Required and non-empty for ``dataSetPrecedence``; must be empty otherwise, because
            AEP ignores nothing silently and neither do we.
        version: The policy version the store was built with.
    """

    id: str
    identity_graph: IdentityGraphType = "pdg"
    attribute_merge: AttributeMergeType = "timestampOrdered"
    dataset_order: tuple[str, ...] = ()
    version: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise MergePolicyError("id: must be a non-empty string")
        if self.identity_graph not in IDENTITY_GRAPH_TYPES:
            raise MergePolicyError(
                f"identityGraph.type: {self.identity_graph!r} is not one of {list(IDENTITY_GRAPH_TYPES)}"
            )
        if self.attribute_merge not in ATTRIBUTE_MERGE_TYPES:
            raise MergePolicyError(
                f"attributeMerge.type: {self.attribute_merge!r} is not one of {list(ATTRIBUTE_MERGE_TYPES)}"
            )
        if not isinstance(self.dataset_order, tuple):
            raise MergePolicyError("attributeMerge.data.order: must be a tuple of dataset ids")
        for dataset_id in self.dataset_order:
            if not isinstance(dataset_id, str) or not dataset_id:
                raise MergePolicyError("attributeMerge.data.order: every entry must be a non-empty string")
        if len(set(self.dataset_order)) != len(self.dataset_order):
            raise MergePolicyError("attributeMerge.data.order: a dataset id is listed twice")
        if self.attribute_merge == "dataSetPrecedence" and not self.dataset_order:
            raise MergePolicyError("attributeMerge.data.order: required for dataSetPrecedence")
        if self.attribute_merge == "timestampOrdered" and self.dataset_order:
            raise MergePolicyError("attributeMerge.data.order: only allowed with dataSetPrecedence")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise MergePolicyError("version: must be a positive integer")

    def to_dict(self) -> dict[str, object]:
        """The policy as a JSON-ready dict (used in the store manifest)."""
        return {
            "id": self.id,
            "identityGraph": self.identity_graph,
            "attributeMerge": self.attribute_merge,
            "datasetOrder": list(self.dataset_order),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> MergePolicySpec:
        """Inverse of :meth:`to_dict`.

        Raises:
            MergePolicyError: If a field is missing or invalid.
        """
        try:
            order = data.get("datasetOrder", [])
            if not isinstance(order, list):
                raise MergePolicyError("attributeMerge.data.order: must be a list")
            return cls(
                id=data["id"],  # type: ignore[arg-type]
                identity_graph=data["identityGraph"],  # type: ignore[arg-type]
                attribute_merge=data["attributeMerge"],  # type: ignore[arg-type]
                dataset_order=tuple(order),
                version=data.get("version", 1),  # type: ignore[arg-type]
            )
        except KeyError as missing:
            raise MergePolicyError(f"{missing.args[0]}: required") from None
