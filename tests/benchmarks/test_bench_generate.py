"""The benchmark data generator: determinism, layouts, and the identities stitching needs."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from benchmarks.generate import AS_OF, Manifest, generate, main, parse_size

IDENTITY_MAP = pa.map_(pa.string(), pa.list_(pa.struct([("id", pa.string()), ("primary", pa.bool_())])))
PROFILE_SCHEMA = pa.schema(
    [
        ("_profile_id", pa.string()),
        (
            "person",
            pa.struct(
                [
                    ("name", pa.struct([("firstName", pa.string()), ("lastName", pa.string())])),
                    ("birthDate", pa.date32()),
                    ("gender", pa.string()),
                ]
            ),
        ),
        (
            "homeAddress",
            pa.struct(
                [
                    ("country", pa.string()),
                    ("city", pa.string()),
                    ("postalCode", pa.string()),
                    ("state", pa.string()),
                ]
            ),
        ),
        ("personalEmail", pa.struct([("address", pa.string())])),
        ("loyalty", pa.struct([("tier", pa.string()), ("points", pa.int64()), ("joinDate", pa.timestamp("us", tz="UTC"))])),
        ("identityMap", IDENTITY_MAP),
        ("_sources", pa.list_(pa.string())),
        ("_lastModifiedAt", pa.timestamp("us")),
        ("_hasProfileRecord", pa.bool_()),
        ("_primaryNamespace", pa.string()),
    ]
)
EVENT_COLUMNS = [
    "_profile_id",
    "_id",
    "timestamp",
    "eventType",
    "identityMap",
    "commerce",
    "productListItems",
    "web",
    "environment",
    "_ingestTime",
]


def identity_sets(records: list[dict[str, object]]) -> list[set[str]]:
    """Groups records' identities transitively (union-find): the persons stitching would form."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for record in records:
        keys = [f"{ns}:{e['id']}" for ns, entries in record["identityMap"] for e in entries]  # type: ignore[attr-defined]
        for key in keys[1:]:
            parent[root(key)] = root(keys[0])
        root(keys[0])
    groups: dict[str, set[str]] = defaultdict(set)
    for key in parent:
        groups[root(key)].add(key)
    return list(groups.values())


def _digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    generate(tmp_path / "a", 300, seed=5, chunk_size=120, jsonl=True)
    generate(tmp_path / "b", 300, seed=5, chunk_size=120, jsonl=True)
    generate(tmp_path / "c", 300, seed=6, chunk_size=120)
    first, second = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert first == second
    assert "ingest-jsonl/events/part-00002.jsonl" in first  # three chunks of at most 120 persons
    assert _digest(tmp_path / "c")["plain/profiles.parquet"] != first["plain/profiles.parquet"]


