"""The build is statements in an engine's workspace: another engine builds the same store.

``SingleQueryEngine`` only runs one query at a time (``Engine._execute``), so its workspace is the generic
``ArrowWorkspace``: every relation comes back as Arrow, files are written from fetched results, and connected
components run as rounds of statements (``engines.graph.label_components``), as on Spark, instead of DuckDB's
in-process numpy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlglot import exp

from openseg.engines.base import Engine, TableSource
from openseg.engines.duckdb import DuckDBEngine, DuckDBWorkspace
from openseg.engines.graph import connected_components
from openseg.profiles import MergePolicySpec, build_profile_store, read_manifest
from openseg.profiles.refresh import refresh_profile_store
from openseg.profiles.store import EVENT_RIDS_FILE, resolve_store, schema_to_json

from .conftest import ENGINE, Lake, ids, read_rows


class SingleQueryEngine(Engine):
    """Runs each query alone on a fresh DuckDB connection; nothing of DuckDBWorkspace."""

    name = "single-query"
    dialect = "duckdb"

    def _execute(self, sql: str, tables: Mapping[str, TableSource]) -> pa.Table:
        return DuckDBEngine(threads=1)._execute(sql, tables)


STORE_FILES = ("profiles.parquet", "events.parquet", "identities.parquet", EVENT_RIDS_FILE)


def _stores(lake: Lake, policy: MergePolicySpec, other: Engine | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    built = []
    for name, engine in (("duckdb", ENGINE), ("other", other or SingleQueryEngine())):
        store = lake.root / "profiles" / f"{name}-{policy.id}"
        build_profile_store(lake.sources, policy, store, engine=engine)
        files = {file: read_rows(resolve_store(store) / file) for file in STORE_FILES}
        if policy.identity_graph == "none":
            files["fragments.parquet"] = read_rows(resolve_store(store) / "fragments.parquet")
        stats = read_manifest(store)["stats"]
        built.append({"files": files, "stats": {k: v for k, v in stats.items() if k != "seconds"}})
    return built[0], built[1]


def _chains_and_a_hub(lake: Lake) -> None:
    """A chain a-b-c-d over fragments and events (several rounds of labels), a pair, and a hub of 55
    identities (over the guardrail, split in ingest order)."""
    t0 = datetime(2024, 1, 1)
    lake.add("profile", [{"identityMap": ids(("email", "a"), ("ECID", "b"), primary="a"), "n": 1},
                         {"identityMap": ids(("email", "x"), ("phone", "y")), "n": 2}])
    lake.add("profile", [{"identityMap": ids(("ECID", "c"), ("phone", "d")), "n": 3}], ingest=t0 + timedelta(days=1))
    lake.add("event", [
        {"_id": "e1", "timestamp": t0, "eventType": "web", "identityMap": ids(("ECID", "b"), ("ECID", "c"))},
        {"_id": "e2", "timestamp": t0 + timedelta(hours=1), "eventType": "web", "identityMap": ids(("phone", "d"))},
        {"_id": "e3", "timestamp": None, "eventType": "web", "identityMap": ids(("phone", "y"))},
    ])
    lake.add("profile", [{"identityMap": ids(("hub", "0"), ("member", f"{i:02d}"), primary=f"{i:02d}"), "n": 10 + i}
                         for i in range(55)], ingest=t0 + timedelta(days=2))


@pytest.mark.parametrize("policy", [MergePolicySpec("mp"), MergePolicySpec("mp-none", identity_graph="none")],
                         ids=["pdg", "none"])
def test_a_single_query_engine_builds_the_store_duckdb_builds(lake: Lake, policy: MergePolicySpec) -> None:
    _chains_and_a_hub(lake)
    on_duckdb, elsewhere = _stores(lake, policy)
    assert elsewhere == on_duckdb
    if policy.identity_graph == "pdg":
        # a-b-c-d, x-y, and the hub with its first 49 members plus the 6 members refused after them.
        assert on_duckdb["stats"]["profiles"] == 1 + 1 + 1 + 6
        assert len(on_duckdb["stats"]["oversized_graphs"]) == 1


def _uneven_files(lake: Lake) -> None:
    """Files whose schemas differ: a struct missing a field and holding an int where another holds a double, a
    column of nulls only, identity maps inferred as structs with more fields, a text time with an offset."""
    t0 = datetime(2024, 2, 1)
    lake.add("profile", [{"identityMap": ids(("email", "u1")), "loyalty": {"points": 10}, "tags": None}], ingest=t0)
    lake.add("profile", [{"identityMap": ids(("email", "u1")), "loyalty": {"tier": "gold", "points": 2.5},
                          "tags": ["a", "b"]}], ingest=t0 + timedelta(hours=1))
    lake.add("profile", [{"identityMap": {"email": [{"id": "u2", "primary": True}], "ECID": None}},
                         {"identityMap": {"email": None, "ECID": [{"id": 5, "authenticatedState": "ambiguous"}]}}],
             identity_as="struct", ingest=t0 + timedelta(hours=2))
    lake.add("event", [{"_id": "u-e1", "timestamp": "2024-02-01T10:00:00+02:00", "eventType": "web",
                        "identityMap": {"ECID": [{"id": "5"}]}}], identity_as="struct", ingest=t0 + timedelta(hours=3))


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_spark_builds_the_store_duckdb_builds(lake: Lake) -> None:
    from openseg.engines.spark import SparkEngine

    _chains_and_a_hub(lake)
    _uneven_files(lake)
    for policy in (MergePolicySpec("mp"), MergePolicySpec("mp-none", identity_graph="none")):
        on_duckdb, on_spark = _stores(lake, policy, SparkEngine())
        # The same rows in the same order, and the same types (as schema.json writes them: Spark also marks some
        # columns and nested fields NOT NULL where it knows them to be).
        assert on_spark == on_duckdb, policy.id
        for file in STORE_FILES:
            on = {name: schema_to_json(pq.read_schema(resolve_store(lake.root / "profiles" / f"{name}-{policy.id}") / file))
                  for name in ("duckdb", "other")}
            assert on["other"] == on["duckdb"], file


class StructRankingEngine(DuckDBEngine):
    """DuckDB ranking the fragments it merges as Spark does: by a struct of the rank's terms, with no window
    over every fragment (``Workspace.global_windows`` False)."""

    def with_limits(self, memory_limit: str | None = None, spill: Path | None = None) -> DuckDBEngine:
        limited = super().with_limits(memory_limit, spill)
        return StructRankingEngine(threads=limited.threads, memory_limit=limited.memory_limit,
                                   temp_directory=limited.temp_directory,
                                   preserve_insertion_order=limited.preserve_insertion_order)

    @contextmanager
    def workspace(self) -> Iterator[DuckDBWorkspace]:
        with super().workspace() as workspace:
            workspace.global_windows = False
            yield workspace


def _competing_fragments(lake: Lake) -> None:
    """Fragments of one profile that disagree, from three datasets: updated at different times, at the same
    time, with no update time (the ingest time then), in one file and across files."""
    t0 = datetime(2024, 3, 1)
    person = ids(("email", "p"), ("ECID", "p-web"), primary="p")
    lake.add("profile", [{"identityMap": person, "tier": "crm-old", "points": 1,
                          "extSourceSystemAudit": {"lastUpdatedDate": t0}},
                         {"identityMap": person, "tier": "crm-new", "extSourceSystemAudit": {"lastUpdatedDate": t0}}],
             dataset="ds-crm", ingest=t0)
    lake.add("profile", [{"identityMap": ids(("ECID", "p-web")), "tier": "web", "points": 2}],
             dataset="ds-web", ingest=t0 - timedelta(days=1))
    lake.add("profile", [{"identityMap": person, "tier": None, "points": 3, "extSourceSystemAudit": {"lastUpdatedDate": None}},
                         {"identityMap": ids(("email", "q")), "tier": "other", "points": None,
                          "extSourceSystemAudit": None}],
             dataset="ds-third", ingest=t0 + timedelta(days=1))


@pytest.mark.parametrize("policy", [
    MergePolicySpec("mp"),
    MergePolicySpec("mp-dsp", attribute_merge="dataSetPrecedence", dataset_order=("ds-web", "ds-crm")),
    MergePolicySpec("mp-none", identity_graph="none"),
], ids=["timestampOrdered", "dataSetPrecedence", "none"])
def test_ranking_by_a_struct_merges_as_ranking_by_a_window(lake: Lake, policy: MergePolicySpec) -> None:
    _competing_fragments(lake)
    _chains_and_a_hub(lake)
    by_window, by_struct = _stores(lake, policy, StructRankingEngine())
    assert by_struct == by_window
    merged = {row["_profile_id"]: (row["tier"], row["points"]) for row in by_window["files"]["profiles.parquet"]}
    if policy.identity_graph == "none":  # the web fragment is a profile of its own
        assert (merged["email:p"], merged["ecid:p-web"]) == (("crm-new", 3), ("web", 2))
    elif policy.attribute_merge == "dataSetPrecedence":
        assert merged["ecid:p-web"] == ("web", 2)
    else:  # equal update times go to the later record of the file; no update time ranks by the later ingest
        assert merged["ecid:p-web"] == ("crm-new", 3)
    assert merged["email:q"] == ("other", None)


def test_labelling_in_statements_agrees_with_numpy() -> None:
    rng = np.random.default_rng(7)
    nodes = 300
    left = rng.integers(0, nodes, 220).astype(np.int64)
    right = rng.integers(0, nodes, 220).astype(np.int64)
    # A long chain too: labels must travel far.
    left = np.concatenate([left, np.arange(400, 480, dtype=np.int64)])
    right = np.concatenate([right, np.arange(401, 481, dtype=np.int64)])
    roots = connected_components(481, left, right)
    with SingleQueryEngine().workspace() as workspace:
        workspace.register("edges", pa.table({"a": left, "b": right}))
        workspace.components("labels", exp.select("a", "b").from_("edges"))
        labels = workspace.fetch(exp.select("node", "root").from_("labels").order_by("node")).to_pylist()
    on_edge = sorted(set(left.tolist()) | set(right.tolist()))
    assert labels == [{"node": node, "root": int(roots[node])} for node in on_edge]


def test_identity_maps_with_more_fields_per_identity_keep_id_and_primary(lake: Lake) -> None:
    rich = pa.map_(pa.string(), pa.list_(pa.struct([("authenticatedState", pa.string()), ("id", pa.string()),
                                                     ("primary", pa.bool_())])))
    lake.add("profile", [{"identityMap": [("email", [{"authenticatedState": "authenticated", "id": "a",
                                                      "primary": True}])]}],
             schema=pa.schema([("identityMap", rich)]))
    store, _ = lake.build()
    (profile,) = read_rows(resolve_store(store) / "profiles.parquet")
    assert profile["identityMap"] == {"email": [{"id": "a", "primary": True}]}
    assert pq.read_schema(resolve_store(store) / "profiles.parquet").field("identityMap").type.item_type.value_type.names == [
        "id", "primary"]


class RecordingEngine(DuckDBEngine):
    """DuckDB that records the settings of each workspace it opens."""

    def __init__(self, seen: list[dict[str, Any]], **settings: Any) -> None:
        super().__init__(**settings)
        self.seen = seen

    def with_limits(self, memory_limit: str | None = None, spill: Path | None = None) -> DuckDBEngine:
        limited = super().with_limits(memory_limit, spill)
        return RecordingEngine(self.seen, threads=limited.threads, memory_limit=limited.memory_limit,
                               temp_directory=limited.temp_directory,
                               preserve_insertion_order=limited.preserve_insertion_order)

    @contextmanager
    def workspace(self) -> Iterator[DuckDBWorkspace]:
        with super().workspace() as workspace:
            row = workspace.connection.execute(
                "SELECT current_setting('memory_limit'), current_setting('temp_directory'), "
                "current_setting('preserve_insertion_order')").fetchall()[0]
            self.seen.append({"memory_limit": row[0], "spill": row[1], "ordered": row[2]})
            yield workspace


def test_a_build_runs_within_its_memory_limit_and_spills_inside_the_build(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a"))}])
    seen: list[dict[str, Any]] = []
    build_profile_store(lake.sources, MergePolicySpec("mp"), lake.root / "store", engine=RecordingEngine(seen),
                        memory_limit="123MB")
    [settings] = seen
    assert settings["memory_limit"] == "117.3 MiB"  # DuckDB's spelling of 123 MB
    assert Path(settings["spill"]).name == "_spill" and Path(settings["spill"]).parent.parent.name == ".store.builds"
    assert settings["ordered"] is False
    assert not list((lake.root / ".store.builds").glob("*/_spill"))


def test_an_engine_outside_this_process_refreshes_with_full_builds(lake: Lake) -> None:
    lake.add("profile", [{"identityMap": ids(("email", "a"))}])
    engine = SingleQueryEngine()
    store = lake.root / "profiles" / "store"
    refresh_profile_store(lake.sources, MergePolicySpec("mp"), store, engine=engine)
    lake.add("profile", [{"identityMap": ids(("email", "b"))}], ingest=datetime(2024, 1, 2))
    assert refresh_profile_store(lake.sources, MergePolicySpec("mp"), store, engine=engine).refresh == "full"
    assert refresh_profile_store(lake.sources, MergePolicySpec("mp"), store, engine=engine).refresh == "unchanged"
    assert [row["_profile_id"] for row in read_rows(resolve_store(store) / "profiles.parquet")] == ["email:a", "email:b"]
