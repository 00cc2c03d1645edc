"""The store layout, schema unification across files, and atomic publication."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openseg.engines.duckdb import DuckDBEngine, DuckDBWorkspace, memory_bytes
from openseg.profiles import (
    MergePolicySpec,
    SchemaConflictError,
    StoreNotFoundError,
    build_profile_store,
    get_profile,
    read_manifest,
    read_schema,
    resolve_store,
)
from openseg.profiles.sources import IDENTITY_MAP_TYPE, IDENTITY_TYPE

from .conftest import ENGINE, Lake, ids, read_rows


def _event(event_id: str, when: datetime, *pairs: tuple[str, str], **extra: object) -> dict[str, object]:
    return {"_id": event_id, "timestamp": when, "eventType": "web", "identityMap": ids(*pairs), **extra}


def test_the_store_has_exactly_the_documented_files_and_columns(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "person": {"name": {"firstName": "Ann"}}}])
    lake.add(
        "event",
        [_event("e1", datetime(2024, 1, 2), ("email", "a@x"), web={"page": "home"})],
        dataset="ds-web",
        ingest=datetime(2024, 1, 3),
    )
    store, _ = lake.build()
    assert sorted(os.listdir(resolve_store(store))) == [
        "_state",
        "events.parquet",
        "identities.arrow",
        "identities.parquet",
        "manifest.json",
        "profiles.arrow",
        "profiles.parquet",
        "schema.json",
    ]
    # The files looked up by key have their decoded copies: the same rows, a record batch per row group.
    for name in ("identities", "profiles"):
        copy = pa.ipc.open_file(pa.memory_map(str(resolve_store(store) / f"{name}.arrow")))
        parquet_file = pq.ParquetFile(resolve_store(store) / f"{name}.parquet")
        assert copy.num_record_batches == parquet_file.metadata.num_row_groups
        assert copy.read_all().to_pylist() == parquet_file.read().to_pylist()
    schema = pq.read_schema(resolve_store(store) / "profiles.parquet")
    identity_type = schema.field("identityMap").type
    assert pa.types.is_map(identity_type) and identity_type.key_type == pa.string()
    assert identity_type.item_type.value_type == IDENTITY_TYPE
    assert schema.remove(schema.get_field_index("identityMap")) == pa.schema(
        [
            ("_profile_id", pa.string()),
            ("person", pa.struct([("name", pa.struct([("firstName", pa.string())]))])),
            ("_sources", pa.list_(pa.field("element", pa.string()))),
            ("_lastModifiedAt", pa.timestamp("us")),
            ("_hasProfileRecord", pa.bool_()),
            ("_primaryNamespace", pa.string()),
        ]
    )
    events = read_rows(resolve_store(store) / "events.parquet")
    assert events == [
        {
            "_profile_id": "email:a@x",
            "_id": "e1",
            "timestamp": datetime(2024, 1, 2),
            "eventType": "web",
            "identityMap": {"email": [{"id": "a@x", "primary": False}]},
            "web": {"page": "home"},
            "_ingestTime": datetime(2024, 1, 3),
        }
    ]
    assert read_rows(resolve_store(store) / "identities.parquet") == [{"namespace": "email", "id": "a@x", "_profile_id": "email:a@x"}]
    # Internal to the builder: the record id of each event row (file 1 of the ingest order, row 0).
    assert os.listdir(resolve_store(store) / "_state") == ["event_rids.parquet"]
    assert read_rows(resolve_store(store) / "_state" / "event_rids.parquet") == [{"__rid": 1 << 32}]


def test_events_are_sorted_by_profile_then_time_and_event_only_profiles_exist(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "b@x")), "x": 1}])
    lake.add(
        "event",
        [
            _event("late", datetime(2024, 3, 1), ("email", "b@x")),
            _event("anon", datetime(2024, 1, 1), ("ECID", "77")),
            _event("early", datetime(2024, 1, 1), ("email", "b@x")),
        ],
        dataset="ds-web",
        ingest=datetime(2024, 4, 1),
    )
    store, stats = lake.build()
    assert [(e["_profile_id"], e["_id"]) for e in read_rows(resolve_store(store) / "events.parquet")] == [
        ("ecid:77", "anon"),
        ("email:b@x", "early"),
        ("email:b@x", "late"),
    ]
    profiles = read_rows(resolve_store(store) / "profiles.parquet")
    assert [
        (p["_profile_id"], p["x"], p["_hasProfileRecord"], p["_sources"], p["_lastModifiedAt"]) for p in profiles
    ] == [
        ("ecid:77", None, False, [], datetime(2024, 4, 1)),
        ("email:b@x", 1, True, ["ds-crm"], datetime(2024, 1, 1)),
    ]
    assert (stats.profiles, stats.event_only_profiles, stats.events, stats.fragments) == (2, 1, 3, 1)


def test_files_with_different_compatible_schemas_are_unified(lake: Lake) -> None:
    lake.add(
        "profile",
        [{"identityMap": ids(("email", "a@x")), "loyalty": {"points": 10}}],
        ingest=datetime(2024, 1, 1),
    )
    lake.add(
        "profile",
        [
            {
                "identityMap": ids(("email", "b@x")),
                "loyalty": {"points": 2.5, "tier": "gold"},
                "person": {"gender": "female"},
            }
        ],
        ingest=datetime(2024, 1, 2),
    )
    store, _ = lake.build()
    schema = read_schema(store)["profile"]
    assert schema.field("loyalty").type == pa.struct([("points", pa.float64()), ("tier", pa.string())])
    assert schema.field("person").type == pa.struct([("gender", pa.string())])
    first = get_profile(store, "email", "a@x", engine=ENGINE)
    assert first is not None and first["loyalty"] == {"points": 10.0} and "person" not in first


def test_incompatible_schemas_are_reported(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "age": 3}])
    lake.add("profile", [{"identityMap": ids(("email", "b@x")), "age": [1, 2]}])
    with pytest.raises(SchemaConflictError, match=r"^profile sources have incompatible schemas: "):
        lake.build()


def test_identity_maps_inferred_as_structs_are_read_as_maps(lake: Lake) -> None:
    lake.add(
        "profile",
        [
            {"identityMap": {"email": [{"id": "a@x", "primary": True}], "ECID": None}, "n": 1},
            {"identityMap": {"email": None, "ECID": [{"id": 5, "authenticatedState": "ambiguous"}]}, "n": 2},
        ],
        identity_as="struct",
    )
    lake.add(
        "event",
        [{"_id": "e1", "timestamp": "2024-01-01T10:00:00+02:00", "identityMap": {"ECID": [{"id": "5"}]}}],
        identity_as="struct",
    )
    store, stats = lake.build()
    assert (stats.profiles, stats.identities) == (2, 2)
    ecid = get_profile(store, "ecid", "5", engine=ENGINE)
    assert ecid is not None and ecid["n"] == 2
    assert ecid["identityMap"] == {"ECID": [{"id": "5", "primary": False}]}
    (event,) = read_rows(resolve_store(store) / "events.parquet")
    # A text timestamp with an offset is converted to UTC.
    assert (event["_profile_id"], event["timestamp"]) == ("ecid:5", datetime(2024, 1, 1, 8, 0))
    assert event["identityMap"] == {"ECID": [{"id": "5", "primary": None}]}


def test_time_zones_and_text_last_updated_dates_are_read_as_utc(lake: Lake) -> None:
    aware = pa.schema(
        [
            ("identityMap", IDENTITY_MAP_TYPE),
            ("c", pa.string()),
            ("extSourceSystemAudit", pa.struct([("lastUpdatedDate", pa.string())])),
        ]
    )
    lake.add(
        "profile",
        [
            {
                "identityMap": [("email", [{"id": "a@x", "primary": True}])],
                "c": "late",
                "extSourceSystemAudit": {"lastUpdatedDate": "2024-05-01T03:00:00+05:00"},
            }
        ],
        schema=aware,
    )
    lake.add(
        "profile",
        [
            {
                "identityMap": [("email", [{"id": "a@x", "primary": True}])],
                "c": "early",
                "extSourceSystemAudit": {"lastUpdatedDate": "2024-04-30T23:00:00Z"},
            }
        ],
        schema=aware,
    )
    zoned = pa.schema(
        [
            ("_id", pa.string()),
            ("timestamp", pa.timestamp("ms", tz="America/New_York")),
            ("identityMap", IDENTITY_MAP_TYPE),
        ]
    )
    lake.add(
        "event",
        [
            {
                "_id": "e",
                "timestamp": datetime(2024, 1, 1, 12, tzinfo=UTC),
                "identityMap": [("email", [{"id": "a@x", "primary": True}])],
            }
        ],
        schema=zoned,
    )
    store, _ = lake.build()
    profile = get_profile(store, "email", "a@x", engine=ENGINE)
    assert profile is not None
    # 03:00+05:00 is 22:00Z the day before, so the Z-dated fragment is the newer one.
    assert profile["c"] == "early"
    assert profile["extSourceSystemAudit"] == {"lastUpdatedDate": datetime(2024, 4, 30, 23, 0)}
    assert read_rows(resolve_store(store) / "events.parquet")[0]["timestamp"] == datetime(2024, 1, 1, 12, 0)


def test_schema_json_round_trips_the_written_schemas(lake: Lake) -> None:
    lake.add(
        "profile",
        [
            {
                "identityMap": ids(("email", "a@x")),
                "tags": ["a"],
                "score": 1.5,
                "born": datetime(1990, 1, 1).date(),
            }
        ],
    )
    lake.add(
        "event",
        [_event("e1", datetime(2024, 1, 1), ("email", "a@x"), productListItems=[{"SKU": "s", "quantity": 2}])],
    )
    store, _ = lake.build()
    schemas = read_schema(store)
    assert schemas["profile"] == pq.read_schema(resolve_store(store) / "profiles.parquet").remove_metadata()
    assert schemas["event"] == pq.read_schema(resolve_store(store) / "events.parquet").remove_metadata()
    document = json.loads((resolve_store(store) / "schema.json").read_text())
    assert {"name": "score", "type": "double"} in document["profile"]


def test_a_rebuild_swaps_the_store_atomically_and_keeps_the_previous_build(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "v": 1}])
    store, _ = lake.build()
    first = resolve_store(store)
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "v": 2}], ingest=datetime(2024, 2, 1))
    lake.build()
    second = resolve_store(store)
    # The store path is a pointer file naming the build (no symbolic link, no directory renamed into place).
    assert store.is_file() and not store.is_symlink() and first != second
    assert json.loads(store.read_text()) == {"build": f".store.builds/{second.name}"}
    # A reader that resolved the old build before the swap still reads a complete store.
    assert [r["v"] for r in read_rows(first / "profiles.parquet")] == [1]
    assert [r["v"] for r in read_rows(second / "profiles.parquet")] == [2]
    lake.build()
    builds = sorted(p.name for p in (store.parent / ".store.builds").iterdir())
    assert len(builds) == 2 and first.name not in builds


def test_a_failed_build_leaves_the_published_store_untouched(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "v": 1}])
    store, _ = lake.build()
    before = resolve_store(store)
    lake.add("profile", [{"identityMap": ids(("email", "b@x")), "v": "text"}])
    with pytest.raises(SchemaConflictError):
        lake.build()
    assert resolve_store(store) == before
    assert [p.name for p in (store.parent / ".store.builds").iterdir()] == [before.name]


def test_a_store_an_older_openseg_published_as_a_link_is_read_and_then_replaced_by_a_pointer(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "v": 1}])
    store, _ = lake.build()
    first = resolve_store(store)
    store.unlink()
    os.symlink(os.path.relpath(first, store.parent), store, target_is_directory=True)  # as openseg published before
    assert resolve_store(store) == first
    assert [r["v"] for r in read_rows(resolve_store(store) / "profiles.parquet")] == [1]
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "v": 2}], ingest=datetime(2024, 2, 1))
    lake.build()
    assert store.is_file() and not store.is_symlink()
    assert [r["v"] for r in read_rows(resolve_store(store) / "profiles.parquet")] == [2]


def test_a_pointer_openseg_did_not_write_is_no_store(tmp_path: Path) -> None:
    (tmp_path / "store").write_text("not a pointer")
    with pytest.raises(StoreNotFoundError, match="is not one openseg wrote"):
        resolve_store(tmp_path / "store")


def test_reading_a_store_never_built_raises(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError):
        resolve_store(tmp_path / "nothing")


def test_an_empty_lake_builds_an_empty_store(tmp_path: Path) -> None:
    stats = build_profile_store([], MergePolicySpec("mp"), tmp_path / "store", engine=ENGINE)
    assert (stats.profiles, stats.events, stats.fragments) == (0, 0, 0)
    assert read_rows(resolve_store(tmp_path / "store") / "profiles.parquet") == []
    assert pq.read_schema(resolve_store(tmp_path / "store") / "events.parquet").names == [
        "_profile_id",
        "_id",
        "timestamp",
        "eventType",
        "identityMap",
        "_ingestTime",
    ]


def test_the_manifest_records_policy_sources_and_stats(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a@x"))}], ingest=datetime(2024, 1, 1, 5))
    store, stats = lake.build(MergePolicySpec("mp-x", version=4))
    manifest = read_manifest(store)
    assert manifest["policy"] == {
        "id": "mp-x",
        "identityGraph": "pdg",
        "attributeMerge": "timestampOrdered",
        "datasetOrder": [],
        "version": 4,
    }
    assert [(s["datasetId"], s["ingestTime"], s["kind"]) for s in manifest["sources"]] == [
        ("ds-crm", "2024-01-01T05:00:00Z", "profile")
    ]
    assert manifest["stats"] == stats.to_dict()


def test_fields_named_like_sql_lambda_parameters_are_plain_attributes(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a@x")), "e": 1, "v": {"id": "x"}, "i": [1], "key": "k"}])
    lake.add("event", [_event("e1", datetime(2024, 1, 1), ("email", "a@x"), e=2, v="w")])
    store, stats = lake.build(MergePolicySpec("mp-none", identity_graph="none"))
    profile = get_profile(store, "email", "a@x", engine=ENGINE)
    assert profile is not None
    assert (profile["e"], profile["v"], profile["i"], profile["key"]) == (1, {"id": "x"}, [1], "k")
    assert stats.events == 1


def test_fields_only_ever_null_are_typed_as_text_until_a_value_arrives(lake: Lake) -> None:
    only_nulls = pa.schema([("identityMap", IDENTITY_MAP_TYPE), ("x", pa.null()), ("s", pa.struct([("y", pa.null())]))])
    lake.add(
        "profile",
        [{"identityMap": [("email", [{"id": "a", "primary": True}])], "x": None, "s": {"y": None}}],
        schema=only_nulls,
    )
    store, _ = lake.build()
    assert read_schema(store)["profile"].field("s").type == pa.struct([("y", pa.string())])
    lake.add("profile", [{"identityMap": ids(("email", "b")), "x": 7}])
    store, _ = lake.build()
    assert read_schema(store)["profile"].field("x").type == pa.int64()
    profile = get_profile(store, "email", "b", engine=ENGINE)
    assert profile is not None and profile["x"] == 7


@pytest.mark.parametrize("policy", [
    MergePolicySpec("mp-pdg"),
    MergePolicySpec("mp-none", identity_graph="none"),
    MergePolicySpec("mp-precedence", attribute_merge="dataSetPrecedence", dataset_order=("ds-crm", "ds-web")),
], ids=["pdg", "none", "precedence"])
def test_a_build_merged_in_slices_writes_the_same_store(lake: Lake, monkeypatch: pytest.MonkeyPatch,
                                                       policy: MergePolicySpec) -> None:
    # 60 people; every third has a second fragment from another dataset that only an ECID links to the first.
    for dataset in ("ds-crm", "ds-web"):
        lake.add("profile", [
            {"identityMap": ids(("email", f"p{i}@x"), ("ECID", f"e{i}")) if dataset == "ds-crm" else ids(("ECID", f"e{i}")),
             "person": {"name": {"firstName": f"{dataset}-{i}"}}, "loyalty": {"points": i}}
            for i in range(60) if dataset == "ds-crm" or i % 3 == 0], dataset=dataset)
    lake.add("event", [_event(f"ev{i}", datetime(2024, 1, 1 + i % 20), ("ECID", f"e{i % 60}")) for i in range(150)])
    whole, _ = lake.build(policy, "whole")
    monkeypatch.setattr(DuckDBWorkspace, "slices", lambda self, rows: 7)
    sliced, _ = lake.build(policy, "sliced")
    for name in ("profiles.parquet", "identities.parquet", "events.parquet"):
        assert pq.read_table(resolve_store(sliced) / name).equals(pq.read_table(resolve_store(whole) / name)), name
    assert pq.read_metadata(resolve_store(sliced) / "profiles.parquet").num_rows == 60


def test_duckdb_cuts_a_merge_by_its_memory_limit() -> None:
    assert [memory_bytes(s) for s in ("2GB", "512MiB", "1.5 GB", "100kb", None, "80%")] == \
        [2_000_000_000, 512 * 2**20, 1_500_000_000, 100_000, None, None]
    with DuckDBEngine(memory_limit="2GB").workspace() as workspace:
        assert [workspace.slices(rows) for rows in (1_000, 1_000_000, 11_000_000)] == [1, 1, 6]
    with DuckDBEngine().workspace() as workspace:
        assert workspace.slices(11_000_000) == 1
