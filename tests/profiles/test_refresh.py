"""Refreshing a profile store: an incremental update must publish exactly what a full build would."""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from openseg.engines import parquet
from openseg.profiles import MergePolicySpec, build_profile_store, get_profile, read_manifest, resolve_store
from openseg.profiles.lookup import get_events
from openseg.profiles.refresh import refresh_profile_store
from openseg.profiles.sources import SourceFile
from openseg.profiles.store import event_files, event_parts

from .conftest import ENGINE, IDENTITY_MAP_TYPE, Lake, ids, read_rows

FRAGMENT_SCHEMA = pa.schema(
    [
        ("identityMap", IDENTITY_MAP_TYPE),
        ("x", pa.int64()),
        ("person", pa.struct([("name", pa.string())])),
        ("extSourceSystemAudit", pa.struct([("lastUpdatedDate", pa.timestamp("us"))])),
    ]
)
EVENT_SCHEMA = pa.schema(
    [
        ("_id", pa.string()),
        ("timestamp", pa.timestamp("us")),
        ("eventType", pa.string()),
        ("identityMap", IDENTITY_MAP_TYPE),
        ("v", pa.int64()),
    ]
)
STORE_FILES = (
    "profiles.parquet",
    "events.parquet",
    "identities.parquet",
    "fragments.parquet",
    "_state/event_rids.parquet",
)
NAMESPACES = ("email", "ecid", "phone")
DAY0 = datetime(2024, 1, 1)
POLICIES = {
    "pdg": MergePolicySpec("mp"),
    "none": MergePolicySpec("mp", identity_graph="none"),
    "pdg-precedence": MergePolicySpec("mp", attribute_merge="dataSetPrecedence", dataset_order=("ds-b", "ds-a")),
    "none-precedence": MergePolicySpec(
        "mp", identity_graph="none", attribute_merge="dataSetPrecedence", dataset_order=("ds-b", "ds-a")
    ),
}


