"""A job's evaluation end to end over a tiny store: plan, diff, counts, namespaces, staged membership files.

The DuckDB engine keeps the plan's result in DuckDB; any other engine hands back Arrow. Both must give
the same files and counts, so every test runs on both ways.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openseg.engines.base import Engine, TableSource
from openseg.engines.duckdb import DuckDBEngine
from openseg.pql import parse
from openseg.profiles.store import appended_event_part
from openseg.segmentation import membership
from openseg.segmentation.evaluate import Evaluation, evaluate_store

T1 = dt.datetime(2024, 6, 15, 12, tzinfo=dt.UTC)
T2 = dt.datetime(2024, 6, 16, 12, tzinfo=dt.UTC)
IDENTITY = pa.list_(pa.struct([("id", pa.string()), ("primary", pa.bool_())]))


class ArrowEngine(Engine):
    """An engine that is not DuckDBEngine: its results come back as Arrow, as Spark's do."""

    name = "arrow"
    dialect = "duckdb"

    def _execute(self, sql: str, tables: Mapping[str, TableSource]) -> pa.Table:
        return DuckDBEngine(threads=1)._execute(sql, tables)


@pytest.fixture(params=["duckdb", "arrow"])
def engine(request: pytest.FixtureRequest) -> Engine:
    return DuckDBEngine(threads=2) if request.param == "duckdb" else ArrowEngine()


def write_store(store: Path, countries: dict[str, str]) -> None:
    """Profiles a (ECID primary), b (email flagged primary), c (no flag: the id's namespace) and their events."""
    store.mkdir(parents=True, exist_ok=True)
    ids = ["ECID:a", "ECID:b", "Email:c"]
    identity_maps = [
        [("ECID", [{"id": "a", "primary": True}])],
        [("ECID", [{"id": "b", "primary": False}]), ("Email", [{"id": "b@x", "primary": True}])],
        [("Email", [{"id": "c", "primary": None}])],
    ]
    pq.write_table(pa.table({
        "_profile_id": ids,
        "homeAddress": pa.array([{"country": countries[i]} for i in ids]),
        "identityMap": pa.array(identity_maps, pa.map_(pa.string(), IDENTITY)),
    }), store / "profiles.parquet")
    pq.write_table(pa.table({
        "_profile_id": ["ECID:a", "ECID:b", "ECID:b"],
        "_id": ["e1", "e2", "e3"],
        "timestamp": pa.array([dt.datetime(2024, 6, 14), dt.datetime(2024, 6, 10), dt.datetime(2024, 6, 12)],
                              pa.timestamp("us")),
        "eventType": ["buy", "view", "buy"],
    }), store / "events.parquet")


SEGMENTS = {
    "us": 'homeAddress.country = "US"',
    "buyer": 'xEvent[eventType = "buy" and timestamp occurs <= 7 days before now].count() > 0',
    "us_buyer": 'inSegment("us") and inSegment("buyer")',
}


def evaluate(engine: Engine, store: Path, out: Path, at: dt.datetime, previous: membership.State | None, job: str,
             segments: dict[str, str] = SEGMENTS) -> Evaluation:
    parsed = [(segment_id, parse(text)) for segment_id, text in segments.items()]
    evaluation = evaluate_store(engine, store, parsed, at, membership.MembershipStore(out), previous, job)
    membership.publish(evaluation.staged)
    return evaluation


def rows(path: Path) -> list[tuple[object, ...]]:
    return [tuple(row.values()) for row in pq.read_table(path).to_pylist()]


