"""One-pass multi-segment planning: every segment of a job in one query over profiles.

The plan for segments S1..Sn is::

    WITH ev0 AS (SELECT e._profile_id, <aggregate> AS __d_1, ... FROM events e
                 WHERE <time range> AND (<filter 1> OR <filter 2> ...) GROUP BY e._profile_id),
         ev1 AS (<the same for the aggregates of another window>),
         ms AS (<same over membership, for inSegment of segments outside the job>),
         ch_k AS (<one query per distinct chain>),
         profile_tests AS (SELECT p.*, COALESCE(<S2>, FALSE) AS seg_1, ... FROM profiles p),
         level0 AS (SELECT p.*, ev0.__d_1, ..., COALESCE(<S1>, FALSE) AS seg_0, ... FROM profile_tests p
                    LEFT JOIN ev0 ON ... LEFT JOIN ms ON ... LEFT JOIN ch_k ON ...)
    SELECT p._profile_id, p.seg_0, p.seg_1, ... FROM level0 AS p      -- or further levels

* The derived relations (the ``ev``, ``ms`` and ``ch`` stages) start as one scan per distinct derived
  column (same key: same filter and window) and are rewritten by the rules of ``pql.rewrites.RULES``:
  aggregates hoisted into shared grouped scans, each WHERE pruned to the hull of its aggregates' time
  ranges and, for a few filtered aggregates, the OR of their filters, and profile-only predicates pushed
  before the events scans. Whether each distinct time window gets its own scan or all share one is chosen
  per engine (``SPLIT_WINDOWS``): engine-pitfalls.md measured splitting as a large win on DuckDB and a
  loss on Spark.
* A segment that reads profile fields alone (S2 above) is tested in ``profile_tests``, before the joins, when
  there are any: the joins then carry its boolean instead of the fields it reads.
* ``inSegment`` of a segment in the same job reads that segment's column: segments are computed level by
  level in topological order, each level an outer query over the previous one (a cycle is a PlanError).

The plan is a sqlglot expression; engines render it in their dialect. It is built in place
(``copy=False``): sqlglot's builders copy the whole query by default, which made planning 100
segments quadratic (about a second of Python before the engine started).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
from sqlglot import exp

from openseg.pql import ast
from openseg.pql.derived import (
    CHAIN,
    DEFAULT_MAP_PATHS,
    EVENTS,
    ID,
    MEMBERSHIP,
    PROFILE_ALIAS,
    PROFILES,
    ArrowPaths,
    DerivedColumn,
    MembershipRelation,
    PathCheck,
)
from openseg.pql.rewrites import RULES, Options, Rule, ScanTree, profile_conjuncts, rewrite, scan_tree
from openseg.pql.to_sql import compile_expression


def arrow_paths(profile: pa.Schema, event: pa.Schema) -> PathCheck:
    """A ``has_path`` over Arrow schemas: structs are walked; below a map or a list anything goes. It also
    carries the data's types, so paths through arrays of tenant fields compile (``pql.derived.ArrowPaths``)."""
    return ArrowPaths(profile, event)


#: Engine -> whether each distinct event window gets its own grouped scan (see the module docstring).
SPLIT_WINDOWS: Mapping[str, bool] = {"duckdb": True, "spark": False}
#: Up to this many distinct filters are OR-ed into a scan's WHERE. Beyond, evaluating the OR on every
#: event costs more than the rows it drops save (the hand-written baseline stops at the same point).
PUSHED_FILTERS = 8


class PlanError(Exception):
    """The segments cannot be planned together (e.g. their ``inSegment`` references form a cycle)."""


@dataclass(frozen=True)
class Stage:
    """A part of a plan that an engine can run, and measure, on its own: one grouped scan of events or
    membership, or one chain query. The plan's ``final`` query reads its result under ``name``.

    Attributes:
        name: The relation the final query joins (a CTE of ``Plan.query``; a temporary table when staged).
        relation: What it reads: ``events``, ``membership`` or ``chain`` (a sequence query over events).
        query: The SELECT computing its derived columns, one row per profile.
        keys: The derived columns it computes.
        consumers: The segments reading at least one of them, in the job's order.
    """

    name: str
    relation: str
    query: exp.Select
    keys: tuple[str, ...]
    consumers: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """A compiled one-pass plan.

    The same plan comes in two forms: ``query``, one statement with every stage as a CTE, and
    ``stages`` + ``final``, for engines that run (and measure) each stage on its own and then ``final``,
    which reads each stage's result by its name.

    Attributes:
        query: The SELECT returning ``_profile_id`` and one boolean column per segment.
        columns: Segment id -> its column in ``query``.
        derived: Segment id -> keys of the derived columns it reads (for per-segment cost metrics).
        derived_columns: Key -> derived column (each computed once).
        order: Segment ids in evaluation order (dependencies first).
        stages: The derived relations ``query`` computes first, in order.
        final: ``query`` without the stages' CTEs: it reads them as relations named after them.
        relations: Relations the query reads (``profiles``, ``events``, ``membership``).
    """

    query: exp.Select
    columns: Mapping[str, str]
    derived: Mapping[str, tuple[str, ...]]
    derived_columns: Mapping[str, DerivedColumn]
    order: tuple[str, ...]
    stages: tuple[Stage, ...]
    final: exp.Select
    relations: frozenset[str] = field(default_factory=frozenset)

    def sql(self, dialect: str) -> str:
        """The plan as SQL text in ``dialect``."""
        return self.query.sql(dialect=dialect)


