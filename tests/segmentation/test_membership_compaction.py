"""Compaction of the per-profile change files: however many writes stream in, a lookup reads a few files, and
every read (lookups, the long form, history, log positions, the next job's fold) answers as without it, also
while readers race the compactions."""

from __future__ import annotations

import random
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openseg.engines.duckdb import DuckDBEngine
from openseg.segmentation.membership import LogPosition, MembershipStore, PairState, State, transition
from tests.segmentation.test_membership import history, long_form, run_job

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def files(store: MembershipStore) -> list[str]:
    """The change files on disk."""
    return sorted(p.name for p in (store.root / "changes").glob("*.parquet"))


class Model:
    """The rule applied pair by pair: what every read of the store must answer."""

    def __init__(self) -> None:
        self.pairs: dict[str, dict[str, PairState]] = {}
        self.events: list[tuple[str, str, str, datetime]] = []

    def apply(self, evaluations: dict[str, dict[str, bool]], at: datetime) -> None:
        for profile_id, segments in evaluations.items():
            for segment_id, qualifies in segments.items():
                moved = transition(self.pairs.get(profile_id, {}).get(segment_id), qualifies, at)
                if moved.state is not None:
                    self.pairs.setdefault(profile_id, {})[segment_id] = moved.state
                if moved.event is not None:
                    self.events.append((profile_id, segment_id, moved.event, at))

    def lookup(self, profile_ids: list[str]) -> dict[str, dict[str, PairState]]:
        return {p: dict(self.pairs.get(p, {})) for p in profile_ids}


def test_a_thousand_writes_leave_a_few_change_files_and_answer_as_the_rule_says(tmp_path: Path) -> None:
    store, model, chosen = MembershipStore(tmp_path), Model(), random.Random(7)
    profiles = [f"p{n}" for n in range(40)]
    for n in range(1_000):
        evaluations = {chosen.choice(profiles): {chosen.choice(["S", "T", "U"]): chosen.random() < 0.5}}
        at = T0 + timedelta(seconds=n)
        store.apply(None, evaluations, at, LogPosition("streamer", n, n + 1))
        model.apply(evaluations, at)
    # Eight files of one tier become one of the next: at most seven per tier, four tiers for 1,000 writes.
    assert len(files(store)) <= 28
    assert store.lookup(None, profiles) == model.lookup(profiles)
    assert history(store, []) == sorted(model.events)
    assert store.log_position("streamer") == LogPosition("streamer", 999, 1_000)
    # Numbering goes on after the last write, merged or not.
    store.apply(None, {"p0": {"V": True}}, T0 + timedelta(hours=1))
    assert max(int(name[-20:-8]) for name in files(store)) == 1_001


# -------------------------------------------- with and without compaction, through random jobs and writes

PROFILES = ["p0", "p1", "p2", "p3"]
SEGMENTS = ["S0", "S1", "S2"]
CONSUMERS = ["streamer", "edge"]

job_step = st.tuples(st.just("job"), st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3, unique=True),
                     st.dictionaries(st.sampled_from(PROFILES), st.sets(st.sampled_from(SEGMENTS))), st.none())
profile_step: st.SearchStrategy[tuple[str, list[str], dict[str, dict[str, bool]], str | None]] = st.tuples(
    st.just("profile"), st.just([]),
    st.dictionaries(st.sampled_from(PROFILES), st.dictionaries(st.sampled_from(SEGMENTS), st.booleans(), min_size=1),
                    max_size=2),
    st.one_of(st.none(), st.sampled_from(CONSUMERS)))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(job_step, profile_step, profile_step, profile_step), min_size=1, max_size=14))
