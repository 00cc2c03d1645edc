"""Membership diffs: realized → existing → exited across runs, history of entries and exits."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from openseg.segmentation.membership import diff, qualified_pairs

T1, T2, T3 = (datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3))


def _result(**columns: list[bool]) -> pa.Table:
    return pa.table({"_profile_id": ["a", "b", "c"], **columns})


def _statuses(table: pa.Table) -> dict[tuple[str, str], str]:
    return {(r["_profile_id"], r["segment_id"]): r["status"] for r in table.to_pylist()}


def test_realized_existing_exited_across_three_runs() -> None:
    first = diff(None, qualified_pairs(_result(s=[True, True, False]), {"S": "s"}), ["S"], T1, "j1")
    assert _statuses(first.current) == {("a", "S"): "realized", ("b", "S"): "realized"}
    assert first.counts == {"S": {"realized": 2, "existing": 0, "exited": 0}}
    second = diff(first.current, qualified_pairs(_result(s=[True, False, True]), {"S": "s"}), ["S"], T2, "j2")
    assert _statuses(second.current) == {("a", "S"): "existing", ("b", "S"): "exited", ("c", "S"): "realized"}
    assert second.counts == {"S": {"realized": 1, "existing": 1, "exited": 1}}
    assert [(r["_profile_id"], r["event"], r["at"], r["job_id"]) for r in second.history.to_pylist()] == [
        ("b", "exited", T2, "j2"), ("c", "entered", T2, "j2")]
    third = diff(second.current, qualified_pairs(_result(s=[False, False, True]), {"S": "s"}), ["S"], T3, "j3")
    assert _statuses(third.current) == {("a", "S"): "exited", ("b", "S"): "exited", ("c", "S"): "existing"}
    # b left in run 2: it stays exited with the time it left, and is not counted as leaving again.
    assert third.counts == {"S": {"realized": 0, "existing": 1, "exited": 1}}
    times = {r["_profile_id"]: r["lastQualificationTime"] for r in third.current.to_pylist()}
    assert times == {"a": T3, "b": T2, "c": T3}


def test_segments_outside_the_job_are_kept() -> None:
    first = diff(None, qualified_pairs(_result(s=[True, False, False], t=[False, True, False]),
                                       {"S": "s", "T": "t"}), ["S", "T"], T1, "j1")
    second = diff(first.current, qualified_pairs(_result(s=[False, False, True]), {"S": "s"}), ["S"], T2, "j2")
    assert _statuses(second.current) == {("a", "S"): "exited", ("c", "S"): "realized", ("b", "T"): "realized"}


def test_nulls_do_not_qualify() -> None:
    pairs = qualified_pairs(pa.table({"_profile_id": ["a", "b"], "s": pa.array([None, True], pa.bool_())}),
                            {"S": "s"})
    assert pairs.to_pylist() == [{"segment_id": "S", "_profile_id": "b"}]
