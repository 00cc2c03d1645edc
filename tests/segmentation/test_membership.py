"""The membership store: realized → existing → exited across jobs, segments outside a job kept,
per-profile writes, retention, and the batch diff and the per-profile path both held to the one rule."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openseg.engines.duckdb import DuckDBEngine
from openseg.segmentation import membership
from openseg.segmentation.membership import MembershipStore, PairState, State, transition

T1, T2, T3 = (datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3))


def run_job(store: MembershipStore, previous: State | None, qualifies: Mapping[str, set[str]],
            segments: list[str], at: datetime, job: str) -> tuple[State, dict[str, dict[str, int]]]:
    """A job over ``segments`` in which the profile ``p`` qualifies for ``qualifies[p]``, published."""
    profiles = sorted(qualifies)
    columns = {segment_id: f"c{index}" for index, segment_id in enumerate(segments)}
    result = pa.table({"_profile_id": pa.array(profiles, pa.string()),
                       **{column: pa.array([s in qualifies[p] for p in profiles], pa.bool_())
                          for s, column in columns.items()}})
    with DuckDBEngine(threads=1).workspace() as workspace:
        differ = membership.MembershipDiffer(workspace, store, previous, segments, job)
        workspace.register("result", result)
        workspace.define(membership.QUALIFIED,
                         membership.qualified_from_columns("result", columns, differ.bits, differ.words))
        counts = differ.diff(at, {s: sum(s in q for q in qualifies.values()) for s in segments})
        staged = differ.stage(job)
    membership.publish(staged)
    return staged.state, counts


def long_form(store: MembershipStore, state: State | None) -> dict[tuple[str, str], tuple[str, datetime]]:
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        store.register_long_form(con, state, "m")
        return {(p, s): (status, at) for p, s, status, at in con.sql("SELECT * FROM m").fetchall()}


def history(store: MembershipStore, jobs: list[str]) -> list[tuple[str, str, str, datetime]]:
    found = store.history(jobs)
    if found is None:
        return []
    query, tables = found
    rows = DuckDBEngine(threads=1).run(query, tables).to_pylist()
    return sorted((r["_profile_id"], r["segment_id"], r["event"], r["at"]) for r in rows)


def test_realized_existing_exited_across_three_jobs(tmp_path: Path) -> None:
    store = MembershipStore(tmp_path)
    first, counts = run_job(store, None, {"a": {"S"}, "b": {"S"}, "c": set()}, ["S"], T1, "j1")
    assert counts == {"S": {"realized": 2, "existing": 0, "exited": 0}}
    assert long_form(store, first) == {("a", "S"): ("realized", T1), ("b", "S"): ("realized", T1)}
    second, counts = run_job(store, first, {"a": {"S"}, "b": set(), "c": {"S"}}, ["S"], T2, "j2")
    assert counts == {"S": {"realized": 1, "existing": 1, "exited": 1}}
    assert long_form(store, second) == {("a", "S"): ("existing", T2), ("b", "S"): ("exited", T2),
                                        ("c", "S"): ("realized", T2)}
    third, counts = run_job(store, second, {"a": set(), "b": set(), "c": {"S"}}, ["S"], T3, "j3")
    # b left in job 2: it stays exited with the time it left, and is not counted as leaving again.
    assert counts == {"S": {"realized": 0, "existing": 1, "exited": 1}}
    assert long_form(store, third) == {("a", "S"): ("exited", T3), ("b", "S"): ("exited", T2),
                                       ("c", "S"): ("existing", T3)}
    assert history(store, ["j1", "j2", "j3"]) == [
        ("a", "S", "entered", T1), ("a", "S", "exited", T3), ("b", "S", "entered", T1), ("b", "S", "exited", T2),
        ("c", "S", "entered", T2)]
    # Only jobs that succeeded count.
    assert history(store, ["j1"]) == [("a", "S", "entered", T1), ("b", "S", "entered", T1)]
    # A profile lookup reads the same.
    assert store.lookup(third, ["b", "c", "z"]) == {
        "b": {"S": PairState("exited", T2)}, "c": {"S": PairState("existing", T3)}, "z": {}}


def test_segments_outside_the_job_are_kept(tmp_path: Path) -> None:
    store = MembershipStore(tmp_path)
    first, _ = run_job(store, None, {"a": {"S"}, "b": {"T"}, "c": set()}, ["S", "T"], T1, "j1")
    second, _ = run_job(store, first, {"a": set(), "b": set(), "c": {"S"}}, ["S"], T2, "j2")
    assert long_form(store, second) == {("a", "S"): ("exited", T2), ("c", "S"): ("realized", T2),
                                        ("b", "T"): ("realized", T1)}
    # Bits never move: S and T keep theirs, a new segment gets the next one.
    third, _ = run_job(store, second, {"a": {"U"}}, ["U"], T3, "j3")
    assert {s: b.bit for s, b in third.segments.items()} == {"S": 0, "T": 1, "U": 2}


def test_a_snapshot_holds_one_row_per_member_profile_and_unchanged_rows_cost_no_history(tmp_path: Path) -> None:
    store = MembershipStore(tmp_path)
    everyone = {f"p{i}": {"S", "T"} for i in range(5)} | {"q": set()}
    first, _ = run_job(store, None, everyone, ["S", "T"], T1, "j1")
    _, counts = run_job(store, first, everyone, ["S", "T"], T2, "j2")
    assert counts == {s: {"realized": 0, "existing": 5, "exited": 0} for s in ("S", "T")}
    assert pq.read_table(tmp_path / "snapshots" / "j2.parquet").num_rows == 5
    assert pq.read_table(tmp_path / "history" / "j2.parquet").num_rows == 0
    assert pq.read_table(tmp_path / "pairs" / "j2.parquet").num_rows == 0


def test_per_profile_writes_are_seen_by_lookups_history_and_the_next_job(tmp_path: Path) -> None:
    store = MembershipStore(tmp_path)
    first, _ = run_job(store, None, {"a": {"S"}, "b": set()}, ["S"], T1, "j1")
    at = T1 + timedelta(hours=1)
    written = store.apply(first, {"a": {"S": False}, "b": {"S": True, "T": True}}, at)
    assert sorted((r["_profile_id"], r["segment_id"], r["status"], r["event"]) for r in written) == [
        ("a", "S", "exited", "exited"), ("b", "S", "realized", "entered"), ("b", "T", "realized", "entered")]
    assert store.lookup(first, ["a", "b"]) == {
        "a": {"S": PairState("exited", at)}, "b": {"S": PairState("realized", at), "T": PairState("realized", at)}}
    assert long_form(store, first) == {("a", "S"): ("exited", at), ("b", "S"): ("realized", at),
                                       ("b", "T"): ("realized", at)}
    assert ("b", "T", "entered", at) in history(store, ["j1"])
    # The next job diffs against the membership with those writes folded in: b stays in S (existing),
    # a re-enters; T, outside the job, keeps b's per-profile state.
    second, counts = run_job(store, first, {"a": {"S"}, "b": {"S"}}, ["S"], T2, "j2")
    assert counts == {"S": {"realized": 1, "existing": 1, "exited": 0}}
    assert long_form(store, second) == {("a", "S"): ("realized", T2), ("b", "S"): ("existing", T2),
                                        ("b", "T"): ("realized", at)}
    assert store.changes(second) == []


def test_retention_keeps_the_newest_snapshots_and_all_history(tmp_path: Path) -> None:
    store = MembershipStore(tmp_path)
    state = None
    for day in range(1, 6):
        at = datetime(2026, 1, day, tzinfo=UTC)
        state, _ = run_job(store, state, {"a": {"S"} if day % 2 else set()}, ["S"], at, f"j{day}")
        store.prune(state, keep=2)
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == ["j4.parquet", "j5.parquet"]
    assert sorted(p.name for p in (tmp_path / "states").iterdir()) == ["j4.json", "j5.json"]
    assert len(history(store, [f"j{d}" for d in range(1, 6)])) == 5


def test_long_form_membership_of_older_stores_is_imported_exactly(tmp_path: Path) -> None:
    table = pa.table({
        "_profile_id": ["a", "a", "b", "c"], "segment_id": ["S", "T", "S", "S"],
        "status": ["existing", "realized", "exited", "realized"],
        "lastQualificationTime": pa.array([T2, T1, T1, T3], pa.timestamp("us", tz="UTC"))})
    legacy = tmp_path / "old.parquet"
    pq.write_table(table, legacy)
    store = MembershipStore(tmp_path / "m")
    state = store.state(str(legacy))
    assert long_form(store, state) == {("a", "S"): ("existing", T2), ("a", "T"): ("realized", T1),
                                       ("b", "S"): ("exited", T1), ("c", "S"): ("realized", T3)}


# ----------------------------------------------------------------------- the one rule, property-tested

PROFILES = ["p0", "p1", "p2", "p3"]
SEGMENTS = ["S0", "S1", "S2"]

job_step = st.tuples(st.just("job"), st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3, unique=True),
                     st.dictionaries(st.sampled_from(PROFILES), st.sets(st.sampled_from(SEGMENTS))))
profile_step = st.tuples(st.just("profile"), st.just([]), st.dictionaries(
    st.sampled_from(PROFILES), st.dictionaries(st.sampled_from(SEGMENTS), st.booleans(), min_size=1),
    min_size=1, max_size=2))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(job_step, profile_step), min_size=1, max_size=6))
def test_batch_and_per_profile_writes_follow_the_rule(steps: list[tuple[str, list[str], dict]]) -> None:  # type: ignore[type-arg]
    model: dict[tuple[str, str], PairState] = {}
    events: list[tuple[str, str, str, datetime]] = []
    jobs: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        store = MembershipStore(Path(folder))
        state: State | None = None
        for index, (kind, segments, data) in enumerate(steps):
            at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=index)
            if kind == "job":
                # Profiles present in the store are the ones listed; the others are gone (they qualify for nothing).
                evaluations = {p: {s: s in data.get(p, set()) for s in segments} for p in PROFILES}
                state, counts = run_job(store, state, {p: set(q) for p, q in data.items()}, segments, at, f"j{index}")
                jobs.append(f"j{index}")
            else:
                evaluations = data
                store.apply(state, data, at)
            moved: dict[str, dict[str, int]] = {}
            for profile_id, segment_results in evaluations.items():
                for segment_id, qualifies in segment_results.items():
                    outcome = transition(model.get((profile_id, segment_id)), qualifies, at)
                    if outcome.state is not None:
                        model[(profile_id, segment_id)] = outcome.state
                    if outcome.event is not None:
                        events.append((profile_id, segment_id, outcome.event, at))
                        tally = moved.setdefault(segment_id, {"entered": 0, "exited": 0})
                        tally[outcome.event] += 1
            if kind == "job":
                for segment_id in segments:
                    members = sum(1 for (p, s), pair in model.items() if s == segment_id and pair.is_in)
                    entered = moved.get(segment_id, {}).get("entered", 0)
                    assert counts[segment_id] == {"realized": entered, "existing": members - entered,
                                                  "exited": moved.get(segment_id, {}).get("exited", 0)}
            expected = {key: (pair.status, pair.last_qualification_time) for key, pair in model.items()}
            assert long_form(store, state) == expected
            looked_up = store.lookup(state, PROFILES)
            assert {(p, s): (pair.status, pair.last_qualification_time)
                    for p, segments_of in looked_up.items() for s, pair in segments_of.items()} == expected
            assert history(store, jobs) == sorted(events)


def test_concurrent_lookups_all_answer(tmp_path: Path) -> None:
    # Requests look profiles up from many threads at once; each must read its own rows (an open file shared
    # between threads once failed with "ReadRangeCache did not find matching cache entry").
    from concurrent.futures import ThreadPoolExecutor

    store = MembershipStore(tmp_path)
    profiles = {f"p{n:05d}": ({"S"} if n % 3 else set()) for n in range(40_000)}
    state, _ = run_job(store, None, profiles, ["S"], T1, "j1")
    wanted = [f"p{(n * 7919) % 40_000:05d}" for n in range(2_000)]
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda p: store.lookup(state, [p])[p], wanted))
    assert found == [({"S": PairState("realized", T1)} if int(p[1:]) % 3 else {}) for p in wanted]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.integers(0, 30), st.sampled_from(["s1", "s2"]), st.sampled_from(["realized", "exited"])),
                     max_size=60),
       wanted=st.lists(st.integers(0, 35), max_size=12), in_write_order=st.booleans())
def test_a_small_membership_file_kept_whole_answers_as_its_row_groups_do(
        rows: list[tuple[int, str, str]], wanted: list[int], in_write_order: bool) -> None:
    from openseg.segmentation.membership import store as store_module

    table = pa.table({"_profile_id": [f"p{p:02d}" for p, _, _ in rows], "segment_id": [s for _, s, _ in rows],
                      "status": [status for _, _, status in rows], "seq": list(range(len(rows))),
                      "lastQualificationTime": pa.array([T1 + timedelta(seconds=p) for p, _, _ in rows],
                                                        pa.timestamp("us", tz="UTC"))})
    if not in_write_order:  # as the store writes them: by profile, each profile's rows in the order written
        table = table.sort_by([("_profile_id", "ascending"), ("seq", "ascending")])
    ids = [f"p{p:02d}" for p in wanted]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "000000000001.parquet"
        pq.write_table(table, path, row_group_size=7)
        kept = store_module.rows_of(path, ids)
        try:
            store_module.SMALL_FILE_ROWS, small = -1, store_module.SMALL_FILE_ROWS
            decoded = store_module.rows_of(path, ids)
        finally:
            store_module.SMALL_FILE_ROWS = small
        expected = sorted((row for row in table.to_pylist() if row["_profile_id"] in set(ids)), key=lambda r: r["seq"])
        assert sorted(kept, key=lambda r: r["seq"]) == sorted(decoded, key=lambda r: r["seq"]) == expected
        # Each profile's rows in the file's order (later writes win).
        for profile_id in set(ids):
            assert [r["seq"] for r in kept if r["_profile_id"] == profile_id] == \
                   [r["seq"] for r in expected if r["_profile_id"] == profile_id]
        # A new version of the file under the same name is read anew.
        pq.write_table(table.slice(0, len(rows) // 2), path)
        assert sorted(store_module.rows_of(path, ids), key=lambda r: r["seq"]) == sorted(
            (row for row in table.slice(0, len(rows) // 2).to_pylist() if row["_profile_id"] in set(ids)),
            key=lambda r: r["seq"])


def test_the_kept_rows_of_small_membership_files_leave_the_garbage_collectors_walks(tmp_path: Path) -> None:
    # A streaming process keeps 100,000 profiles' rows of change files: each full collection walked them all,
    # 20-30 ms of CPU every second at 1M profiles (openseg.heap's module docstring has how that was timed).
    import gc

    from openseg.segmentation.membership import store as store_module

    ids = [f"p{n:05d}" for n in range(5_000)]
    table = pa.table({"_profile_id": ids, "segment_id": ["s1"] * len(ids), "status": ["realized"] * len(ids),
                      "lastQualificationTime": pa.array([T1] * len(ids), pa.timestamp("us", tz="UTC")),
                      "seq": list(range(len(ids)))})
    path = tmp_path / "000000000001.parquet"
    pq.write_table(table, path)
    assert len(store_module.rows_of(path, ids)) == len(ids)
    gc.collect()
    kept = store_module._small_files.kept(path, path.stat())
    assert kept is not None and len(kept.runs) == len(ids)
    assert sum(gc.is_tracked(rows) for rows in kept.runs.values()) == 0
    assert sorted(store_module.rows_of(path, ids[:2]), key=lambda row: row["seq"]) == table.slice(0, 2).to_pylist()


def test_a_larger_membership_file_is_not_read_for_profiles_it_does_not_hold(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from openseg.segmentation.membership import store as store_module

    monkeypatch.setattr(store_module, "SMALL_FILE_ROWS", 10)  # 40 rows: read by row groups, its ids kept
    reads: list[list[str]] = []
    matching = store_module.matching_rows
    monkeypatch.setattr(store_module, "matching_rows", lambda path, key, ids, *args, **kwargs: (
        reads.append(list(ids)), matching(path, key, ids, *args, **kwargs))[1])
    ids = [f"p{n:02d}" for n in range(0, 80, 2)]
    table = pa.table({"_profile_id": ids, "segment_id": ["s1"] * len(ids), "status": ["realized"] * len(ids),
                      "lastQualificationTime": pa.array([T1] * len(ids), pa.timestamp("us", tz="UTC")),
                      "seq": list(range(len(ids)))})
    path = tmp_path / "000000000001-000000000008.parquet"
    pq.write_table(table, path, row_group_size=8)
    assert store_module.rows_of(path, ["p01", "p03", "p79"]) == [] and reads == []  # none of them: nothing read
    assert store_module.rows_of(path, ["p01", "p04", "p78"]) == [table.slice(2, 1).to_pylist()[0],
                                                                 table.slice(39, 1).to_pylist()[0]]
    assert reads == [["p04", "p78"]]  # only the profiles it holds are looked up
    # A new version of the file under the same name has its ids read anew.
    pq.write_table(table.slice(0, 20).set_column(0, "_profile_id", pa.array([f"p{n:02d}" for n in range(1, 41, 2)])),
                   path, row_group_size=8)
    assert [row["_profile_id"] for row in store_module.rows_of(path, ["p01", "p04"])] == ["p01"]