def test_compacted_change_files_answer_every_read_as_the_files_they_replace(
        steps: list[tuple[str, list[str], dict, str | None]]) -> None:  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as folder:
        # Two files of a tier merge into one: compactions at almost every write, across the jobs' folds.
        compacted, plain = MembershipStore(Path(folder) / "compacted", fan_in=2), \
            MembershipStore(Path(folder) / "plain", fan_in=0)
        states: dict[MembershipStore, State | None] = {compacted: None, plain: None}
        jobs: list[str] = []
        log: dict[str, int] = {}
        for index, (kind, segments, data, consumer) in enumerate(steps):
            at = T0 + timedelta(hours=index)
            if kind == "job":
                counts = [run_job(store, states[store], {p: set(q) for p, q in data.items()}, segments, at,
                                  f"j{index}") for store in (compacted, plain)]
                states = {compacted: counts[0][0], plain: counts[1][0]}
                assert counts[0][1] == counts[1][1]
                jobs.append(f"j{index}")
            else:
                position = None
                if consumer is not None:
                    position = LogPosition(consumer, log.get(consumer, 0), log.get(consumer, 0) + index + 1)
                    log[consumer] = position.through
                written = [store.apply(states[store], data, at, position) for store in (compacted, plain)]
                assert written[0] == written[1]
            assert compacted.lookup(states[compacted], PROFILES) == plain.lookup(states[plain], PROFILES)
            assert long_form(compacted, states[compacted]) == long_form(plain, states[plain])
            assert history(compacted, jobs) == history(plain, jobs)
            for name in CONSUMERS:
                assert compacted.log_position(name) == plain.log_position(name)
            assert len(files(compacted)) <= len(files(plain))


def test_a_profile_whose_merged_rows_cross_row_groups_is_read_whole(tmp_path: Path) -> None:
    store = MembershipStore(tmp_path, fan_in=2)
    everyone = [f"p{n:05d}" for n in range(5_000)]
    store.apply(None, {p: {"S": True, "T": True} for p in everyone}, T0)
    store.apply(None, {p: {"S": False} for p in everyone}, T0 + timedelta(hours=1))
    [merged] = files(store)
    # Three rows per profile, by profile: p02730's first two end the first row group of 8,192, its last starts the second.
    assert pq.ParquetFile(tmp_path / "changes" / merged).metadata.num_row_groups == 2
    for profile_id in ("p02729", "p02730", "p02731"):
        assert store.lookup(None, [profile_id]) == {profile_id: {
            "S": PairState("exited", T0 + timedelta(hours=1)), "T": PairState("realized", T0)}}


def test_no_compaction_while_a_job_runs_and_the_next_write_catches_up(tmp_path: Path) -> None:
    store = MembershipStore(tmp_path)
    with store.job_lock():  # a segment job of this store, between listing the changes and publishing
        for n in range(20):
            store.apply(None, {"p0": {"S": n % 2 == 0}}, T0 + timedelta(minutes=n))
        assert len(files(store)) == 20
    store.apply(None, {"p0": {"S": True}}, T0 + timedelta(hours=1))
    assert len(files(store)) == 7  # 21 writes: two merged files of eight, five single ones
    assert store.lookup(None, ["p0"]) == {"p0": {"S": PairState("realized", T0 + timedelta(hours=1))}}


def test_a_reader_keeps_the_files_it_listed_until_it_is_done(tmp_path: Path) -> None:
    store = MembershipStore(tmp_path, fan_in=2)
    store.apply(None, {"p0": {"S": True}}, T0)
    with store.reading():
        found = store.history([])
        assert found is not None
        # Three more writes merge the first file into 000000000001-000000000002 and then 000000000001-000000000004.
        for n in range(1, 4):
            store.apply(None, {"p0": {"S": n % 2 == 0}}, T0 + timedelta(hours=n))
        # The history this reader listed is whole: the merged file has not taken it away.
        rows = DuckDBEngine(threads=1).run(*found).to_pylist()
        assert [(r["event"], r["at"]) for r in rows] == [("entered", T0)]
        assert "000000000001.parquet" in files(store)
    assert history(store, []) == sorted(("p0", "S", event, T0 + timedelta(hours=n))
                                        for n, event in enumerate(["entered", "exited", "entered", "exited"]))
    store.apply(None, {"p0": {"S": True}}, T0 + timedelta(hours=4))  # its compaction deletes what was merged
    assert files(store) == ["000000000001-000000000004.parquet", "000000000005.parquet"]


