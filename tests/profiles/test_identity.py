"""Identity stitching: connected components, the none rule and the 50-identity guardrail."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from openseg.engines.graph import connected_components
from openseg.profiles import (
    MergePolicySpec,
    OversizedGraph,
    get_events,
    get_profile,
    resolve_profile_id,
    resolve_store,
)
from openseg.profiles.identity import split_oversized

from .conftest import ENGINE, Lake, ids, read_rows


def test_components_are_labelled_by_their_smallest_node() -> None:
    # 0-3-5 chain given out of order, 1-4, 2 alone, 6-7 via two edges.
    left = np.array([5, 3, 4, 7, 6], dtype=np.int64)
    right = np.array([3, 0, 1, 6, 7], dtype=np.int64)
    assert connected_components(8, left, right).tolist() == [0, 1, 2, 0, 1, 0, 6, 6]


def test_components_of_a_long_chain_need_no_recursion() -> None:
    nodes = 100_000
    order = np.random.default_rng(1).permutation(nodes - 1)
    left = np.arange(1, nodes, dtype=np.int64)[order]
    assert set(connected_components(nodes, left, left - 1).tolist()) == {0}


def test_split_refuses_links_past_fifty_identities_in_ingest_order() -> None:
    # Records link identity i (anchor) to hub 0; identities 1..51 in order.
    split = split_oversized(list(range(1, 52)), [[0, i] for i in range(1, 52)])
    assert {node for node, root in split.items() if root == 0} == set(range(50))
    assert split[50] == 50 and split[51] == 51


def test_fragments_and_events_sharing_identities_form_one_profile(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a@x"), primary="a@x")}])
    lake.add("profile", [{"identityMap": ids(("email", "a@x"), ("ECID", "1"), primary="1")}])
    lake.add(
        "event",
        [
            {
                "_id": "e1",
                "timestamp": datetime(2024, 1, 5),
                "eventType": "web",
                "identityMap": ids(("ECID", "1")),
            }
        ],
        dataset="ds-web",
    )
    store, stats = lake.build()
    assert (stats.profiles, stats.fragments, stats.events, stats.identities) == (1, 2, 1, 2)
    assert resolve_profile_id(store, "email", "a@x", engine=ENGINE) == resolve_profile_id(store, "ecid", "1", engine=ENGINE) == "ecid:1"
    profile = get_profile(store, "Email", "a@x", engine=ENGINE)
    assert profile is not None
    assert profile["identityMap"] == {
        "ECID": [{"id": "1", "primary": True}],
        "email": [{"id": "a@x", "primary": True}],
    }
    assert [e["_id"] for e in get_events(store, "ecid:1", engine=ENGINE)] == ["e1"]
    assert read_rows(resolve_store(store) / "identities.parquet") == [
        {"namespace": "ECID", "id": "1", "_profile_id": "ecid:1"},
        {"namespace": "email", "id": "a@x", "_profile_id": "ecid:1"},
    ]


def test_stitching_is_transitive_through_events(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a@x"))}, {"identityMap": ids(("crm", "c9"))}])
    lake.add(
        "event",
        [
            {
                "_id": "e1",
                "timestamp": datetime(2024, 1, 5),
                "identityMap": ids(("email", "a@x"), ("crm", "c9")),
            }
        ],
    )
    store, stats = lake.build()
    assert stats.profiles == 1
    assert resolve_profile_id(store, "crm", "c9", engine=ENGINE) == resolve_profile_id(store, "email", "a@x", engine=ENGINE) == "crm:c9"


def test_namespaces_compare_case_insensitively_and_ids_exactly(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("Email", "a@x"), ("crm", "1"))}])
    lake.add("profile", [{"identityMap": ids(("email", "a@x"))}, {"identityMap": ids(("email", "A@x"))}])
    store, stats = lake.build()
    assert stats.profiles == 2
    assert resolve_profile_id(store, "EMAIL", "a@x", engine=ENGINE) == "crm:1"
    assert resolve_profile_id(store, "email", "A@x", engine=ENGINE) == "email:A@x"
    profile = get_profile(store, "email", "a@x", engine=ENGINE)
    assert profile is not None
    # One display spelling per namespace: the smallest of those seen.
    assert profile["identityMap"] == {
        "Email": [{"id": "a@x", "primary": False}],
        "crm": [{"id": "1", "primary": False}],
    }


def test_identity_graph_none_keys_profiles_by_primary_identity(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a@x"), primary="a@x"), "loyalty": {"tier": "gold"}}])
    lake.add(
        "profile",
        [{"identityMap": ids(("email", "a@x"), ("ECID", "1"), primary="1"), "person": {"gender": "female"}}],
    )
    lake.add(
        "event",
        [{"_id": "e1", "timestamp": datetime(2024, 1, 5), "identityMap": ids(("ECID", "1"), primary="1")}],
    )
    store, stats = lake.build(MergePolicySpec("mp-none", identity_graph="none"))
    # For segmentation each fragment and event is in the profile of its primary identity.
    assert stats.profiles == 2
    assert [(r["_profile_id"], r["_hasProfileRecord"]) for r in read_rows(resolve_store(store) / "profiles.parquet")] == [
        ("ecid:1", True),
        ("email:a@x", True),
    ]
    assert [e["_profile_id"] for e in read_rows(resolve_store(store) / "events.parquet")] == ["ecid:1"]
    # An identity keying a profile maps to that profile only.
    assert read_rows(resolve_store(store) / "identities.parquet") == [
        {"namespace": "ECID", "id": "1", "_profile_id": "ecid:1"},
        {"namespace": "email", "id": "a@x", "_profile_id": "email:a@x"},
    ]
    # A lookup merges the fragments carrying exactly the identity asked for.
    by_email = get_profile(store, "email", "a@x", engine=ENGINE)
    assert by_email is not None
    assert (by_email["loyalty"], by_email["person"]) == ({"tier": "gold"}, {"gender": "female"})
    by_ecid = get_profile(store, "ECID", "1", engine=ENGINE)
    assert by_ecid is not None
    assert "loyalty" not in by_ecid and by_ecid["person"] == {"gender": "female"}
    assert resolve_profile_id(store, "ecid", "1", engine=ENGINE) == "ecid:1"
    assert [e["_id"] for e in get_events(store, "ecid:1", engine=ENGINE)] == ["e1"]


def test_a_record_without_a_primary_identity_is_anchored_by_its_smallest_key(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("phone", "555"), ("email", "z@x"))}])
    store, _ = lake.build(MergePolicySpec("mp-none", identity_graph="none"))
    assert [r["_profile_id"] for r in read_rows(resolve_store(store) / "profiles.parquet")] == ["email:z@x"]


def test_graphs_over_fifty_identities_are_split_and_reported(lake: Lake) -> None:
    # 51 fragments, each linking its own email to one shared device id, in ingest order.
    start = datetime(2024, 1, 1)
    for i in range(1, 52):
        lake.add(
            "profile",
            [{"identityMap": ids(("email", f"u{i:02d}@x"), ("ECID", "hub"), primary=f"u{i:02d}@x")}],
            ingest=start + timedelta(minutes=i),
        )
    store, stats = lake.build()
    all_identities = (("ECID", "hub"), *(("email", f"u{i:02d}@x") for i in range(1, 52)))
    assert stats.oversized_graphs == (
        OversizedGraph(identities=all_identities, profile_ids=("ecid:hub", "email:u50@x", "email:u51@x")),
    )
    assert stats.profiles == 3
    hub = get_profile(store, "ECID", "hub", engine=ENGINE)
    assert hub is not None and len([i for items in hub["identityMap"].values() for i in items]) == 50
    assert resolve_profile_id(store, "email", "u49@x", engine=ENGINE) == "ecid:hub"
    assert resolve_profile_id(store, "email", "u50@x", engine=ENGINE) == "email:u50@x"
    # Nothing is dropped: every fragment is in some profile.
    assert sum(len(r["_sources"]) > 0 for r in read_rows(resolve_store(store) / "profiles.parquet")) == 3
    manifest_graphs = (resolve_store(lake.root / "profiles" / "store") / "manifest.json").read_text()
    assert '"email:u51@x"' in manifest_graphs


def test_records_without_identities_are_counted_not_linked(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "x": 1}, {"identityMap": None, "x": 2}])
    lake.add("event", [{"_id": "e1", "timestamp": datetime(2024, 1, 1), "identityMap": {}}])
    _, stats = lake.build()
    assert (stats.profiles, stats.unlinked_fragments, stats.events, stats.unlinked_events) == (1, 1, 0, 1)


def test_the_anchor_is_the_smallest_primary_key_when_several_are_primary(lake: Lake) -> None:
    lake.add(
        "profile",
        [
            {
                "identityMap": {
                    "phone": [{"id": "9", "primary": True}],
                    "email": [{"id": "z", "primary": True}],
                    "crm": [{"id": "a", "primary": None}],
                }
            },
            {
                "identityMap": {
                    "crm": [{"id": "b", "primary": False}, {"id": "", "primary": True}],
                    "": [{"id": "q", "primary": True}],
                }
            },
        ],
    )
    store, stats = lake.build(MergePolicySpec("mp-none", identity_graph="none"))
    assert [r["_profile_id"] for r in read_rows(resolve_store(store) / "profiles.parquet")] == ["crm:b", "email:z"]
    # Empty ids and empty namespaces are not identities.
    assert stats.identities == 4