def identity_map(pairs: list[tuple[str, str, bool]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """An identityMap value in the file's map layout (several ids per namespace allowed)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for namespace, identity, primary in pairs:
        grouped.setdefault(namespace, []).append({"id": identity, "primary": primary})
    return list(grouped.items())


def fragment(
    pairs: list[tuple[str, str, bool]], x: int | None = None, name: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {"identityMap": identity_map(pairs), "x": x, "person": {"name": name}, **extra}


def xdm_event(event_id: str, when: datetime | None, pairs: list[tuple[str, str, bool]], v: int = 0) -> dict[str, Any]:
    return {"_id": event_id, "timestamp": when, "eventType": "web", "identityMap": identity_map(pairs), "v": v}


def add(lake: Lake, kind: str, records: list[dict[str, Any]], day: int, dataset: str = "ds-a") -> SourceFile:
    schema = FRAGMENT_SCHEMA if kind == "profile" else EVENT_SCHEMA
    return lake.add(kind, records, dataset=dataset, ingest=DAY0 + timedelta(days=day), schema=schema)  # type: ignore[arg-type]


def contents(store: Path) -> dict[str, Any]:
    """Everything a reader can see in a store, plus the builder's state, in file order; the events (and their
    record ids) as the store's event files hold them together, in the order a full build writes them."""
    build = resolve_store(store)
    seen: dict[str, Any] = {}
    for name in STORE_FILES:
        if (build / name).exists():
            seen[name] = (pq.read_schema(build / name), read_rows(build / name))
    seen["events.parquet"], seen["_state/event_rids.parquet"] = events_together(build)
    return seen | _described(build, store)


def events_together(build: Path) -> tuple[tuple[pa.Schema, list[dict[str, Any]]], tuple[pa.Schema, list[dict[str, Any]]]]:
    """The rows of every events file of ``build`` (and of their record-id files) as one file sorted by
    (profile, time, record id); each file must be sorted so itself and have the schema of ``events.parquet``."""
    together: list[tuple[dict[str, Any], dict[str, Any]]] = []
    schemas = {(pq.read_schema(rows), pq.read_schema(rids)) for rows, rids in event_parts(build)}
    assert len(schemas) == 1, schemas
    for rows, rids in event_parts(build):
        pairs = list(zip(read_rows(rows), read_rows(rids), strict=True))
        assert [_order(pair) for pair in pairs] == sorted(_order(pair) for pair in pairs), rows.name
        together += pairs
    together.sort(key=_order)
    [(schema, rid_schema)] = schemas
    return (schema, [row for row, _ in together]), (rid_schema, [rid for _, rid in together])


def _order(pair: tuple[dict[str, Any], dict[str, Any]]) -> tuple[Any, ...]:
    row, rid = pair
    return row["_profile_id"], row["timestamp"] is None, row["timestamp"] or DAY0, *rid.values()


def _described(build: Path, store: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    seen["schema.json"] = json.loads((build / "schema.json").read_text())
    manifest = read_manifest(store)
    stats = {k: v for k, v in manifest["stats"].items() if k not in ("seconds", "refresh")}
    seen["manifest"] = {k: manifest[k] for k in ("policy", "sources", "inputSchemas", "formatVersion")} | {
        "stats": stats
    }
    return seen


def assert_same_as_full_build(lake: Lake, store: Path, policy: MergePolicySpec) -> None:
    full = lake.root / "profiles" / f"full-{len(lake.sources)}"
    build_profile_store(lake.sources, policy, full, engine=ENGINE)
    incremental, expected = contents(store), contents(full)
    for name in expected:
        assert incremental[name] == expected[name], name
    assert incremental.keys() == expected.keys()


# --- the property --------------------------------------------------------------------------------

_identity = st.tuples(st.integers(0, 200), st.booleans())
_moment = st.one_of(st.none(), st.sampled_from([DAY0 + timedelta(hours=h) for h in (0, 1, 5)]))
# (identities, x, name, time): a fragment's lastUpdatedDate or an event's timestamp.
_record = st.tuples(
    st.lists(_identity, max_size=4), st.one_of(st.none(), st.integers(0, 3)), st.sampled_from([None, "a", "b"]), _moment
)
# A chain (first identity, length) links that many consecutive identities, to pass the guardrail.
_chain_of = st.tuples(st.integers(0, 200), st.integers(20, 60))
_no_chain = st.just((0, 0))
Batch = tuple[str, str, list[tuple[Any, ...]], tuple[int, int]]


def _batches(chain: st.SearchStrategy[tuple[int, int]]) -> st.SearchStrategy[list[Batch]]:
    batch = st.tuples(
        st.sampled_from(["profile", "event"]),
        st.sampled_from(["ds-a", "ds-b"]),
        st.lists(_record, max_size=30),
        chain,
    )
    return st.lists(batch, min_size=2, max_size=4)


_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_SETTINGS
@given(
    policy=st.sampled_from(sorted(POLICIES)),
    pool=st.sampled_from([4, 12, 70]),
    batches=_batches(st.one_of(_no_chain, _chain_of)),
    appended=st.sampled_from([0, 50_000]),
    files=st.sampled_from([1, 8]),
)
def test_refreshing_batch_by_batch_equals_a_full_build(policy: str, pool: int, batches: list[Batch],
                                                       appended: int, files: int) -> None:
    """Random batches over a pool of identities: small pools merge profiles, chains pass the guardrail. The
    events a refresh adds are appended beside the store's while no earlier event changes profile (``appended``:
    as many as a small store may append) or written whole every time (0); past ``files`` appended files, they
    are merged into one."""
    from openseg.profiles import incremental

    with mock.patch.multiple(incremental, APPENDED_EVENTS_SHARE=0.0, APPENDED_EVENTS_ROWS=appended,
                             MAX_APPENDED_EVENT_FILES=files):
        _refresh_batch_by_batch(POLICIES[policy], pool, batches)


@_SETTINGS
@given(policy=st.sampled_from(["pdg", "pdg-precedence"]), batches=_batches(_chain_of))
def test_refreshing_oversized_graphs_batch_by_batch_equals_a_full_build(policy: str, batches: list[Batch]) -> None:
    """Every batch brings a chain of 20 to 60 identities among 200: graphs pass 50, merge and split."""
    _refresh_batch_by_batch(POLICIES[policy], 200, batches)


def _refresh_batch_by_batch(spec: MergePolicySpec, pool: int, batches: list[Batch]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        lake = Lake(Path(directory))
        (lake.root / "profiles").mkdir()
        store = lake.root / "profiles" / "store"
        # Empty files fix both unified schemas from the start (a schema change rebuilds in full).
        add(lake, "profile", [], 0)
        add(lake, "event", [], 0)
        for day, (kind, dataset, drawn, (first, length)) in enumerate(batches, start=1):
            chain = [([(first + i, i == 0), (first + i + 1, False)], None, None, None) for i in range(length)]
            records = []
            for number, (identities, x, name, moment) in enumerate([*drawn, *chain]):
                pairs = [(NAMESPACES[i % pool % 3], str(i % pool), primary) for i, primary in identities]
                if kind == "profile":
                    records.append(fragment(pairs, x, name, extSourceSystemAudit={"lastUpdatedDate": moment}))
                else:
                    records.append(xdm_event(f"e{day}.{number}", moment, pairs, v=x or 0))
            add(lake, kind, records, day, dataset)
            stats = refresh_profile_store(lake.sources, spec, store, max_touched_share=math.inf, engine=ENGINE)
            assert stats.refresh == ("full" if day == 1 else "incremental")
            assert_same_as_full_build(lake, store, spec)
            event(f"{spec.identity_graph}: oversized graphs" if stats.oversized_graphs else "no oversized graph")
            event("events appended beside events.parquet" if len(event_parts(resolve_store(store))) > 1
                  else "events in events.parquet alone")


# --- exact cases ---------------------------------------------------------------------------------


def test_a_batch_linking_two_profiles_renames_the_events_of_the_larger_id(lake: Lake) -> None:
    store = lake.root / "profiles" / "store"
    add(lake, "profile", [fragment([("email", "b", True)], x=1), fragment([("ecid", "9", True)], x=2)], 0)
    add(lake, "event", [xdm_event("e1", DAY0, [("email", "b", True)]), xdm_event("e2", DAY0, [("ecid", "9", True)])], 1)
    refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE)
    add(lake, "profile", [fragment([("email", "b", True), ("ecid", "9", False)], x=3)], 2)
    stats = refresh_profile_store(lake.sources, POLICIES["pdg"], store, max_touched_share=math.inf, engine=ENGINE)
    assert (stats.refresh, stats.profiles, stats.events, stats.fragments) == ("incremental", 1, 2, 3)
    # Both events now belong to ecid:9, the smallest key; at the same time they keep ingest order.
    assert [(e["_profile_id"], e["_id"]) for e in read_rows(resolve_store(store) / "events.parquet")] == [
        ("ecid:9", "e1"),
        ("ecid:9", "e2"),
    ]
    assert [(p["_profile_id"], p["x"]) for p in read_rows(resolve_store(store) / "profiles.parquet")] == [("ecid:9", 3)]
    assert_same_as_full_build(lake, store, POLICIES["pdg"])


@pytest.mark.parametrize("policy", ["pdg", "none"])
def test_unchanged_sources_publish_nothing(lake: Lake, policy: str) -> None:
    store = lake.root / "profiles" / "store"
    add(lake, "profile", [fragment([("email", "a", True)], x=1)], 0)
    built = refresh_profile_store(lake.sources, POLICIES[policy], store, engine=ENGINE)
    before = resolve_store(store)
    again = refresh_profile_store(list(reversed(lake.sources)), POLICIES[policy], store, engine=ENGINE)
    assert again.refresh == "unchanged" and resolve_store(store) == before
    assert again.to_dict() | {"seconds": 0, "refresh": "full"} == built.to_dict() | {"seconds": 0}


def test_a_removed_source_rebuilds_in_full(lake: Lake) -> None:
    store = lake.root / "profiles" / "store"
    first = add(lake, "profile", [fragment([("email", "a", True)], x=1)], 0)
    add(lake, "profile", [fragment([("email", "b", True)], x=2)], 1)
    refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE)
    lake.sources.remove(first)
    stats = refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE)
    assert (stats.refresh, stats.profiles) == ("full", 1)
    assert get_profile(store, "email", "a", engine=ENGINE) is None
    assert_same_as_full_build(lake, store, POLICIES["pdg"])