def test_generation_replaces_the_directory_and_leaves_no_partial_output(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "stale.txt").write_text("old")
    generate(tmp_path / "data", 50, seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert not (tmp_path / "data" / "stale.txt").exists()


@pytest.mark.parametrize(
    ("text", "count"),
    [("100k", 100_000), ("1m", 1_000_000), ("10M", 10_000_000), ("2k", 2_000), ("2500", 2_500)],
)
def test_sizes_read_as_profile_counts(text: str, count: int) -> None:
    assert parse_size(text) == count


@pytest.mark.parametrize("text", ["0", "1g", "-5", "", "k"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="size must be a positive count"):
        parse_size(text)


def test_jsonl_is_refused_for_large_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--jsonl is for small sizes"):
        generate(tmp_path / "big", 2_000_000, seed=1, jsonl=True)


def test_manifest_records_sizes_seed_and_as_of(tiny_data: Path) -> None:
    manifest = Manifest.load(tiny_data)
    assert (manifest.profiles, manifest.seed, manifest.as_of, manifest.window_days) == (
        2_000,
        11,
        "2025-06-30T00:00:00Z",
        180,
    )
    assert manifest.as_of_time == AS_OF.replace(tzinfo=None)
    assert manifest.events == pq.read_metadata(tiny_data / "plain/events.parquet").num_rows
    assert manifest.fragments == sum(
        pq.read_metadata(p).num_rows for p in (tiny_data / "ingest/profiles").glob("*.parquet")
    )
    assert 8 * manifest.profiles < manifest.events < 12 * manifest.profiles  # about ten events each
    assert manifest.profiles < manifest.fragments < 1.2 * manifest.profiles  # some persons are split


def test_plain_profiles_have_the_merged_store_layout_sorted_by_profile_id(tiny_data: Path) -> None:
    profiles = pq.read_table(tiny_data / "plain/profiles.parquet")
    assert profiles.schema.equals(PROFILE_SCHEMA)
    ids = profiles["_profile_id"].to_pylist()
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 2_000


def test_profile_id_is_the_smallest_identity_and_each_profile_has_one_to_three(tiny_data: Path) -> None:
    profiles = pq.read_table(tiny_data / "plain/profiles.parquet", columns=["_profile_id", "identityMap"])
    sizes = set()
    for row in profiles.to_pylist():
        keys = [
            f"{namespace}:{entry['id']}" for namespace, entries in row["identityMap"] for entry in entries
        ]
        sizes.add(len(keys))
        assert row["_profile_id"] == min(keys)
    assert sizes == {1, 2, 3}


def test_plain_profiles_carry_the_namespace_of_their_primary_identity(tiny_data: Path) -> None:
    profiles = pq.read_table(tiny_data / "plain/profiles.parquet", columns=["identityMap", "_primaryNamespace"])
    for row in profiles.to_pylist():
        flagged = [namespace for namespace, entries in row["identityMap"] if any(e["primary"] for e in entries)]
        assert flagged[:1] == [row["_primaryNamespace"]]


def test_plain_events_are_sorted_and_belong_to_profiles_within_the_window(tiny_data: Path) -> None:
    events = pq.read_table(tiny_data / "plain/events.parquet")
    assert events.column_names == EVENT_COLUMNS
    assert events.schema.field("timestamp").type == pa.timestamp("us")
    keys = list(zip(events["_profile_id"].to_pylist(), events["timestamp"].to_pylist(), strict=True))
    assert keys == sorted(keys)
    profile_ids = set(pq.read_table(tiny_data / "plain/profiles.parquet")["_profile_id"].to_pylist())
    assert {pid for pid, _ in keys} <= profile_ids
    as_of = AS_OF.replace(tzinfo=None)
    assert all(as_of - dt.timedelta(days=180) <= ts < as_of for _, ts in keys)
    assert len(set(events["eventType"].to_pylist())) == 10


def test_orders_carry_exact_decimal_totals_of_their_items(tiny_data: Path) -> None:
    events = pq.read_table(
        tiny_data / "plain/events.parquet", columns=["eventType", "commerce", "productListItems"]
    )
    assert events.schema.field("commerce").type.field("order").type.field("priceTotal").type == pa.decimal128(
        12, 2
    )
    orders = 0
    for event in events.to_pylist():
        if event["eventType"] in ("commerce.purchases", "commerce.checkouts"):
            orders += 1
            items = event["productListItems"]
            assert 1 <= len(items) <= 3
            assert event["commerce"]["order"]["priceTotal"] == sum(i["priceTotal"] for i in items)
            assert isinstance(event["commerce"]["order"]["priceTotal"], Decimal)
        else:
            assert event["commerce"] is None
    assert orders > 0


def test_ingest_records_have_identities_and_no_profile_id(tiny_data: Path) -> None:
    fragments = pq.read_table(tiny_data / "ingest/profiles")
    events = pq.read_table(tiny_data / "ingest/events")
    assert "_profile_id" not in fragments.column_names and "_profile_id" not in events.column_names
    assert fragments.schema.field("identityMap").type == IDENTITY_MAP
    assert events.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert events.num_rows == Manifest.load(tiny_data).events


def test_stitching_the_ingest_fragments_rebuilds_the_plain_profiles(tiny_data: Path) -> None:
    fragments = pq.read_table(tiny_data / "ingest/profiles", columns=["identityMap"]).to_pylist()
    stitched = identity_sets(fragments)
    identities = pq.read_table(tiny_data / "plain/identities.parquet").to_pylist()
    merged: dict[str, set[str]] = defaultdict(set)
    for row in identities:
        merged[row["_profile_id"]].add(f"{row['namespace']}:{row['id']}")
    assert sorted(map(sorted, stitched)) == sorted(map(sorted, merged.values()))
    assert len(stitched) < len(fragments)  # some profiles exist only through stitching


def test_every_ingest_event_links_to_its_plain_profile_by_identity(tiny_data: Path) -> None:
    owner = {
        f"{r['namespace']}:{r['id']}": r["_profile_id"]
        for r in pq.read_table(tiny_data / "plain/identities.parquet").to_pylist()
    }
    ingest = pq.read_table(tiny_data / "ingest/events", columns=["_id", "identityMap"]).to_pylist()
    plain = pq.read_table(tiny_data / "plain/events.parquet", columns=["_id", "_profile_id"]).to_pylist()
    expected = {row["_id"]: row["_profile_id"] for row in plain}
    namespaces = set()
    for event in ingest:
        ((namespace, entries),) = event["identityMap"]
        namespaces.add(namespace)
        assert owner[f"{namespace}:{entries[0]['id']}"] == expected[event["_id"]]
    assert namespaces == {"ECID", "email"}


def test_jsonl_parts_hold_the_same_records_as_xdm_json(tiny_data: Path) -> None:
    lines = (tiny_data / "ingest-jsonl/events/part-00000.jsonl").read_text(encoding="utf-8").splitlines()
    table = pq.read_table(tiny_data / "ingest/events/part-00000.parquet")
    assert len(lines) == table.num_rows
    record = json.loads(lines[0])
    row = table.slice(0, 1).to_pylist()[0]
    assert record["_id"] == row["_id"]
    assert record["timestamp"] == row["timestamp"].isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert "_profile_id" not in record
    assert all(value is not None for value in record.values())  # XDM JSON omits missing fields
    namespace, entries = row["identityMap"][0]
    assert record["identityMap"] == {namespace: entries}


def test_command_line_generates_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--size", "200", "--out", str(tmp_path / "cli"), "--seed", "3"])
    output = capsys.readouterr().out
    assert output.startswith("200 profiles (")
    assert "as_of 2025-06-30T00:00:00Z" in output
    assert Manifest.load(tmp_path / "cli").seed == 3