def current(out: Path, state: membership.State) -> list[tuple[object, ...]]:
    """The membership of ``state`` as AEP shows it, one row per (profile, segment)."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        membership.MembershipStore(out).register_long_form(con, state, "m")
        return con.sql("SELECT * FROM m ORDER BY _profile_id, segment_id").fetchall()


def test_first_run_realizes_members_and_counts_them(engine: Engine, tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "membership"
    write_store(store, {"ECID:a": "US", "ECID:b": "US", "Email:c": "FR"})
    first = evaluate(engine, store, out, T1, None, "j1")
    assert first.qualified == {"us": 2, "buyer": 2, "us_buyer": 2}
    assert first.counts == {s: {"realized": 2, "existing": 0, "exited": 0} for s in SEGMENTS}
    # The flagged primary identity counts; without one, the namespace of the profile id.
    assert first.by_namespace == {s: {"ECID": 1, "Email": 1} for s in SEGMENTS}
    assert first.total_profiles == 3
    assert current(out, first.staged.state) == [
        ("ECID:a", "buyer", "realized", T1), ("ECID:a", "us", "realized", T1), ("ECID:a", "us_buyer", "realized", T1),
        ("ECID:b", "buyer", "realized", T1), ("ECID:b", "us", "realized", T1), ("ECID:b", "us_buyer", "realized", T1),
    ]
    assert rows(out / "history" / "j1.parquet") == [
        (s, p, "entered", T1, "j1") for s in ("buyer", "us", "us_buyer") for p in ("ECID:a", "ECID:b")]
    # One snapshot row per member profile: their segments as bits, all three entered in this run.
    assert rows(out / "snapshots" / "j1.parquet") == [("ECID:a", 7, 7), ("ECID:b", 7, 7)]


def test_events_a_refresh_appended_beside_the_events_file_are_evaluated_with_it(engine: Engine,
                                                                                 tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "membership"
    write_store(store, {"ECID:a": "US", "ECID:b": "US", "Email:c": "US"})
    appended, _ = appended_event_part(store, 1)
    pq.write_table(pa.table({
        "_profile_id": ["Email:c"], "_id": ["e4"], "timestamp": pa.array([dt.datetime(2024, 6, 14)], pa.timestamp("us")),
        "eventType": ["buy"]}), appended)
    first = evaluate(engine, store, out, T1, None, "j1")
    assert first.qualified == {"us": 3, "buyer": 3, "us_buyer": 3}


def test_second_run_diffs_against_the_previous_file(engine: Engine, tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "membership"
    write_store(store, {"ECID:a": "US", "ECID:b": "US", "Email:c": "FR"})
    first = evaluate(engine, store, out, T1, None, "j1")
    write_store(store, {"ECID:a": "US", "ECID:b": "DE", "Email:c": "US"})
    second = evaluate(engine, store, out, T2, first.staged.state, "j2")
    assert second.counts == {
        "us": {"realized": 1, "existing": 1, "exited": 1},
        "buyer": {"realized": 0, "existing": 2, "exited": 0},
        "us_buyer": {"realized": 0, "existing": 1, "exited": 1},
    }
    assert second.by_namespace["us"] == {"ECID": 1, "Email": 1}
    assert current(out, second.staged.state) == [
        ("ECID:a", "buyer", "existing", T2), ("ECID:a", "us", "existing", T2), ("ECID:a", "us_buyer", "existing", T2),
        ("ECID:b", "buyer", "existing", T2), ("ECID:b", "us", "exited", T2), ("ECID:b", "us_buyer", "exited", T2),
        ("Email:c", "us", "realized", T2),
    ]
    assert rows(out / "history" / "j2.parquet") == [
        ("us", "ECID:b", "exited", T2, "j2"), ("us", "Email:c", "entered", T2, "j2"),
        ("us_buyer", "ECID:b", "exited", T2, "j2"),
    ]


def test_segments_outside_the_job_are_kept_and_readable_by_in_segment(engine: Engine, tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "membership"
    write_store(store, {"ECID:a": "US", "ECID:b": "US", "Email:c": "FR"})
    first = evaluate(engine, store, out, T1, None, "j1")
    only = evaluate(engine, store, out, T2, first.staged.state, "j2", {"was_us": 'inSegment("us")'})
    assert only.qualified == {"was_us": 2}
    assert [r for r in current(out, only.staged.state) if r[0] == "ECID:a"] == [
        ("ECID:a", "buyer", "realized", T1), ("ECID:a", "us", "realized", T1), ("ECID:a", "us_buyer", "realized", T1),
        ("ECID:a", "was_us", "realized", T2),
    ]


def test_staged_files_stay_hidden_until_published_and_vanish_if_never_published(tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "membership"
    write_store(store, {"ECID:a": "US", "ECID:b": "US", "Email:c": "FR"})
    parsed = [("us", parse(SEGMENTS["us"]))]
    evaluation = evaluate_store(DuckDBEngine(threads=1), store, parsed, T1, membership.MembershipStore(out), None, "j1")
    staged = [f.path for f in evaluation.staged.files()]
    assert all(path.is_file() for path in staged) and len(staged) == 4
    assert not list(out.rglob("*.parquet")) and not list(out.rglob("*.json"))
    del evaluation
    gc.collect()
    assert not any(path.exists() for path in staged) and not list(out.rglob("*.partial"))


def test_each_segment_reports_the_time_and_rows_of_its_part_of_the_plan(engine: Engine, tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "membership"
    write_store(store, {"ECID:a": "US", "ECID:b": "US", "Email:c": "FR"})
    cost = evaluate(engine, store, out, T1, None, "j1").cost
    assert list(cost) == ["us", "buyer", "us_buyer"]
    # "buyer" alone reads the events scan of its 7-day window; all three share the final stage.
    assert [s["name"] for s in cost["us"]["stages"]] == ["segments"]
    assert [s["name"] for s in cost["buyer"]["stages"]] == ["ev", "segments"]
    scan, final = cost["buyer"]["stages"]
    reports_scans = isinstance(engine, DuckDBEngine)
    # The scan reads the two events of the window (the one of 2024-06-10 falls outside it: the window
    # is pushed into the Parquet scan) and yields one row per profile that has some.
    assert scan == {"name": "ev", "relation": "events", "seconds": scan["seconds"], "rows": 2,
                    "rowsScanned": 2 if reports_scans else None, "sharedBy": 1}
    assert final == {"name": "segments", "relation": "profiles", "seconds": final["seconds"], "rows": 3,
                     "rowsScanned": final["rowsScanned"], "sharedBy": 3}
    assert scan["seconds"] > 0 and final["seconds"] > 0
    assert cost["us"]["seconds"] == pytest.approx(final["seconds"] / 3, abs=1e-5)
    assert cost["buyer"]["seconds"] == pytest.approx(scan["seconds"] + final["seconds"] / 3, abs=1e-5)
    assert sum(c["seconds"] for c in cost.values()) == pytest.approx(scan["seconds"] + final["seconds"], abs=1e-5)
    if reports_scans:
        # The final stage reads the 3 profiles and the scan's 2 rows; its rows are split 2/2/1.
        assert final["rowsScanned"] == 5
        assert [c["rowsScanned"] for c in cost.values()] == [2, 2 + 2, 1]
    else:
        assert final["rowsScanned"] is None and all(c["rowsScanned"] is None for c in cost.values())
    assert {s: (c["derivedColumns"], c["sharedDerivedColumns"]) for s, c in cost.items()} == {
        "us": (0, 0), "buyer": (1, 0), "us_buyer": (0, 0)}


def test_progress_is_told_after_each_stage_the_diff_and_the_files(engine: Engine, tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "membership"
    write_store(store, {"ECID:a": "US", "ECID:b": "US", "Email:c": "FR"})
    steps: list[tuple[str, int, int]] = []
    parsed = [(segment_id, parse(text)) for segment_id, text in SEGMENTS.items()]
    evaluate_store(engine, store, parsed, T1, membership.MembershipStore(out), None, "j1",
                   progress=lambda *step: steps.append(step))
    assert steps == [("ev", 1, 4), ("segments", 2, 4), ("membership", 3, 4), ("files", 4, 4)]