def test_a_source_rewritten_in_place_rebuilds_in_full(lake: Lake) -> None:
    # Erasing a profile rewrites lake files at the same path (profiles/entities.py).
    store = lake.root / "profiles" / "store"
    source = add(lake, "profile", [fragment([("email", "a", True)], x=1), fragment([("email", "b", True)], x=2)], 0)
    refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE)
    pq.write_table(
        pa.Table.from_pylist(
            [fragment([("email", "b", True)], x=2, extSourceSystemAudit=None)], schema=FRAGMENT_SCHEMA
        ),
        source.path,
    )
    os.utime(source.path, ns=(1, 1))
    stats = refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE)
    assert (stats.refresh, stats.profiles) == ("full", 1)
    assert get_profile(store, "email", "a", engine=ENGINE) is None


def test_a_new_policy_version_rebuilds_in_full(lake: Lake) -> None:
    store = lake.root / "profiles" / "store"
    add(lake, "profile", [fragment([("email", "a", True)], x=1)], 0)
    refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE)
    stats = refresh_profile_store(lake.sources, MergePolicySpec("mp", version=2), store, engine=ENGINE)
    assert stats.refresh == "full" and read_manifest(store)["policy"]["version"] == 2


def test_a_source_sorting_before_earlier_ones_rebuilds_in_full(lake: Lake) -> None:
    store = lake.root / "profiles" / "store"
    add(lake, "profile", [fragment([("email", "a", True)], x=1)], 5)
    refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE)
    add(lake, "profile", [fragment([("email", "a", True)], x=2)], 1)
    stats = refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE)
    assert stats.refresh == "full"
    assert_same_as_full_build(lake, store, POLICIES["pdg"])


