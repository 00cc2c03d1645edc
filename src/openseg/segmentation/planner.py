"""One-pass multi-segment planning: every segment of a job in one query over profiles.

The plan for segments S1..Sn is::

    WITH ev0 AS (SELECT e._profile_id, <aggregate> AS __d_1, ... FROM events e
                 WHERE <time range> AND (<filter 1> OR <filter 2> ...) GROUP BY e._profile_id),
         ev1 AS (<the same for the aggregates of another window>),
         ms AS (<same over membership, for inSegment of segments outside the job>),
         ch_k AS (<one query per distinct chain>),
         level0 AS (SELECT p.*, ev0.__d_1, ..., COALESCE(<S1>, FALSE) AS seg_0, ... FROM profiles p
                    LEFT JOIN ev0 ON ... LEFT JOIN ms ON ... LEFT JOIN ch_k ON ...)
    SELECT p._profile_id, p.seg_0, p.seg_1, ... FROM level0 AS p      -- or further levels

* Identical derived columns (same key: same filter and window) are computed once for all segments.
* Event aggregates are computed in grouped scans of ``events``, each WHERE pruned to the hull of its
  aggregates' time ranges and, for a few filtered aggregates, the OR of their filters. Whether each
  distinct time window gets its own scan or all share one is chosen per engine (``SPLIT_WINDOWS``):
  engine-pitfalls.md measured splitting as a large win on DuckDB and a loss on Spark.
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
from openseg.pql._sql_builders import filter_form, predicate
from openseg.pql.derived import (
    CHAIN,
    DEFAULT_MAP_PATHS,
    EVENT_ALIAS,
    EVENTS,
    ID,
    MEMBERSHIP,
    MEMBERSHIP_ALIAS,
    PROFILE_ALIAS,
    PROFILES,
    DerivedColumn,
    MembershipRelation,
    PathCheck,
    bounds_condition,
)
from openseg.pql.to_sql import compile_expression


def arrow_paths(profile: pa.Schema, event: pa.Schema) -> PathCheck:
    """A ``has_path`` over Arrow schemas: structs are walked; below a map or a list anything goes."""

    def holds(row: str, path: tuple[str, ...]) -> bool:
        schema = profile if row == "profile" else event
        if path[0] not in schema.names:
            return False
        data_type = schema.field(path[0]).type
        for part in path[1:]:
            if not pa.types.is_struct(data_type):
                return True  # map keys and list items are not checked here
            index = data_type.get_field_index(part)
            if index < 0:
                return False
            data_type = data_type.field(index).type
        return True

    return holds


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
    columns = {segment_id: f"seg_{index}" for index, (segment_id, _) in enumerate(segments)}

    derived: dict[str, DerivedColumn] = {}
    per_segment: dict[str, tuple[str, ...]] = {}
    conditions: dict[str, exp.Expr] = {}
    for level in levels:
        for segment_id in level:
            available = {other: exp.column(columns[other], table=PROFILE_ALIAS)
                         for other in _dependencies(expressions[segment_id]) if other in expressions}
            compiled = compile_expression(
                expressions[segment_id], as_of, dialect, segment_columns=available,
                membership=membership, map_paths=map_paths, has_path=has_path,
            )
            conditions[segment_id] = compiled.condition
            per_segment[segment_id] = tuple(column.key for column in compiled.derived)
            for column in compiled.derived:
                derived.setdefault(column.key, column)

    gates = {segment_id: _gate(expressions[segment_id], as_of, dialect, membership, map_paths, has_path)
             for segment_id in expressions}
    stages = _derived_relations(derived, SPLIT_WINDOWS.get(dialect, False), per_segment, gates)
    query = exp.select(_star(), copy=False).from_(
        exp.alias_(exp.to_table(PROFILES), PROFILE_ALIAS, table=True), copy=False)
    for stage in stages:
        sources = ("value",) if stage.relation == CHAIN else stage.keys
        query.select(*(exp.alias_(exp.column(source, table=stage.name), key)
                       for source, key in zip(sources, stage.keys, strict=True)), copy=False)
        on = exp.EQ(this=exp.column(ID, table=stage.name), expression=exp.column(ID, table=PROFILE_ALIAS))
        query.join(exp.to_table(stage.name), on=on, join_type="left", copy=False)

    ctes: list[tuple[str, exp.Select]] = []
    for index, level in enumerate(levels):
        query.select(*(exp.alias_(conditions[s], columns[s]) for s in level), copy=False)
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
    """The segment's profile-only conjuncts as one condition over ``p`` (None when it has none).

    A segment ``G and R`` with ``G`` reading only profile attributes is false wherever ``G`` is false,
    whatever its event part says, so event scans need only the profiles where some consumer's gate holds.
    """
    body = node.body if isinstance(node, ast.Lambda) else node
    if not isinstance(body, ast.Expr):
        return None
    operands: tuple[ast.Expr, ...] = body.operands if isinstance(body, ast.And) else (body,)
    profile_only = [o for o in operands if _profile_only(o)]
    if not profile_only:
        return None
    gate = profile_only[0] if len(profile_only) == 1 else ast.And(tuple(profile_only))
    compiled = compile_expression(gate, as_of, dialect, membership=membership, map_paths=map_paths,
                                  has_path=has_path)
    return None if compiled.derived else compiled.condition


def _profile_only(node: ast.Node) -> bool:
    for child in node.walk():
        if isinstance(child, ast.InSegment | ast.Chain | ast.StepRef):
            return False
        if isinstance(child, ast.FieldPath) and child.root is not ast.Root.PROFILE:
            if child.root is ast.Root.EVENTS or child.root is ast.Root.VARIABLE:
                return False
    return True


def _gated(columns: Sequence[DerivedColumn], per_segment: Mapping[str, tuple[str, ...]],
           gates: Mapping[str, exp.Expr | None]) -> exp.Expr | None:
    """``e._profile_id IN (profiles where some consumer's gate holds)``, when every consumer has a gate."""
    keys = {c.key for c in columns}
    consumers = [s for s, used in per_segment.items() if keys & set(used)]
    conditions = [gates[s] for s in consumers]
    if not consumers or any(c is None for c in conditions):
        return None
    unique: dict[str, exp.Expr] = {}
    for condition in conditions:
        assert condition is not None
        unique.setdefault(condition.sql(), condition)
    chosen = [c.copy() for c in unique.values()]
    profiles = exp.select(exp.column(ID, table=PROFILE_ALIAS), copy=False).from_(
        exp.alias_(exp.to_table(PROFILES), PROFILE_ALIAS, table=True), copy=False).where(
        exp.or_(*chosen, wrap=True) if len(chosen) > 1 else chosen[0], copy=False)
    return exp.In(this=exp.column(ID, table=EVENT_ALIAS), query=exp.Subquery(this=profiles))


def _derived_relations(derived: Mapping[str, DerivedColumn], split_windows: bool,
                       per_segment: Mapping[str, tuple[str, ...]], gates: Mapping[str, exp.Expr | None]) -> list[Stage]:
    """The stages computing the derived columns: grouped scans of events (one per window when
    ``split_windows``) and of membership, and one query per chain. An events scan whose consumers all have
    profile-only gates reads only the events of profiles some gate admits (profile-only predicates pushed
    before the scan)."""

    def stage(name: str, relation: str, query: exp.Select, columns: Sequence[DerivedColumn]) -> Stage:
        keys = tuple(c.key for c in columns)
        consumers = tuple(s for s, used in per_segment.items() if set(keys) & set(used))
        return Stage(name, relation, query, keys, consumers)

    stages: list[Stage] = []
    events = [c for c in derived.values() if c.relation == EVENTS]
    groups: dict[object, list[DerivedColumn]] = {}
    for column in events:
        groups.setdefault(_window_of(column) if split_windows else None, []).append(column)
    for index, columns in enumerate(groups.values()):
        scan = _grouped_scan(EVENTS, EVENT_ALIAS, columns)
        gate = _gated(columns, per_segment, gates)
        if gate is not None:
            scan.where(gate, append=True, copy=False)
        stages.append(stage(f"ev{index}" if len(groups) > 1 else "ev", EVENTS, scan, columns))
    memberships = [c for c in derived.values() if c.relation == MEMBERSHIP]
    if memberships:
        stages.append(stage("ms", MEMBERSHIP, _grouped_scan(MEMBERSHIP, MEMBERSHIP_ALIAS, memberships), memberships))
    for column in derived.values():
        if column.relation == CHAIN:
            stages.append(stage(f"ch{column.key}", CHAIN, column.query(), [column]))
    return stages


def _window_of(column: DerivedColumn) -> object:
    """The scan an event aggregate belongs to when windows are split: its exact time range."""
    bounds = column.bounds
    return None if bounds is None else (bounds.low, bounds.high, bounds.low_inclusive, bounds.high_inclusive)


def _grouped_scan(relation: str, alias: str, columns: Sequence[DerivedColumn]) -> exp.Select:
    """One scan of ``relation`` computing every aggregate, its WHERE pruned as far as safe.

    When every aggregate reads the same time window, the WHERE enforces exactly that window, so each
    aggregate's FILTER drops its copy of the window test (the same predicate, compared as SQL). Filters
    and the WHERE are written in filter form (see ``filter_form``).
    """
    window: exp.Expr | None = None
    where: list[exp.Expr] = []
    if relation == EVENTS and all(c.bounds is not None for c in columns):
        first = columns[0].bounds
        assert first is not None
        hull = first
        for c in columns[1:]:
            assert c.bounds is not None
            hull = hull.hull(c.bounds)
        if all(c.bounds == first for c in columns):
            hull = first
            if first.low is not None or first.high is not None:
                window = predicate(bounds_condition(_event_timestamp(alias), first))
        if hull.low is not None or hull.high is not None:
            where.append(bounds_condition(exp.column("timestamp", table=alias, quoted=True), hull))
    aggregates = []
    for c in columns:
        if c.aggregate is None:
            continue
        aggregate = c.aggregate.copy()
        for node in list(aggregate.find_all(exp.Filter)):
            condition = _without(node.expression.this, window)
            if condition is None:  # the scan reads only rows the FILTER would keep
                if node is aggregate:
                    aggregate = node.this
                else:
                    node.replace(node.this)
            else:
                node.expression.set("this", filter_form(condition))
        aggregates.append(exp.alias_(aggregate, c.key))
    select = exp.select(exp.column(ID, table=alias), *aggregates, copy=False).from_(
        exp.alias_(exp.to_table(relation), alias, table=True), copy=False)
    select.group_by(exp.column(ID, table=alias), copy=False)
    if all(c.row_filter is not None for c in columns):
        filters: dict[str, exp.Expr] = {}
        for c in columns:
            assert c.row_filter is not None
            condition = _without(c.row_filter, window)
            if condition is None:  # some aggregate reads every row of the window
                filters = {}
                break
            filters.setdefault(condition.sql(), condition)
        if filters and len(filters) <= PUSHED_FILTERS:
            pushed = [f.copy() for f in filters.values()]
            where.append(exp.or_(*pushed, wrap=True) if len(pushed) > 1 else pushed[0])
    return select.where(filter_form(exp.and_(*where)), copy=False) if where else select


def _event_timestamp(alias: str) -> exp.Expr:
    """``alias."timestamp"`` exactly as the compiler spells an event's ``timestamp``."""
    return exp.Dot(this=exp.Column(this=exp.to_identifier(alias)), expression=exp.to_identifier("timestamp", quoted=True))


def _without(condition: exp.Expr, window: exp.Expr | None) -> exp.Expr | None:
    """``condition`` without its top-level conjuncts equal to ``window`` (None when nothing is left)."""
    if window is None:
        return condition
    text = window.sql()
    kept = [c for c in _conjuncts(condition) if c.sql() != text]
    if not kept:
        return None
    return exp.and_(*(c.copy() for c in kept)) if len(kept) > 1 else kept[0].copy()


def _conjuncts(condition: exp.Expr) -> list[exp.Expr]:
    while isinstance(condition, exp.Paren):
        condition = condition.this
    if isinstance(condition, exp.And):
        return _conjuncts(condition.this) + _conjuncts(condition.expression)
    return [condition]


__all__ = ["Plan", "PlanError", "Stage", "plan_segments"]
