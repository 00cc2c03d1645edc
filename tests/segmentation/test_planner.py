"""The one-pass planner: shared derived columns, one events scan, pruning, segment-of-segments order."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from sqlglot import exp

from openseg.engines.duckdb import DuckDBEngine
from openseg.pql import parse
from openseg.segmentation.planner import PlanError, plan_segments

AS_OF = dt.datetime(2024, 6, 15, 12, tzinfo=dt.UTC)

PROFILES = pa.table({
    "_profile_id": ["a", "b", "c"],
    "homeAddress": pa.array([{"country": "US"}, {"country": "FR"}, None]),
})
EVENTS = pa.table({
    "_profile_id": ["a", "a", "b", "b"],
    "_id": ["a1", "a2", "b1", "b2"],
    "timestamp": pa.array([dt.datetime(2024, 6, 14), dt.datetime(2024, 1, 1), dt.datetime(2024, 6, 10),
                           dt.datetime(2024, 6, 12)], pa.timestamp("us")),
    "eventType": ["buy", "buy", "view", "buy"],
})
MEMBERSHIP = pa.table({"_profile_id": ["c"], "segment_id": ["old"], "status": ["existing"]})


def segments(**texts: str) -> list[tuple[str, object]]:
    return [(segment_id, parse(text)) for segment_id, text in texts.items()]


def run(plan_segments_args: list[tuple[str, object]], membership: bool = True) -> dict[str, set[str]]:
    plan = plan_segments(plan_segments_args, AS_OF, "duckdb", membership_available=membership)  # type: ignore[arg-type]
    tables = {"profiles": PROFILES, "events": EVENTS, **({"membership": MEMBERSHIP} if membership else {})}
    rows = DuckDBEngine(threads=1).run(plan.query, tables).to_pylist()
    return {s: {r["_profile_id"] for r in rows if r[plan.columns[s]]} for s, _ in plan_segments_args}


def scans(plan_query: exp.Expression, table: str) -> int:
    return sum(1 for t in plan_query.find_all(exp.Table) if t.name == table)


def test_identical_aggregates_are_computed_once_in_one_events_scan() -> None:
    plan = plan_segments(segments(
        recent='xEvent[eventType = "buy" and timestamp occurs <= 7 days before now].count() > 0',
        twice='xEvent[eventType = "buy" and timestamp occurs <= 7 days before now].count() >= 2',
        any_buy='exists E from xEvent where E.eventType = "buy"',
        us='homeAddress.country = "US"',
    ), AS_OF)
    assert plan.derived["recent"] == plan.derived["twice"]
    assert plan.derived["us"] == ()
    assert len(plan.derived_columns) == 2
    assert scans(plan.query, "events") == 1
    assert scans(plan.query, "profiles") == 1
    assert plan.relations == frozenset({"profiles", "events"})


def test_events_scan_is_pruned_to_the_windows() -> None:
    plan = plan_segments(segments(
        week='xEvent[eventType = "buy" and timestamp occurs <= 7 days before now].count() > 0',
        month='xEvent[eventType = "view" and timestamp occurs this month].count() > 0',
    ), AS_OF)
    scan = plan.query.find(exp.CTE).this
    where = scan.args["where"].this.sql("duckdb")
    assert where.startswith(
        "(\"e\".\"timestamp\" >= CAST('2024-06-01 00:00:00.000000' AS TIMESTAMP) "
        "AND \"e\".\"timestamp\" <= CAST('2024-07-01 00:00:00.000000' AS TIMESTAMP)) AND "
    )
    assert "'buy'" in where and "'view'" in where


def test_an_unfiltered_aggregate_disables_pruning() -> None:
    plan = plan_segments(segments(all_events="xEvent.count() > 1",
                                  week="xEvent[timestamp occurs <= 7 days before now].count() > 0"), AS_OF)
    assert plan.query.find(exp.CTE).this.args.get("where") is None


def test_results_on_a_tiny_store() -> None:
    result = run(segments(
        us='homeAddress.country = "US"',
        buyer='xEvent[eventType = "buy" and timestamp occurs <= 7 days before now].count() > 0',
        not_us='not (homeAddress.country = "US")',
        was_old="inSegment(\"old\")",
    ))
    assert result == {"us": {"a"}, "buyer": {"a", "b"}, "not_us": {"b", "c"}, "was_old": {"c"}}


def test_segments_of_segments_run_in_dependency_order() -> None:
    plan = plan_segments(segments(
        both='inSegment("us") and inSegment("buyer")',
        us='homeAddress.country = "US"',
        either='inSegment("both") or inSegment("old")',
        buyer='xEvent[eventType = "buy"].count() > 0',
    ), AS_OF)
    assert plan.order == ("us", "buyer", "both", "either")
    assert [c.alias for c in plan.query.find_all(exp.CTE) if c.alias.startswith("level")] == ["level0", "level1", "level2"]
    assert run(segments(
        both='inSegment("us") and inSegment("buyer")',
        us='homeAddress.country = "US"',
        either='inSegment("both") or inSegment("old")',
        buyer='xEvent[eventType = "buy"].count() > 0',
    )) == {"both": {"a"}, "us": {"a"}, "either": {"a", "c"}, "buyer": {"a", "b"}}


def test_a_cycle_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="inSegment references form a cycle among segments: x, y"):
        plan_segments(segments(x='inSegment("y")', y='inSegment("x") or homeAddress.country = "US"',
                               z='homeAddress.country = "FR"'), AS_OF)


def test_duplicate_and_missing_segments_are_plan_errors() -> None:
    with pytest.raises(PlanError, match="appears twice"):
        plan_segments([("a", parse("a = 1")), ("a", parse("a = 2"))], AS_OF)
    with pytest.raises(PlanError, match="at least one segment"):
        plan_segments([], AS_OF)


def test_without_membership_other_segments_are_empty() -> None:
    plan = plan_segments(segments(was_old='inSegment("old")'), AS_OF, membership_available=False)
    assert "membership" not in plan.relations
    assert run(segments(was_old='inSegment("old")', us='homeAddress.country = "US"'), membership=False) == {
        "was_old": set(), "us": {"a"},
    }


def test_chains_get_their_own_relation_and_share_keys() -> None:
    chain = 'chain(xEvent, timestamp, [C0: WHAT(eventType = "view"), C1: WHAT(eventType = "buy")])'
    plan = plan_segments(segments(seq=chain, seq_us=f'{chain} and homeAddress.country = "FR"'), AS_OF)
    assert plan.derived["seq"] == plan.derived["seq_us"]
    assert len(plan.derived_columns) == 1
    assert run(segments(seq=chain, seq_us=f'{chain} and homeAddress.country = "FR"')) == {"seq": {"b"}, "seq_us": {"b"}}


def test_column_names_never_carry_segment_ids() -> None:
    plan = plan_segments(segments(**{"x\"; DROP TABLE profiles; --": 'homeAddress.country = "US"'}), AS_OF)
    assert list(plan.columns.values()) == ["seg_0"]
    assert "DROP" not in plan.sql("duckdb")