@pytest.mark.parametrize("policy", ["pdg", "none"])
def test_a_new_spelling_of_a_namespace_rebuilds_in_full(
    lake: Lake, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = lake.root / "profiles" / "store"
    add(lake, "profile", [fragment([("ecid", "1", True)], x=1), fragment([("ecid", "2", True)], x=1)], 0)
    add(lake, "event", [xdm_event("e0", DAY0, [("ecid", "2", True)])], 1)
    refresh_profile_store(lake.sources, POLICIES[policy], store, engine=ENGINE)
    # "ECID" sorts before "ecid", so it becomes the display spelling of every ecid identity.
    add(lake, "event", [xdm_event("e1", DAY0, [("ECID", "1", True)])], 2)
    with caplog.at_level(logging.INFO, logger="openseg.profiles.refresh"):
        stats = refresh_profile_store(lake.sources, POLICIES[policy], store, max_touched_share=math.inf, engine=ENGINE)
    assert stats.refresh == "full"
    assert "namespace 'ecid' is now displayed as 'ECID'" in caplog.text
    assert {row["namespace"] for row in read_rows(resolve_store(store) / "identities.parquet")} == {"ECID"}
    assert_same_as_full_build(lake, store, POLICIES[policy])


def test_a_new_field_rebuilds_in_full(lake: Lake) -> None:
    store = lake.root / "profiles" / "store"
    add(lake, "profile", [fragment([("email", "a", True)], x=1)], 0)
    refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE)
    lake.add(
        "profile", [{"identityMap": ids(("email", "a")), "loyalty": {"tier": "gold"}}], ingest=DAY0 + timedelta(days=1)
    )
    stats = refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE)
    assert stats.refresh == "full"
    profile = get_profile(store, "email", "a", engine=ENGINE)
    assert profile is not None and (profile["x"], profile["loyalty"]) == (1, {"tier": "gold"})


def test_touching_too_many_profiles_rebuilds_in_full(lake: Lake) -> None:
    store = lake.root / "profiles" / "store"
    add(lake, "profile", [fragment([("email", str(i), True)], x=i) for i in range(8)], 0)
    refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE)
    add(lake, "profile", [fragment([("email", str(i), True)], x=9) for i in range(3)], 1)
    assert refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE).refresh == "full"  # 3 of 8 > 25 %
    add(lake, "profile", [fragment([("email", "1", True)], x=10)], 2)
    assert refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE).refresh == "incremental"
    assert_same_as_full_build(lake, store, POLICIES["pdg"])