def plan_segments(
    segments: Sequence[tuple[str, ast.Node]],
    as_of: dt.datetime,
    dialect: str = "duckdb",
    membership: MembershipRelation | None = None,
    map_paths: frozenset[tuple[str, ...]] = DEFAULT_MAP_PATHS,
    has_path: PathCheck | None = None,
    carry: Sequence[str] = (),
    rules: Sequence[Rule] = RULES,
    values: bool = False,
) -> Plan:
    """Plan the evaluation of several segments in one query.

    Args:
        segments: (segment id, parsed PQL expression) pairs, in any order.
        as_of: Evaluation time.
        dialect: ``"duckdb"`` or ``"spark"`` (decides how engine-specific constructs compile).
        membership: How to read the ``membership`` relation (earlier results, laid out by the membership
            store) for ``inSegment`` ids outside this job (None: there is none, those are false).
        map_paths: Profile paths whose type is a map.
        has_path: Whether the data holds a field (see ``compile_expression``); fields it never held
            read as null. ``arrow_paths`` builds one from the stores' Arrow schemas.
        carry: Profile columns the result also returns, after the segments' (e.g. the namespace a
            job counts members by, which then needs no second read of the profiles).
        rules: The rewrites of the derived relations (``pql.rewrites.RULES``); with none, each derived
            column is computed in its own scan of every row, which gives the same result, slower.
        values: The expressions are values (``orders.count()``), not conditions: each one's column is its value
            (``openseg pql sql`` of a value expression).

    Returns:
        The plan.

    Raises:
        PlanError: For duplicate segment ids or an ``inSegment`` cycle.
        NotSupportedOnEngine: When the engine cannot run a construct of some segment (``openseg.pql.errors``).
    """
    expressions = dict(segments)
    if len(expressions) != len(segments):
        raise PlanError("a segment id appears twice in the job")
    if not segments:
        raise PlanError("a plan needs at least one segment")
    levels = _levels(expressions)
    columns = {segment_id: f"{'value' if values else 'seg'}_{index}" for index, (segment_id, _) in enumerate(segments)}

    derived: dict[str, DerivedColumn] = {}
    per_segment: dict[str, tuple[str, ...]] = {}
    conditions: dict[str, exp.Expr] = {}
    for level in levels:
        for segment_id in level:
            available = {other: exp.column(columns[other], table=PROFILE_ALIAS)
                         for other in _dependencies(expressions[segment_id]) if other in expressions}
            compiled = compile_expression(
                expressions[segment_id], as_of, dialect, segment_columns=available,
                membership=membership, map_paths=map_paths, has_path=has_path, value=values,
            )
            conditions[segment_id] = compiled.condition
            per_segment[segment_id] = tuple(column.key for column in compiled.derived)
            for column in compiled.derived:
                derived.setdefault(column.key, column)

    # A value has no conjuncts that must hold: only a condition's profile tests can gate the scans.
    gates = {segment_id: None if values else _gate(expressions[segment_id], as_of, dialect, membership, map_paths,
                                                   has_path)
             for segment_id in expressions}
    options = Options(split_windows=SPLIT_WINDOWS.get(dialect, False), pushed_filters=PUSHED_FILTERS)
    stages = _stages(rewrite(scan_tree(derived.values(), per_segment, gates), options, rules))
    ctes: list[tuple[str, exp.Select]] = []
    # Segments over profile fields alone are tested before the joins: a join then carries their columns'
    # booleans rather than the fields they read (a shuffle's bytes on Spark: the 10M-profile final 19-24 s ->
    # 15 s on local[2]).
    early = [s for s in levels[0] if not per_segment[s]] if stages else []
    query = exp.select(_star(), copy=False).from_(
        exp.alias_(exp.to_table(PROFILES), PROFILE_ALIAS, table=True), copy=False)
    if early:
        query.select(*(exp.alias_(conditions[s], columns[s]) for s in early), copy=False)
        ctes.append((PROFILE_TESTS, query))
        query = exp.select(_star(), copy=False).from_(
            exp.alias_(exp.to_table(PROFILE_TESTS), PROFILE_ALIAS, table=True), copy=False)
    for stage in stages:
        sources = ("value",) if stage.relation == CHAIN else stage.keys
        query.select(*(exp.alias_(exp.column(source, table=stage.name), key)
                       for source, key in zip(sources, stage.keys, strict=True)), copy=False)
        on = exp.EQ(this=exp.column(ID, table=stage.name), expression=exp.column(ID, table=PROFILE_ALIAS))
        query.join(exp.to_table(stage.name), on=on, join_type="left", copy=False)

    for index, level in enumerate(levels):
        query.select(*(exp.alias_(conditions[s], columns[s]) for s in level if s not in early), copy=False)
        ctes.append((f"level{index}", query))
        if index < len(levels) - 1:
            query = exp.select(_star(), copy=False).from_(
                exp.alias_(exp.to_table(f"level{index}"), PROFILE_ALIAS, table=True), copy=False)
    final = exp.select(exp.column(ID, table=PROFILE_ALIAS), *(
        exp.column(columns[segment_id], table=PROFILE_ALIAS) for segment_id, _ in segments
    ), *(exp.column(name, table=PROFILE_ALIAS, quoted=True) for name in carry), copy=False).from_(
        exp.alias_(exp.to_table(f"level{len(levels) - 1}"), PROFILE_ALIAS, table=True), copy=False)
    for name, cte in ctes:
        final.with_(name, as_=cte, copy=False)
    # The one-statement form: the same final query with every stage as a CTE before the levels.
    whole = final.copy()
    levels_with = whole.args["with_"]
    levels_with.set("expressions", [
        exp.CTE(this=stage.query.copy(), alias=exp.TableAlias(this=exp.to_identifier(stage.name))) for stage in stages
    ] + list(levels_with.expressions))

    relations = {PROFILES} | {c.relation for c in derived.values() if c.relation != CHAIN}
    if any(c.relation == CHAIN for c in derived.values()):
        relations.add(EVENTS)
    order = tuple(segment_id for level in levels for segment_id in level)
    return Plan(whole, columns, per_segment, derived, order, tuple(stages), final, frozenset(relations))


