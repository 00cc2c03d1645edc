"""The plan rewrite rules (``pql.rewrites``): what each does to a small tree, and that none changes a result.

Each rule has a test on a tree compiled from a few segments. The differential tests then plan the corpus
with each rule alone, with all but one and with all of them (with shared and with split scans), and on
generated data a random handful of segments with a random subset of the rules, and compare the members
DuckDB finds with those of the plan without rules and of the Python evaluator.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from unittest import mock

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from openseg.engines.duckdb import DuckDBEngine
from openseg.pql import ast, parse, to_text
from openseg.pql.rewrites import (
    RULES,
    Options,
    Rule,
    Scan,
    ScanTree,
    hoist_aggregates,
    profile_conjuncts,
    prune_windows,
    push_profile_predicates,
    push_row_filters,
    rewrite,
    scan_tree,
)
from openseg.pql.rewrites.scans import distinct, same
from openseg.pql.to_sql import compile_expression
from openseg.segmentation.planner import SPLIT_WINDOWS, plan_segments
from tests.pql.datagen import AS_OF, Dataset, generate, load_corpus, membership_relation, python_members

SHARED = Options(split_windows=False, pushed_filters=8)
SPLIT = Options(split_windows=True, pushed_filters=8)
WEEK = "timestamp occurs <= 7 days before now"
WEEK_SQL = ("e.\"timestamp\" >= CAST('2024-06-08 12:00:00.000000' AS TIMESTAMP) "
            "AND e.\"timestamp\" <= CAST('2024-06-15 12:00:00.000000' AS TIMESTAMP)")


def tree_of(**texts: str) -> ScanTree:
    """The scan tree before any rule, for segments named by keyword, as the planner builds it."""
    derived = {}
    readers: dict[str, tuple[str, ...]] = {}
    gates: dict[str, exp.Expr | None] = {}
    membership = membership_relation()
    for segment_id, text in texts.items():
        node = parse(text)
        compiled = compile_expression(node, AS_OF, "duckdb", membership=membership)
        readers[segment_id] = tuple(column.key for column in compiled.derived)
        for column in compiled.derived:
            derived.setdefault(column.key, column)
        gate = profile_conjuncts(node)
        gates[segment_id] = None if gate is None else compile_expression(gate, AS_OF).condition
    return scan_tree(derived.values(), readers, gates)


def shape(tree: ScanTree) -> list[tuple[str, int]]:
    return [(scan.relation, len(scan.columns)) for scan in tree.scans]


def sql(scan: Scan) -> str:
    return scan.query().sql("duckdb")


def rendered(tree: ScanTree) -> list[str]:
    return [sql(scan) for scan in tree.scans]


# ------------------------------------------------------------------------------------------ the list


def test_rules_run_in_this_order_and_each_says_what_it_does() -> None:
    assert [rule.__name__ for rule in RULES] == [
        "hoist_aggregates", "prune_windows", "push_row_filters", "push_profile_predicates"]
    assert all(rule.__doc__ and "Args:" in rule.__doc__ and "Returns:" in rule.__doc__ for rule in RULES)


def test_rewrite_applies_the_rules_in_order() -> None:
    tree = tree_of(a=f'xEvent[eventType = "buy" and {WEEK}].count() > 0')
    seen: list[str] = []

    def recording(name: str) -> Rule:
        def rule(t: ScanTree, options: Options) -> ScanTree:
            seen.append(name)
            return t
        return rule

    assert rewrite(tree, SHARED, [recording("one"), recording("two")]) is tree
    assert seen == ["one", "two"]
    assert rewrite(tree, SHARED, ()) is tree


# ---------------------------------------------------------------------------------- hoist_aggregates


def test_hoist_aggregates_computes_each_aggregate_once_in_shared_scans() -> None:
    chain = 'chain(xEvent, timestamp, [C0: WHAT(eventType = "view"), C1: WHAT(eventType = "buy")])'
    tree = tree_of(
        seq=chain,
        week=f'xEvent[eventType = "buy" and {WEEK}].count() > 0',
        twice=f'xEvent[eventType = "buy" and {WEEK}].count() >= 2',  # the same aggregate as week's
        month='xEvent[eventType = "view" and timestamp occurs this month].count() > 0',
        old='inSegment("seg-gold")',
        ever='xEvent[eventType = "buy"].sum(commerce.order.priceTotal) > 10',
    )
    assert shape(tree) == [("chain", 1), ("events", 1), ("events", 1), ("membership", 1), ("events", 1)]
    shared = hoist_aggregates(tree, SHARED)
    assert shape(shared) == [("events", 3), ("membership", 1), ("chain", 1)]
    assert shared.scans[0].keys == (tree.scans[1].keys + tree.scans[2].keys + tree.scans[4].keys)
    # Split, the events columns are grouped by their exact window (the unbounded one alone).
    assert shape(hoist_aggregates(tree, SPLIT)) == [("events", 1), ("events", 1), ("events", 1),
                                                     ("membership", 1), ("chain", 1)]
    # Each column once, even when two scans compute it.
    doubled = ScanTree(tree.scans + tree.scans[1:2], tree.readers, tree.gates)
    assert shape(hoist_aggregates(doubled, SHARED)) == shape(shared)


def test_hoist_aggregates_keeps_a_scan_another_rule_has_pruned() -> None:
    tree = tree_of(week=f'xEvent[eventType = "buy" and {WEEK}].count() > 0',
                   ever='xEvent[eventType = "view"].count() > 0')
    pruned = prune_windows(tree, SHARED)
    hoisted = hoist_aggregates(pruned, SHARED)
    assert hoisted.scans == pruned.scans


# ------------------------------------------------------------------------------------- prune_windows


def test_prune_windows_reads_one_shared_window_in_the_where_not_in_each_filter() -> None:
    tree = hoist_aggregates(tree_of(buys=f'xEvent[eventType = "buy" and {WEEK}].count() > 0',
                                    views=f'xEvent[eventType = "view" and {WEEK}].count() > 0'), SHARED)
    (before,) = tree.scans
    assert f"FILTER(WHERE e.\"eventType\" = 'buy' AND {WEEK_SQL})" in sql(before)
    assert before.where == ()
    (after,) = prune_windows(tree, SHARED).scans
    assert [condition.sql("duckdb") for condition in after.where] == [WEEK_SQL.replace('e."', '"e"."')]
    assert "COUNT(*) FILTER(WHERE e.\"eventType\" = 'buy') AS" in sql(after)
    assert "COUNT(*) FILTER(WHERE e.\"eventType\" = 'view') AS" in sql(after)
    assert [c.row_filter.sql("duckdb") for c in after.columns if c.row_filter is not None] == [
        "COALESCE(e.\"eventType\" = 'buy', FALSE)", "COALESCE(e.\"eventType\" = 'view', FALSE)"]


def test_prune_windows_bounds_different_windows_by_their_hull_and_keeps_each_filter() -> None:
    tree = hoist_aggregates(tree_of(week=f'xEvent[eventType = "buy" and {WEEK}].count() > 0',
                                    days='xEvent[timestamp occurs <= 3 days before now].count() > 0'), SHARED)
    (after,) = prune_windows(tree, SHARED).scans
    assert [condition.sql("duckdb") for condition in after.where] == [WEEK_SQL.replace('e."', '"e"."')]
    assert after.columns == tree.scans[0].columns  # each FILTER still tests its own window


def test_prune_windows_leaves_a_scan_with_an_unbounded_aggregate_and_a_column_that_reads_the_whole_window() -> None:
    unbounded = hoist_aggregates(tree_of(week=f'xEvent[{WEEK}].count() > 0', ever='xEvent.count() > 0'), SHARED)
    assert prune_windows(unbounded, SHARED) == unbounded
    whole = prune_windows(tree_of(week=f"xEvent[{WEEK}].count() > 0"), SHARED)
    (column,) = whole.scans[0].columns
    assert column.row_filter is None and isinstance(column.aggregate, exp.Count)  # no FILTER left
    assert "COUNT(*) AS" in sql(whole.scans[0])


# ----------------------------------------------------------------------------------- push_row_filters


def test_push_row_filters_ors_the_distinct_filters_into_the_where() -> None:
    tree = hoist_aggregates(tree_of(
        buys='xEvent[eventType = "buy"].count() > 0',
        spend='xEvent[eventType = "buy"].sum(commerce.order.priceTotal) > 10',  # the same filter
        views='xEvent[eventType = "view"].count() > 1',
    ), SHARED)
    (after,) = push_row_filters(tree, SHARED).scans
    assert [condition.sql("duckdb") for condition in after.where] == [
        "COALESCE(e.\"eventType\" = 'buy', FALSE) OR COALESCE(e.\"eventType\" = 'view', FALSE)"]
    assert "WHERE e.\"eventType\" = 'buy' OR e.\"eventType\" = 'view' GROUP BY" in sql(after)  # in filter form


def test_push_row_filters_drops_a_filter_that_implies_another_from_the_or() -> None:
    tree = hoist_aggregates(tree_of(
        buys='xEvent[eventType = "buy"].count() > 0',
        big='xEvent[eventType = "buy" and commerce.order.priceTotal > 100].count() > 0',  # implies "buy"
        late='xEvent[commerce.order.priceTotal > 5 and eventType = "buy"].count() > 0',  # in either order
        views='xEvent[eventType = "view"].count() > 1',
    ), SHARED)
    (after,) = push_row_filters(tree, SHARED).scans
    assert [condition.sql("duckdb") for condition in after.where] == [
        "COALESCE(e.\"eventType\" = 'buy', FALSE) OR COALESCE(e.\"eventType\" = 'view', FALSE)"]
    assert "FILTER(WHERE e.\"eventType\" = 'buy' AND" in sql(after)  # each aggregate keeps its own filter
    alone = hoist_aggregates(tree_of(big='xEvent[eventType = "buy" and commerce.order.priceTotal > 100].count() > 0',
                                     views='xEvent[eventType = "view"].count() > 1'), SHARED)
    (kept,) = push_row_filters(alone, SHARED).scans
    assert "priceTotal" in kept.where[0].sql("duckdb")  # nothing it implies is pushed: it stays


def test_push_row_filters_leaves_scans_with_too_many_filters_or_an_unfiltered_aggregate() -> None:
    tree = hoist_aggregates(tree_of(buys='xEvent[eventType = "buy"].count() > 0',
                                    views='xEvent[eventType = "view"].count() > 1'), SHARED)
    assert push_row_filters(tree, Options(split_windows=False, pushed_filters=1)) == tree
    unfiltered = hoist_aggregates(tree_of(buys='xEvent[eventType = "buy"].count() > 0', all='xEvent.count() > 3'),
                                  SHARED)
    assert push_row_filters(unfiltered, SHARED) == unfiltered


def test_push_row_filters_also_prunes_the_membership_scan() -> None:
    tree = hoist_aggregates(tree_of(gold='inSegment("seg-gold")', vip='inSegment("seg-vip")'), SHARED)
    (scan,) = push_row_filters(tree, SHARED).scans
    assert scan.relation == "membership" and len(scan.where) == 1
    assert isinstance(scan.where[0], exp.Or)


# ---------------------------------------------------------------------------- push_profile_predicates


def test_push_profile_predicates_reads_only_the_events_of_profiles_some_gate_admits() -> None:
    tree = hoist_aggregates(tree_of(
        us='homeAddress.country = "US" and xEvent[eventType = "buy"].count() > 0',
        us_twice='homeAddress.country = "US" and xEvent[eventType = "buy"].count() > 1',  # the same gate
        fr='(Profile) => Profile.homeAddress.country = "FR" and xEvent[eventType = "buy"].count() > 2',
    ), SHARED)
    (after,) = push_profile_predicates(tree, SHARED).scans
    assert after.profiles is not None
    assert after.profiles.sql("duckdb") == (
        "SELECT p._profile_id FROM profiles AS p WHERE COALESCE(\"p\".\"homeAddress\".\"country\" = 'US', FALSE) "
        "OR COALESCE(\"p\".\"homeAddress\".\"country\" = 'FR', FALSE)")
    assert sql(after).endswith("WHERE e._profile_id IN (" + after.profiles.sql("duckdb") + ") GROUP BY e._profile_id")


def test_push_profile_predicates_needs_a_gate_on_every_reader_of_the_scan() -> None:
    tree = hoist_aggregates(tree_of(us='homeAddress.country = "US" and xEvent[eventType = "buy"].count() > 0',
                                    anyone='xEvent[eventType = "buy"].count() > 1'), SHARED)
    assert push_profile_predicates(tree, SHARED) == tree


@pytest.mark.parametrize(("text", "expected"), [
    ('homeAddress.country = "US"', 'homeAddress.country = "US"'),
    ('homeAddress.country = "US" and xEvent[eventType = "buy"].count() > 0 and person.gender = "female"',
     'homeAddress.country = "US" and person.gender = "female"'),
    ('(Profile) => Profile.homeAddress.country = "US" and xEvent.count() > 0', 'Profile.homeAddress.country = "US"'),
    ('homeAddress.country = "US" or xEvent.count() > 0', None),  # not a conjunct of its own
    ('xEvent[eventType = "buy"].count() > 0', None),
    ('inSegment("seg-gold") and homeAddress.country = "US"', 'homeAddress.country = "US"'),
    ('exists E from xEvent where E.eventType = "buy"', None),
    ('chain(xEvent, timestamp, [C0: WHAT(eventType = "view")]) and loyalty.tier = "gold"', 'loyalty.tier = "gold"'),
])
def test_profile_conjuncts_keeps_the_conjuncts_that_read_the_profile_alone(text: str, expected: str | None) -> None:
    found = profile_conjuncts(parse(text))
    assert (None if found is None else to_text(found)) == expected


def test_profile_conjuncts_is_an_ast_to_ast_function() -> None:
    node = parse('homeAddress.country = "US" and xEvent.count() > 0')
    assert isinstance(node, ast.And)
    assert profile_conjuncts(node) is node.operands[0]


# ------------------------------------------------------------------------------- comparing trees


def test_conditions_are_compared_as_trees_exactly() -> None:
    def eq(value: str) -> exp.Expr:
        return exp.EQ(this=exp.column("country", table="p", quoted=True), expression=exp.Literal.string(value))

    assert same(eq("US"), eq("US")) and not same(eq("US"), eq("us"))
    assert not same(exp.column("Country", quoted=True), exp.column("country", quoted=True))
    assert not same(exp.Paren(this=eq("US")), eq("US"))  # renders differently too
    assert [c.sql() for c in distinct([eq("FR"), eq("US"), eq("FR"), eq("us")])] == [
        "\"p\".\"country\" = 'FR'", "\"p\".\"country\" = 'US'", "\"p\".\"country\" = 'us'"]


def test_distinct_does_not_merge_different_trees_with_equal_hashes() -> None:
    class Colliding(exp.Literal):
        def __hash__(self) -> int:
            return 1

    one, two = Colliding(this="1", is_string=True), Colliding(this="2", is_string=True)
    assert one == two  # sqlglot's == compares hashes
    assert distinct([one, two]) == [one, two]


# ---------------------------------------------------------------------------- purity, idempotence

CORPUS = [(entry.segment_id, entry.text) for entry in load_corpus()]


def corpus_tree() -> ScanTree:
    return tree_of(**{segment_id.replace("-", "_"): text for segment_id, text in CORPUS})


def test_rules_leave_their_input_as_it_was_and_a_second_pass_changes_nothing() -> None:
    tree = corpus_tree()
    before = rendered(tree)
    for options in (SHARED, SPLIT):
        once = rewrite(tree, options)
        assert rendered(tree) == before
        once_sql = rendered(once)
        assert rendered(rewrite(once, options)) == once_sql
        assert rendered(once) == once_sql


# -------------------------------------------------------------------------------------- results

PARSED = [(segment_id, parse(text)) for segment_id, text in CORPUS]
#: Each rule alone, all but one, and all (in the order of RULES; the random-data test draws any subset).
SUBSETS = [*((rule,) for rule in RULES), *itertools.combinations(RULES, len(RULES) - 1), RULES]


def members(segments: Sequence[tuple[str, ast.Node]], tables: dict[str, pa.Table], rules: Sequence[Rule],
            engine: DuckDBEngine) -> dict[str, set[str]]:
    plan = plan_segments(segments, AS_OF, "duckdb", membership=membership_relation(), rules=rules)
    rows = engine.run(plan.query, tables).to_pylist()
    return {s: {row["_profile_id"] for row in rows if row[plan.columns[s]]} for s, _ in segments}


@pytest.fixture(scope="module")
def without_rules(tables: dict[str, pa.Table], duckdb_engine: DuckDBEngine) -> dict[str, set[str]]:
    return members(PARSED, tables, (), duckdb_engine)


def test_the_plan_without_rules_agrees_with_python(without_rules: dict[str, set[str]], dataset: Dataset) -> None:
    assert without_rules == python_members(dataset, PARSED)
    plan = plan_segments(PARSED, AS_OF, "duckdb", membership=membership_relation(), rules=())
    assert len(plan.stages) == len(plan.derived_columns)  # one scan per derived column
    assert all(stage.query.args.get("where") is None for stage in plan.stages if stage.relation != "chain")


@pytest.mark.parametrize("rules", SUBSETS, ids=lambda rules: "+".join(r.__name__ for r in rules))
def test_rules_alone_and_left_out_give_the_same_members(rules: tuple[Rule, ...], tables: dict[str, pa.Table],
                                                        duckdb_engine: DuckDBEngine,
                                                        without_rules: dict[str, set[str]]) -> None:
    assert members(PARSED, tables, rules, duckdb_engine) == without_rules


def test_one_shared_scan_gives_the_same_members(tables: dict[str, pa.Table], duckdb_engine: DuckDBEngine,
                                                without_rules: dict[str, set[str]]) -> None:
    # Spark's choice (no split windows), run on DuckDB.
    with mock.patch.dict(SPLIT_WINDOWS, {"duckdb": False}):
        assert members(PARSED, tables, RULES, duckdb_engine) == without_rules


def _self_contained(segments: list[tuple[str, ast.Node]]) -> list[tuple[str, ast.Node]]:
    """The segments whose ``inSegment`` of corpus segments stays within the list (as in test_differential)."""
    ids = {s for s, _ in segments}
    corpus_ids = {s for s, _ in PARSED}
    return [(s, n) for s, n in segments if not any(
        isinstance(x, ast.InSegment) and x.segment_id in corpus_ids and x.segment_id not in ids for x in n.walk())]


def _windowed() -> list[tuple[str, ast.Node]]:
    """The corpus segments whose derived columns are all event aggregates over a time window with two ends."""
    chosen = []
    membership = membership_relation()
    for segment_id, node in PARSED:
        derived = compile_expression(node, AS_OF, "duckdb", membership=membership).derived
        if derived and all(c.relation == "events" and c.bounds is not None and c.bounds.low is not None
                           and c.bounds.high is not None for c in derived):
            chosen.append((segment_id, node))
    return chosen


def test_one_shared_scan_of_different_windows_gives_the_same_members(
        tables: dict[str, pa.Table], duckdb_engine: DuckDBEngine, without_rules: dict[str, set[str]]) -> None:
    # The only plans where a shared scan is pruned to a hull of different windows (each keeps its own).
    segments = _self_contained(_windowed())
    plan = plan_segments(segments, AS_OF, "spark", rules=RULES)
    assert [stage.relation for stage in plan.stages] == ["events"]
    assert len({c.bounds for c in plan.derived_columns.values()}) >= 5  # different windows, one scan
    assert plan.stages[0].query.args.get("where") is not None
    with mock.patch.dict(SPLIT_WINDOWS, {"duckdb": False}):
        assert members(segments, tables, RULES, duckdb_engine) == {s: without_rules[s] for s, _ in segments}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), size=st.integers(min_value=1, max_value=40),
       picked=st.lists(st.sampled_from(range(len(PARSED))), min_size=1, max_size=12, unique=True),
       chosen=st.sets(st.sampled_from(range(len(RULES)))), split=st.booleans())
def test_rules_do_not_change_members_on_random_data(seed: int, size: int, picked: list[int], chosen: set[int],
                                                    split: bool) -> None:
    """Random data, a random handful of corpus segments, a random subset of the rules, split scans or not."""
    data = generate(seed=seed, n_profiles=size)
    segments = _self_contained([PARSED[i] for i in picked])
    if not segments:
        return
    rules = tuple(RULES[i] for i in sorted(chosen))
    engine = DuckDBEngine(threads=1)
    with mock.patch.dict(SPLIT_WINDOWS, {"duckdb": split}):
        expected = members(segments, data.tables(), (), engine)
        assert members(segments, data.tables(), rules, engine) == expected == python_members(data, segments)