def test_a_batch_without_events_keeps_the_events_file(lake: Lake) -> None:
    store = lake.root / "profiles" / "store"
    add(lake, "profile", [fragment([("email", "a", True)], x=1)], 0)
    add(lake, "event", [xdm_event("e1", DAY0, [("email", "a", True)])], 1)
    refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE)
    before = resolve_store(store)
    add(lake, "profile", [fragment([("email", "a", True)], x=2)], 2)
    stats = refresh_profile_store(lake.sources, POLICIES["pdg"], store, max_touched_share=math.inf, engine=ENGINE)
    after = resolve_store(store)
    assert stats.refresh == "incremental" and after != before
    assert os.stat(after / "events.parquet").st_ino == os.stat(before / "events.parquet").st_ino
    assert [p["x"] for p in read_rows(resolve_store(store) / "profiles.parquet")] == [2]


def test_events_a_refresh_adds_are_appended_beside_the_store_until_it_writes_them_whole(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    from openseg.profiles import incremental

    store = lake.root / "profiles" / "store"
    add(lake, "profile", [fragment([("email", "a", True)], x=1), fragment([("email", "b", True)], x=2)], 0)
    add(lake, "event", [xdm_event("e1", DAY0, [("email", "a", True)])], 0)
    refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE)
    before = resolve_store(store)
    # A late event: it sorts before the profile's earlier one, though it lies in a file after it.
    add(lake, "event", [xdm_event("e2", DAY0 - timedelta(hours=1), [("email", "a", True)])], 1)
    stats = refresh_profile_store(lake.sources, POLICIES["pdg"], store, max_touched_share=math.inf, engine=ENGINE)
    after = resolve_store(store)
    assert (stats.refresh, stats.events) == ("incremental", 2)
    assert os.stat(after / "events.parquet").st_ino == os.stat(before / "events.parquet").st_ino
    assert [path.name for path in event_files(after)] == ["events.parquet", "events.0001.parquet"]
    assert [e["_id"] for e in read_rows(after / "events.0001.parquet")] == ["e2"]
    assert [e["_id"] for e in get_events(store, "email:a", engine=ENGINE)] == ["e2", "e1"]
    assert_same_as_full_build(lake, store, POLICIES["pdg"])
    # Past the number of appended files allowed, the appended events and the new ones are merged into one file.
    monkeypatch.setattr(incremental, "MAX_APPENDED_EVENT_FILES", 1)
    add(lake, "event", [xdm_event("e3", DAY0, [("email", "b", True)]),
                        xdm_event("e4", DAY0 - timedelta(hours=2), [("email", "a", True)])], 2)
    stats = refresh_profile_store(lake.sources, POLICIES["pdg"], store, max_touched_share=math.inf, engine=ENGINE)
    merged = resolve_store(store)
    assert (stats.refresh, stats.events) == ("incremental", 4)
    assert os.stat(merged / "events.parquet").st_ino == os.stat(after / "events.parquet").st_ino
    assert [path.name for path in event_files(merged)] == ["events.parquet", "events.0001.parquet"]
    assert [(e["_profile_id"], e["_id"]) for e in read_rows(merged / "events.0001.parquet")] == [
        ("email:a", "e4"), ("email:a", "e2"), ("email:b", "e3")]
    assert_same_as_full_build(lake, store, POLICIES["pdg"])
    # Past the share of the events appended files may hold, the refresh writes the events whole again.
    monkeypatch.setattr(incremental, "APPENDED_EVENTS_ROWS", 3)
    add(lake, "event", [xdm_event("e5", DAY0, [("email", "b", True)])], 3)
    stats = refresh_profile_store(lake.sources, POLICIES["pdg"], store, max_touched_share=math.inf, engine=ENGINE)
    assert (stats.refresh, stats.events) == ("incremental", 5)
    assert [path.name for path in event_files(resolve_store(store))] == ["events.parquet"]
    assert [(e["_profile_id"], e["_id"]) for e in read_rows(resolve_store(store) / "events.parquet")] == [
        ("email:a", "e4"), ("email:a", "e2"), ("email:a", "e1"), ("email:b", "e3"), ("email:b", "e5")]
    assert_same_as_full_build(lake, store, POLICIES["pdg"])


