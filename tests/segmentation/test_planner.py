"""The one-pass planner: shared derived columns, one events scan, pruning, segment-of-segments order."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from sqlglot import exp

from openseg.engines.duckdb import DuckDBEngine
from openseg.pql import parse
from openseg.segmentation.membership import relation_from_long_form
from openseg.segmentation.planner import PUSHED_FILTERS, SPLIT_WINDOWS, PlanError, plan_segments

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
RELATION, MEMBERSHIP = relation_from_long_form(pa.table({
    "_profile_id": ["c"], "segment_id": ["old"], "status": ["existing"],
    "lastQualificationTime": pa.array([AS_OF], pa.timestamp("us", tz="UTC"))}))


def segments(**texts: str) -> list[tuple[str, object]]:
    return [(segment_id, parse(text)) for segment_id, text in texts.items()]


def run(plan_segments_args: list[tuple[str, object]], membership: bool = True) -> dict[str, set[str]]:
    plan = plan_segments(plan_segments_args, AS_OF, "duckdb", membership=RELATION if membership else None)  # type: ignore[arg-type]
    tables = {"profiles": PROFILES, "events": EVENTS, **({"membership": MEMBERSHIP} if membership else {})}
    rows = DuckDBEngine(threads=1).run(plan.query, tables).to_pylist()
    return {s: {r["_profile_id"] for r in rows if r[plan.columns[s]]} for s, _ in plan_segments_args}


def scans(plan_query: exp.Expression, table: str) -> int:
    return sum(1 for t in plan_query.find_all(exp.Table) if t.name == table)


def test_identical_aggregates_are_computed_once() -> None:
    texts = dict(
        recent='xEvent[eventType = "buy" and timestamp occurs <= 7 days before now].count() > 0',
        twice='xEvent[eventType = "buy" and timestamp occurs <= 7 days before now].count() >= 2',
        any_buy='exists E from xEvent where E.eventType = "buy"',
        us='homeAddress.country = "US"',
    )
    for dialect, event_scans in (("duckdb", 2), ("spark", 1)):
        plan = plan_segments(segments(**texts), AS_OF, dialect)
        assert plan.derived["recent"] == plan.derived["twice"]
        assert plan.derived["us"] == ()
        assert len(plan.derived_columns) == 2
        # DuckDB gets one grouped scan per distinct window (engine-pitfalls.md), Spark one for all.
        assert scans(plan.query, "events") == event_scans
        assert scans(plan.query, "profiles") == 1
        assert plan.relations == frozenset({"profiles", "events"})


def _scan_sql(plan_query: exp.Expression) -> dict[str, str]:
    return {cte.alias: cte.this.sql("duckdb") for cte in plan_query.find_all(exp.CTE) if cte.alias.startswith("ev")}


def test_events_scan_is_pruned_to_the_windows() -> None:
    texts = dict(
        week='xEvent[eventType = "buy" and timestamp occurs <= 7 days before now].count() > 0',
        month='xEvent[eventType = "view" and timestamp occurs this month].count() > 0',
    )
    shared = plan_segments(segments(**texts), AS_OF, "spark").query.find(exp.CTE).this
    where = shared.args["where"].this.sql("duckdb")
    assert where == (
        "(\"e\".\"timestamp\" >= CAST('2024-06-01 00:00:00.000000' AS TIMESTAMP) "
        "AND \"e\".\"timestamp\" <= CAST('2024-07-01 00:00:00.000000' AS TIMESTAMP)) AND "
        "((e.\"eventType\" = 'buy' AND e.\"timestamp\" >= CAST('2024-06-08 12:00:00.000000' AS TIMESTAMP) "
        "AND e.\"timestamp\" <= CAST('2024-06-15 12:00:00.000000' AS TIMESTAMP)) "
        "OR (e.\"eventType\" = 'view' AND e.\"timestamp\" >= CAST('2024-06-01 00:00:00.000000' AS TIMESTAMP) "
        "AND e.\"timestamp\" < CAST('2024-07-01 00:00:00.000000' AS TIMESTAMP)))"
    )
    split = _scan_sql(plan_segments(segments(**texts), AS_OF, "duckdb").query)
    assert len(split) == 2
    week = next(sql for sql in split.values() if "'buy'" in sql)
    # The scan's WHERE holds the window, so the aggregate's FILTER only tests the event type.
    assert "COUNT(*) FILTER(WHERE e.\"eventType\" = 'buy')" in week
    assert "WHERE (\"e\".\"timestamp\" >= CAST('2024-06-08 12:00:00.000000' AS TIMESTAMP) AND " in week
    assert "COALESCE" not in week


def test_a_window_without_other_filter_counts_every_row_of_its_scan() -> None:
    plan = plan_segments(segments(week="xEvent[timestamp occurs <= 7 days before now].count() > 2"), AS_OF)
    (scan,) = _scan_sql(plan.query).values()
    assert "FILTER" not in scan and "COUNT(*) AS" in scan
    result = run(segments(week="xEvent[timestamp occurs <= 7 days before now].count() > 1"))
    assert result == {"week": {"b"}}


def test_many_filters_are_not_or_ed_into_the_scan() -> None:
    texts = {f"t{i}": f'xEvent[eventType = "type{i}" and timestamp occurs <= 7 days before now].count() > 0'
             for i in range(PUSHED_FILTERS + 1)}
    (scan,) = _scan_sql(plan_segments(segments(**texts), AS_OF).query).values()
    assert " OR " not in scan
    (few,) = _scan_sql(plan_segments(segments(**dict(list(texts.items())[:PUSHED_FILTERS])), AS_OF).query).values()
    assert few.count(" OR ") == PUSHED_FILTERS - 1


def test_split_and_shared_scans_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = dict(
        week='xEvent[eventType = "buy" and timestamp occurs <= 7 days before now].count() > 0',
        ever='xEvent[eventType = "buy"].count() >= 2',
        views='xEvent[eventType = "view" and timestamp occurs <= 10 days before now].count() = 1',
        quiet='not (xEvent[timestamp occurs <= 2 days before now].count() > 0)',
    )
    split = run(segments(**texts))
    monkeypatch.setitem(SPLIT_WINDOWS, "duckdb", False)
    assert run(segments(**texts)) == split == {"week": {"a", "b"}, "ever": {"a"}, "views": {"b"}, "quiet": {"b", "c"}}


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
    plan = plan_segments(segments(was_old='inSegment("old")'), AS_OF)
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


def test_later_chain_steps_are_bounded_by_the_first_steps_window() -> None:
    chain = ('chain(xEvent, timestamp, [C0: WHAT(eventType = "view") WHEN(<= 7 days before now), '
             'C1: WHAT(eventType = "buy") WHEN(<= 3 days after C0)])')
    plan = plan_segments(segments(seq=chain), AS_OF)
    sql = plan.sql("duckdb")
    # Implied by C1 > C0 >= now - 7 days, and lets the engine prune C1's events scan.
    assert "s1.\"timestamp\" >= CAST('2024-06-08 12:00:00.000000' AS TIMESTAMP)" in sql
    assert run(segments(seq=chain)) == {"seq": {"b"}}


def test_column_names_never_carry_segment_ids() -> None:
    plan = plan_segments(segments(**{"x\"; DROP TABLE profiles; --": 'homeAddress.country = "US"'}), AS_OF)
    assert list(plan.columns.values()) == ["seg_0"]
    assert "DROP" not in plan.sql("duckdb")


def _scan_wheres(plan_args: list[tuple[str, object]]) -> list[str]:
    plan = plan_segments(plan_args, AS_OF, "duckdb")  # type: ignore[arg-type]
    return [cte.this.args["where"].sql("duckdb") for cte in plan.query.find_all(exp.CTE)
            if cte.alias.startswith("ev") and cte.this.args.get("where") is not None]


def test_profile_only_predicates_are_pushed_before_event_scans() -> None:
    gated = segments(us_buyers='homeAddress.country = "US" and xEvent[eventType = "buy"].count() >= 1',
                     fr_buyers='homeAddress.country = "FR" and xEvent[eventType = "buy"].count() >= 1')
    (where,) = _scan_wheres(gated)
    assert "IN (SELECT p._profile_id FROM profiles AS p WHERE" in where
    assert "'US'" in where and "'FR'" in where  # the OR of both consumers' gates
    assert run(gated) == {"us_buyers": {"a"}, "fr_buyers": {"b"}}


def test_a_consumer_without_a_gate_keeps_the_scan_whole() -> None:
    mixed = segments(us_buyers='homeAddress.country = "US" and xEvent[eventType = "buy"].count() >= 1',
                     buyers='xEvent[eventType = "buy"].count() >= 1',
                     not_us='not (homeAddress.country = "US") or xEvent[eventType = "buy"].count() >= 1')
    assert all("IN (SELECT" not in where for where in _scan_wheres(mixed))
    assert run(mixed) == {"us_buyers": {"a"}, "buyers": {"a", "b"}, "not_us": {"a", "b", "c"}}


def test_an_event_field_compared_with_a_profile_field_gets_its_own_joined_scan() -> None:
    profiles = PROFILES.append_column("likes", pa.array([{"eventType": "view"}, {"eventType": "buy"}, None]))
    texts = segments(likes_what_they_did='exists E from xEvent where E.eventType = likes.eventType',
                     gated_us='homeAddress.country = "US" and xEvent[eventType != ^likes.eventType].count() >= 2',
                     buyer='xEvent[eventType = "buy"].count() >= 1')
    for dialect in ("duckdb", "spark"):
        plan = plan_segments(texts, AS_OF, dialect)
        joined = [stage for stage in plan.stages if scans(stage.query, "profiles") >= 1]
        assert [stage.consumers for stage in joined] == [("likes_what_they_did", "gated_us")]
        assert [stage.consumers for stage in plan.stages if stage not in joined] == [("buyer",)]
    plan = plan_segments(texts, AS_OF, "duckdb")
    rows = DuckDBEngine(threads=1).run(plan.query, {"profiles": profiles, "events": EVENTS}).to_pylist()
    members = {s: {r["_profile_id"] for r in rows if r[plan.columns[s]]} for s, _ in texts}
    assert members == {"likes_what_they_did": {"b"}, "gated_us": {"a"}, "buyer": {"a", "b"}}