#: The relation of the profiles with the tests of the segments that read nothing else (see ``plan_segments``).
PROFILE_TESTS = "profile_tests"


def _dependencies(node: ast.Node) -> set[str]:
    return {n.segment_id for n in node.walk() if isinstance(n, ast.InSegment) and n.namespace == "ups"}


def _levels(expressions: Mapping[str, ast.Node]) -> list[list[str]]:
    """Segment ids grouped by dependency depth inside the job (Kahn's algorithm, input order kept)."""
    pending = {s: {d for d in _dependencies(node) if d in expressions} for s, node in expressions.items()}
    levels: list[list[str]] = []
    done: set[str] = set()
    while pending:
        ready = [s for s, deps in pending.items() if deps <= done]
        if not ready:
            cycle = ", ".join(sorted(pending))
            raise PlanError(f"inSegment references form a cycle among segments: {cycle}")
        levels.append(ready)
        done.update(ready)
        for s in ready:
            del pending[s]
    return levels


def _star() -> exp.Column:
    return exp.Column(this=exp.Star(), table=exp.to_identifier(PROFILE_ALIAS))


def _gate(node: ast.Node, as_of: dt.datetime, dialect: str, membership: MembershipRelation | None,
          map_paths: frozenset[tuple[str, ...]], has_path: PathCheck | None) -> exp.Expr | None:
    """The segment's profile-only conjuncts (``profile_conjuncts``) compiled over ``p``; None when it has none."""
    gate = profile_conjuncts(node)
    if gate is None:
        return None
    compiled = compile_expression(gate, as_of, dialect, membership=membership, map_paths=map_paths,
                                  has_path=has_path)
    return None if compiled.derived else compiled.condition


def _stages(tree: ScanTree) -> list[Stage]:
    """The rewritten scans as named stages: ``ev``/``ev<i>`` for events, ``ms``/``ms<i>`` for membership,
    ``ch<key>`` for a chain; each with the segments reading it."""
    counts = {relation: sum(1 for scan in tree.scans if scan.relation == relation) for relation in (EVENTS, MEMBERSHIP)}
    prefixes = {EVENTS: "ev", MEMBERSHIP: "ms"}
    seen = dict.fromkeys(prefixes, 0)
    stages = []
    for scan in tree.scans:
        if scan.relation == CHAIN:
            name = f"ch{scan.keys[0]}"
        else:
            index = seen[scan.relation]
            seen[scan.relation] += 1
            name = prefixes[scan.relation] + (str(index) if counts[scan.relation] > 1 else "")
        keys = set(scan.keys)
        consumers = tuple(s for s, used in tree.readers.items() if keys & set(used))
        stages.append(Stage(name, scan.relation, scan.query(), scan.keys, consumers))
    return stages


__all__ = ["Plan", "PlanError", "Stage", "plan_segments"]