@pytest.mark.parametrize("policy", ["pdg", "none"])
def test_a_refresh_that_changes_no_profile_or_identity_row_keeps_their_files(lake: Lake, policy: str) -> None:
    """Events of known profiles (no fragment, no new identity) recompute those profiles to the rows they had:
    ``profiles.parquet`` and ``identities.parquet`` are the previous build's files, linked, not rewrites (whose
    row groups every process would decode anew); a fragment that changes a profile, or a new identity, rewrites
    them again."""
    store = lake.root / "profiles" / "store"
    add(lake, "profile", [fragment([("email", "a", True)], x=1), fragment([("email", "b", True)], x=2)], 0)
    add(lake, "event", [xdm_event("e1", DAY0, [("email", "a", True)])], 0)
    refresh_profile_store(lake.sources, POLICIES[policy], store, engine=ENGINE)

    def files() -> tuple[int, int]:
        build = resolve_store(store)
        return os.stat(build / "profiles.parquet").st_ino, os.stat(build / "identities.parquet").st_ino

    first = files()
    add(lake, "event", [xdm_event("e2", DAY0, [("email", "a", True)]), xdm_event("e3", DAY0, [("email", "b", True)])], 1)
    stats = refresh_profile_store(lake.sources, POLICIES[policy], store, max_touched_share=math.inf, engine=ENGINE)
    assert (stats.refresh, stats.events) == ("incremental", 3)
    assert files() == first
    assert_same_as_full_build(lake, store, POLICIES[policy])
    add(lake, "profile", [fragment([("email", "b", True)], x=5)], 2)  # b's attribute changes
    refresh_profile_store(lake.sources, POLICIES[policy], store, max_touched_share=math.inf, engine=ENGINE)
    second = files()
    assert second[0] != first[0]
    assert_same_as_full_build(lake, store, POLICIES[policy])
    add(lake, "event", [xdm_event("e4", DAY0, [("email", "a", True), ("phone", "1", False)])], 3)  # a new identity
    refresh_profile_store(lake.sources, POLICIES[policy], store, max_touched_share=math.inf, engine=ENGINE)
    assert files()[1] != second[1]
    assert_same_as_full_build(lake, store, POLICIES[policy])


@pytest.mark.parametrize(("events", "appends"), [
    ([xdm_event("n1", DAY0, [("email", "a", True), ("ecid", "1", False)]),
      xdm_event("n2", None, [("ecid", "1", False)]), xdm_event("n3", DAY0, [])], True),
    ([xdm_event("n1", DAY0, [("email", "a", True), ("phone", "9", False)])], False),  # a new identity
    ([xdm_event("n1", DAY0, [("email", "a", True), ("email", "b", False)])], False),  # joins two profiles
    ([xdm_event("n1", DAY0, [("ecid", "1", True)])], False),  # ecid:1 becomes primary
    ([xdm_event("n1", DAY0, [("ecid", "7", True)])], False),  # a profile of events only: its _lastModifiedAt moves
    ([xdm_event("n1", DAY0, [("ECID", "1", False)])], False),  # a new display spelling of ecid: a full build
])
def test_events_of_known_profiles_are_appended_without_reading_the_store(
        lake: Lake, events: list[dict[str, Any]], appends: bool) -> None:
    """A refresh whose new records are events that change no profile row (their identities known, in one profile
    with a profile record, none newly primary) appends them and keeps every other file, reading only their
    identities and profiles: what a stream's refreshes are. Any other event takes the general path. Both
    publish what a full build would."""
    from openseg.profiles import incremental

    store = lake.root / "profiles" / "store"
    add(lake, "profile", [fragment([("email", "a", True), ("ecid", "1", False)], x=1),
                          fragment([("email", "b", True)], x=2)], 0)
    add(lake, "event", [xdm_event("e1", DAY0, [("email", "a", True)]), xdm_event("e2", DAY0, [("ecid", "7", True)])], 0)
    refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE)
    before = resolve_store(store)
    add(lake, "event", events, 1)
    answers: list[object] = []

    def recorded(*args: Any) -> object:
        answers.append(incremental_append(*args))
        return answers[-1]

    incremental_append = incremental._append_known_events
    with mock.patch.object(incremental, "_append_known_events", side_effect=recorded):
        stats = refresh_profile_store(lake.sources, POLICIES["pdg"], store, max_touched_share=math.inf, engine=ENGINE)
    assert stats.refresh == ("incremental" if len(answers) == 1 else "full")
    assert [answer is not None for answer in answers] == ([True] if appends else [False] * len(answers))
    after = resolve_store(store)
    if appends:
        # The files kept, and the decoded copies of those looked up by key, are linked, not written again.
        for name in ("profiles.parquet", "identities.parquet", "events.parquet", "profiles.arrow", "identities.arrow"):
            assert os.stat(after / name).st_ino == os.stat(before / name).st_ino, name
        assert [(e["_profile_id"], e["_id"]) for e in read_rows(after / "events.0001.parquet")] == [
            ("ecid:1", "n1"), ("ecid:1", "n2")]
        assert (stats.events, stats.unlinked_events) == (4, 1)
    assert_same_as_full_build(lake, store, POLICIES["pdg"])


