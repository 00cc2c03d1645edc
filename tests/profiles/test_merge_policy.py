"""Merge policy specifications: validation and round trip."""

from __future__ import annotations

import pytest

from openseg.profiles import MergePolicyError, MergePolicySpec


def test_defaults_are_the_sandbox_default_policy() -> None:
    policy = MergePolicySpec("mp1")
    assert (policy.identity_graph, policy.attribute_merge, policy.dataset_order, policy.version) == (
        "pdg",
        "timestampOrdered",
        (),
        1,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": ""}, "id: must be a non-empty string"),
        ({"identity_graph": "private"}, "identityGraph.type: 'private' is not one of ['none', 'pdg']"),
        (
            {"attribute_merge": "newest"},
            "attributeMerge.type: 'newest' is not one of ['timestampOrdered', 'dataSetPrecedence']",
        ),
        (
            {"attribute_merge": "dataSetPrecedence"},
            "attributeMerge.data.order: required for dataSetPrecedence",
        ),
        ({"dataset_order": ("a",)}, "attributeMerge.data.order: only allowed with dataSetPrecedence"),
        (
            {"attribute_merge": "dataSetPrecedence", "dataset_order": ("a", "a")},
            "attributeMerge.data.order: a dataset id is listed twice",
        ),
        (
            {"attribute_merge": "dataSetPrecedence", "dataset_order": ["a"]},
            "attributeMerge.data.order: must be a tuple of dataset ids",
        ),
        ({"version": 0}, "version: must be a positive integer"),
        ({"version": True}, "version: must be a positive integer"),
    ],
)
def test_invalid_specs_are_rejected_naming_the_field(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"id": "mp1", **kwargs}
    with pytest.raises(MergePolicyError) as error:
        MergePolicySpec(**arguments)  # type: ignore[arg-type]
    assert str(error.value) == message


def test_round_trips_through_a_dict() -> None:
    policy = MergePolicySpec("mp2", "none", "dataSetPrecedence", ("ds-a", "ds-b"), 3)
    assert policy.to_dict() == {
        "id": "mp2",
        "identityGraph": "none",
        "attributeMerge": "dataSetPrecedence",
        "datasetOrder": ["ds-a", "ds-b"],
        "version": 3,
    }
    assert MergePolicySpec.from_dict(policy.to_dict()) == policy


def test_from_dict_names_a_missing_field() -> None:
    with pytest.raises(MergePolicyError, match=r"^identityGraph: required$"):
        MergePolicySpec.from_dict({"id": "mp", "attributeMerge": "timestampOrdered"})
