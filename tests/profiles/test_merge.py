"""Attribute merge under timestampOrdered and dataSetPrecedence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from openseg.profiles import MergePolicySpec, get_profile

from .conftest import ENGINE, Lake, ids

JAN, FEB, MAR = datetime(2024, 1, 1), datetime(2024, 2, 1), datetime(2024, 3, 1)


def _fragment(country: str | None, updated: datetime | None = None, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "identityMap": ids(("email", "a@x")),
        "homeAddress": {"country": country},
        **extra,
    }
    if updated is not None:
        record["extSourceSystemAudit"] = {"lastUpdatedDate": updated}
    return record


def _merged(lake: Lake, policy: MergePolicySpec | None = None) -> dict[str, Any]:
    store, _ = lake.build(policy)
    profile = get_profile(store, "email", "a@x", engine=ENGINE)
    assert profile is not None
    return profile


def test_timestamp_ordered_takes_the_latest_last_updated_date(lake: Lake) -> None:
    # The CRM file lands last but its record was updated first.
    lake.add("profile", [_fragment("FR", updated=FEB)], dataset="ds-web", ingest=JAN)
    lake.add("profile", [_fragment("US", updated=JAN)], dataset="ds-crm", ingest=MAR)
    assert _merged(lake)["homeAddress"] == {"country": "FR"}


def test_timestamp_ordered_falls_back_to_ingest_time(lake: Lake) -> None:
    lake.add("profile", [_fragment("US")], dataset="ds-crm", ingest=MAR)
    lake.add("profile", [_fragment("FR")], dataset="ds-web", ingest=FEB)
    profile = _merged(lake)
    assert profile["homeAddress"] == {"country": "US"}
    assert (profile["_sources"], profile["_lastModifiedAt"]) == (["ds-crm", "ds-web"], MAR)


def test_dataset_precedence_wins_whatever_the_time(lake: Lake) -> None:
    lake.add("profile", [_fragment("US", updated=JAN)], dataset="ds-crm", ingest=JAN)
    lake.add("profile", [_fragment("FR", updated=MAR)], dataset="ds-web", ingest=MAR)
    policy = MergePolicySpec("mp-dsp", attribute_merge="dataSetPrecedence", dataset_order=("ds-crm", "ds-web"))
    assert _merged(lake, policy)["homeAddress"] == {"country": "US"}
    assert _merged(lake)["homeAddress"] == {"country": "FR"}


def test_unlisted_datasets_rank_after_listed_ones_then_by_time(lake: Lake) -> None:
    lake.add("profile", [_fragment("US", tier="a")], dataset="ds-crm", ingest=JAN)
    lake.add("profile", [_fragment("FR", tier="b")], dataset="ds-other", ingest=MAR)
    lake.add("profile", [_fragment("DE", tier="c")], dataset="ds-third", ingest=FEB)
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "tier": "d"}], dataset="ds-crm", ingest=FEB)
    policy = MergePolicySpec("mp-dsp", attribute_merge="dataSetPrecedence", dataset_order=("ds-crm",))
    profile = _merged(lake, policy)
    # ds-crm's newest non-null value of each attribute wins; its null country does not override.
    assert (profile["homeAddress"], profile["tier"]) == ({"country": "US"}, "d")
    lake.add("profile", [_fragment("JP", tier=None)], dataset="ds-crm", ingest=datetime(2024, 4, 1))
    assert _merged(lake, policy)["homeAddress"] == {"country": "JP"}


def test_nulls_never_override_values(lake: Lake) -> None:
    lake.add("profile", [_fragment("US", person={"name": {"firstName": "Ann", "lastName": "Lee"}})], ingest=JAN)
    lake.add("profile", [_fragment(None, person={"name": {"firstName": None, "lastName": "Ng"}})], ingest=FEB)
    profile = _merged(lake)
    assert profile["homeAddress"] == {"country": "US"}
    assert profile["person"] == {"name": {"firstName": "Ann", "lastName": "Ng"}}


def test_attributes_merge_leaf_by_leaf_from_different_fragments(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "homeAddress": {"city": "Paris"}}], ingest=JAN)
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "homeAddress": {"country": "FR"}}], ingest=FEB)
    assert _merged(lake)["homeAddress"] == {"city": "Paris", "country": "FR"}


def test_arrays_are_one_attribute(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "interests": ["ski", "golf", "chess"]}], ingest=JAN)
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "interests": ["tennis"]}], ingest=FEB)
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "interests": None}], ingest=MAR)
    assert _merged(lake)["interests"] == ["tennis"]


def test_a_struct_no_fragment_fills_stays_absent(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "loyalty": None}])
    lake.add("profile", [{"identityMap": ids(("email", "b@x")), "loyalty": {"tier": "gold"}}])
    profile = _merged(lake)
    assert "loyalty" not in profile


def test_identity_maps_are_the_union_of_all_fragments(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a@x"), ("phone", "1"), primary="a@x")}], ingest=JAN)
    lake.add("profile", [{"identityMap": ids(("phone", "1"), ("phone", "2"))}], ingest=FEB)
    assert _merged(lake)["identityMap"] == {
        "email": [{"id": "a@x", "primary": True}],
        "phone": [{"id": "1", "primary": False}, {"id": "2", "primary": False}],
    }


def test_identity_graph_none_lookup_merges_with_the_same_rules(lake: Lake) -> None:
    lake.add("profile", [_fragment("US", updated=FEB)], dataset="ds-crm", ingest=JAN)
    lake.add(
        "profile",
        [
            {
                "identityMap": ids(("email", "a@x"), ("ECID", "9"), primary="9"),
                "homeAddress": {"country": "FR"},
                "extSourceSystemAudit": {"lastUpdatedDate": MAR},
            }
        ],
        dataset="ds-web",
        ingest=JAN,
    )
    none_ts = MergePolicySpec("mp-none", identity_graph="none")
    assert _merged(lake, none_ts)["homeAddress"] == {"country": "FR"}
    none_dsp = MergePolicySpec(
        "mp-none-dsp", identity_graph="none", attribute_merge="dataSetPrecedence", dataset_order=("ds-crm",)
    )
    assert _merged(lake, none_dsp)["homeAddress"] == {"country": "US"}