def _chain(start: int, length: int, namespace: str = "email") -> list[dict[str, Any]]:
    """Fragments linking identities start..start+length-1 one after the other."""
    return [
        fragment([(namespace, f"{i:03d}", True), (namespace, f"{i + 1:03d}", False)], x=i)
        for i in range(start, start + length - 1)
    ]


@pytest.mark.parametrize("policy", ["pdg", "pdg-precedence"])
def test_oversized_graphs_are_replayed_with_their_earlier_records(lake: Lake, policy: str) -> None:
    spec = POLICIES[policy]
    store = lake.root / "profiles" / "store"
    add(lake, "profile", _chain(0, 40), 0)
    add(lake, "profile", _chain(100, 45), 1, dataset="ds-b")
    add(lake, "event", [xdm_event("e0", DAY0, [("email", "010", True)])], 2)
    refresh_profile_store(lake.sources, spec, store, engine=ENGINE)
    # Joining the two chains makes an 85-identity graph, split by the guardrail.
    add(lake, "profile", [fragment([("email", "039", True), ("email", "100", False)], x=99)], 3)
    stats = refresh_profile_store(lake.sources, spec, store, max_touched_share=math.inf, engine=ENGINE)
    assert stats.refresh == "incremental" and len(stats.oversized_graphs) == 1
    assert_same_as_full_build(lake, store, spec)
    # A later batch touching only a split-off part replays the whole original component again.
    add(lake, "event", [xdm_event("e1", DAY0, [("email", "120", True), ("phone", "7", False)])], 4)
    add(lake, "profile", _chain(300, 60, "phone"), 5)
    stats = refresh_profile_store(lake.sources, spec, store, max_touched_share=math.inf, engine=ENGINE)
    assert stats.refresh == "incremental" and len(stats.oversized_graphs) == 2
    assert_same_as_full_build(lake, store, spec)
    # Events whose identities all lie in one part of a split graph link nothing new: appended, as elsewhere.
    from openseg.profiles import incremental

    add(lake, "event", [xdm_event("e2", DAY0, [("email", "120", True), ("email", "121", False)])], 6)
    before = event_files(resolve_store(store))
    answers: list[object] = []
    append = incremental._append_known_events
    with mock.patch.object(incremental, "_append_known_events", side_effect=lambda *a: answers.append(append(*a))
                           or answers[-1]):
        stats = refresh_profile_store(lake.sources, spec, store, max_touched_share=math.inf, engine=ENGINE)
    assert len(answers) == 1 and answers[0] is not None
    assert stats.refresh == "incremental" and len(stats.oversized_graphs) == 2
    assert len(event_files(resolve_store(store))) == len(before) + 1
    assert_same_as_full_build(lake, store, spec)