def test_readers_racing_compactions_never_fail_nor_miss_or_repeat_a_row(tmp_path: Path) -> None:
    store = MembershipStore(tmp_path, fan_in=2)
    profiles = ["p0", "p1", "p2"]
    model, chosen = Model(), random.Random(3)
    snapshots = [model.lookup(profiles)]  # what a reader may see: the store after some number of writes
    event_counts, positions = [0], [0]
    done = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for n in range(150):
                evaluations = {p: {"S": chosen.random() < 0.5, "T": chosen.random() < 0.5} for p in profiles}
                model.apply(evaluations, T0 + timedelta(minutes=n))
                snapshots.append(model.lookup(profiles))
                event_counts.append(len(model.events))
                positions.append(n + 1)
                store.apply(None, evaluations, T0 + timedelta(minutes=n), LogPosition("streamer", n, n + 1))
        finally:
            done.set()

    def read() -> None:
        engine = DuckDBEngine(threads=1)
        try:
            while not done.is_set():
                assert store.lookup(None, profiles) in snapshots
                with store.reading():
                    found = store.history([])
                    if found is not None:
                        assert engine.run(*found).num_rows in event_counts
                position = store.log_position("streamer")
                assert position is None or position.through in positions
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write), *(threading.Thread(target=read) for _ in range(3))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert store.lookup(None, profiles) == snapshots[-1]
    assert history(store, []) == sorted(model.events)
    store.compact()  # nobody reads now: whatever the readers held is deleted
    assert len(files(store)) <= 8


def test_jobs_folding_while_writes_stream_and_compact_keep_every_row(tmp_path: Path) -> None:
    store = MembershipStore(tmp_path, fan_in=2)
    profiles = [f"p{n}" for n in range(6)]
    # The published states: a streamer may still write with the one before the last (it read the pointer
    # before the last job published).
    published: list[State | None] = [None]
    written_events: list[int] = []
    done = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        chosen = random.Random(5)
        try:
            n = 0
            while not done.is_set():
                evaluations = {p: {"S": chosen.random() < 0.5, "T": chosen.random() < 0.5} for p in profiles}
                rows = store.apply(published[-1 - n % 2] if len(published) > 1 else published[-1], evaluations,
                                   T0 + timedelta(hours=1, seconds=n))
                written_events.append(sum(1 for row in rows if row["event"] is not None))
                n += 1
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    job_events, jobs, boundaries = 0, [], []
    try:
        for index in range(4):
            with store.job_lock():  # as a segment job holds it, from reading the membership to publishing
                qualifies = {p: {"S"} if (n + index) % 2 else set() for n, p in enumerate(profiles)}
                state, counts = run_job(store, published[-1], qualifies, ["S"], T0 + timedelta(days=index + 1),
                                        f"j{index}")
                published.append(state)
            jobs.append(f"j{index}")
            boundaries.append(state.changes_through)
            job_events += counts["S"]["realized"] + counts["S"]["exited"]
    finally:
        done.set()
        writer.join()
    assert failures == []
    final = published[-1]
    assert final is not None
    assert len(written_events) > 20  # writes ran all along the jobs
    # No change file straddles a state's boundary: each state folds a file whole or not at all.
    assert all(last <= through or int(path.stem.split("-")[0]) > through
               for through in boundaries for last, path in store.changes(None))
    looked_up = store.lookup(final, profiles)
    assert long_form(store, final) == {(p, s): (pair.status, pair.last_qualification_time)
                                       for p, pairs in looked_up.items() for s, pair in pairs.items()}
    assert len(history(store, jobs)) == job_events + sum(written_events)