def test_lookups_read_one_small_row_group_after_a_full_build_and_a_refresh(lake: Lake,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Row groups of 2 rows stand for LOOKUP_ROW_GROUP_ROWS at this size: the files a lookup reads by key are
    # cut into groups of that many rows; the events file, which jobs scan whole, into groups of 3
    # (EVENT_ROW_GROUP_ROWS).
    from openseg.profiles import build, incremental

    monkeypatch.setattr(build, "LOOKUP_ROW_GROUP_ROWS", 2)
    monkeypatch.setattr(incremental, "LOOKUP_ROW_GROUP_ROWS", 2)
    monkeypatch.setattr(build, "EVENT_ROW_GROUP_ROWS", 3)
    monkeypatch.setattr(incremental, "EVENT_ROW_GROUP_ROWS", 3)
    store = lake.root / "profiles" / "store"
    add(lake, "profile", [fragment([("email", f"u{n}", True)], x=n) for n in range(5)], 0)
    add(lake, "event", [xdm_event(f"e{n}", DAY0, [("email", f"u{n}", True)]) for n in range(5)], 0)
    assert refresh_profile_store(lake.sources, POLICIES["pdg"], store, engine=ENGINE).refresh == "full"
    add(lake, "profile", [fragment([("email", "u5", True)], x=5)], 1)
    stats = refresh_profile_store(lake.sources, POLICIES["pdg"], store, max_touched_share=math.inf, engine=ENGINE)
    assert stats.refresh == "incremental"
    built = resolve_store(store)

    def groups(name: str) -> list[int]:
        metadata = pq.ParquetFile(resolve_store(built) / name).metadata
        return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]

    # The refresh splices its new profile in as a group of its own: groups hold at most 2 rows.
    assert (groups("profiles.parquet"), groups("identities.parquet"), groups("events.parquet")) == (
        [2, 2, 1, 1], [2, 2, 2], [3, 2])
    # Both files have their decoded copies (the refresh wrote them anew: both changed), with the same groups.
    for name in ("profiles", "identities"):
        copy = pa.ipc.open_file(pa.memory_map(str(resolve_store(built) / f"{name}.arrow")))
        assert [copy.get_batch(i).num_rows for i in range(copy.num_record_batches)] == groups(f"{name}.parquet")
    read: list[int] = []
    real = pq.ParquetFile.read_row_group
    mapped = parquet._Mapped.group

    def spy(self: pq.ParquetFile, group: int, *args: Any, **kwargs: Any) -> pa.Table:
        read.append(group)
        return real(self, group, *args, **kwargs)

    def mapped_spy(self: Any, group: int) -> pa.Table:
        read.append(group)
        return mapped(self, group)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    monkeypatch.setattr(parquet._Mapped, "group", mapped_spy)
    parquet._group.cache_clear()
    profile = get_profile(store, "email", "u3", engine=ENGINE)
    assert profile is not None and (profile["_profile_id"], profile["x"]) == ("email:u3", 3)
    assert read == [1, 1]  # identities (u2, u3), then profiles (email:u2, email:u3)


def test_a_builds_event_files_are_listed_anew_once_the_directory_changes(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A published build's listing is kept (every point read of events asks for it); a directory that changes is
    # never answered from an older listing, however soon after it the change comes.
    build = tmp_path / "build"
    build.mkdir()
    (build / "events.parquet").touch()
    settled = time.time_ns() - 5_000_000_000
    os.utime(build, ns=(settled, settled))
    globs: list[Path] = []
    real = Path.glob

    def counted(self: Path, pattern: str) -> Any:
        globs.append(self)
        return real(self, pattern)

    monkeypatch.setattr(Path, "glob", counted)
    assert [p.name for p in event_files(build)] == ["events.parquet"]
    assert [p.name for p in event_files(build)] == ["events.parquet"] and len(globs) == 1  # kept
    (build / "events.0001.parquet").touch()  # the directory's time moves: listed anew
    assert [p.name for p in event_files(build)] == ["events.parquet", "events.0001.parquet"]
    assert [p.name for p in event_files(build)] == ["events.parquet", "events.0001.parquet"] and len(globs) == 3
