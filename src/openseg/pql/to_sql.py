"""PQL AST -> sqlglot expressions for DuckDB and Spark.

Compiling an expression gives a two-valued boolean over the profile row (alias ``p``) and the *derived
columns* it reads: per-profile event aggregates, quantifiers over events, sequences and segment
memberships. Each derived column has a deterministic key (the same filter and window give the same key,
so the planner computes it once for every segment) and a query yielding ``(_profile_id, value)``; the
columns, relation names and what the planner supplies live in ``derived`` (the planner's side of the seam).

Semantics shared with ``to_python`` (docs/pql.md has the user-facing version):

* Two-valued logic: a predicate over a missing value is false; every predicate is wrapped in
  ``COALESCE(pred, FALSE)`` before ``and``/``or``/``not`` so ``not (x = "US")`` holds when ``x`` is missing.
* A missing array or event list is empty: ``count`` is 0, ``sum`` is 0, ``exists`` is false, ``forall`` true;
  ``average``/``min``/``max`` of nothing are missing. Sums are DECIMAL(38, 6) (deterministic in parallel);
  averages are that exact sum as DOUBLE divided by the number of values.
* ``/`` is floating point and ``/`` or ``%`` by zero is missing, never an error.
* Times are UTC instants resolved against ``as_of`` (see ``_time``); the compiler never reads the clock.

User values only ever become literals; identifiers come only from field paths.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlglot import exp

from openseg.pql import _time, ast
from openseg.pql._arrays import through_arrays
from openseg.pql._profile_tests import MAX_PROFILE_TESTS, decided_atoms
from openseg.pql._sql_builders import (
    FALSE,
    TRUE,
    all_of,
    any_of,
    date_literal,
    double_literal,
    interval,
    not_null,
    predicate,
    safe_size,
    timestamp_literal,
)
from openseg.pql._sql_calls import array_aggregate, compile_call
from openseg.pql._sql_chain import compile_chain
from openseg.pql._sql_context import Scope
from openseg.pql._sql_event_lists import listed_aggregate, listed_chain
from openseg.pql._sugar import substitute
from openseg.pql.derived import (
    DEFAULT_MAP_PATHS,
    EVENT_ALIAS,
    EVENTS,
    MEMBERSHIP,
    MEMBERSHIP_ALIAS,
    PROFILE_ALIAS,
    ArrowPaths,
    DerivedColumn,
    MembershipRelation,
    PathCheck,
    bounds_condition,
    column_key,
)
from openseg.pql.dialects import DECIMAL, SqlDialect, get_dialect, lambda_
from openseg.pql.errors import NotSupportedOnEngine
from openseg.xdm.schema import Schema


@dataclass(frozen=True)
class CompiledExpression:
    """A compiled PQL expression: a condition over ``p`` plus the derived columns it reads."""

    condition: exp.Expr
    derived: tuple[DerivedColumn, ...]

    def sql(self, dialect: str) -> str:
        """The condition as SQL text (derived columns appear by key)."""
        return self.condition.sql(dialect=dialect)


def compile_expression(
    node: ast.Node,
    as_of: dt.datetime,
    dialect: str = "duckdb",
    *,
    segment_columns: Mapping[str, exp.Expr] | None = None,
    membership: MembershipRelation | None = None,
    map_paths: frozenset[tuple[str, ...]] = DEFAULT_MAP_PATHS,
    has_path: PathCheck | None = None,
    value: bool = False,
) -> CompiledExpression:
    """Compile a PQL expression to a boolean over the profile row plus its derived columns.

    Args:
        node: The (checked) AST root.
        as_of: Evaluation time: ``now``, ``today`` and relative windows resolve against it.
        dialect: ``"duckdb"`` or ``"spark"``.
        segment_columns: Segment id -> boolean column computed earlier in the same plan.
        membership: How to read the ``membership`` relation for other ``inSegment`` ids (None: there is
            none, they are false: nobody has been segmented yet).
        map_paths: Profile paths whose type is a map.
        has_path: Whether the data holds a field (``"profile"`` or ``"event"``, path); a field it never
            held compiles to null instead of failing in the engine. None: every field exists.
        value: Compile the expression's value (``orders.count()``) instead of a condition; ``condition`` is
            then that value.

    Returns:
        The compiled expression.

    Raises:
        NotSupportedOnEngine: When the engine cannot run a construct of the expression.
    """
    compiler = SqlCompiler(as_of, get_dialect(dialect), segment_columns or {}, membership, map_paths, has_path)
    if isinstance(node, ast.Expr):
        # Paths through arrays become explicit maps; the data's own types tell where tenant arrays are.
        schema = has_path.schema() if isinstance(has_path, ArrowPaths) else Schema.standard()
        node = through_arrays(node, schema)
    condition = compiler.visit(node) if value else compiler.boolean(node)
    return CompiledExpression(condition, tuple(compiler.derived.values()))


_COMPARE: Mapping[ast.CompareOp, type[exp.Binary]] = {
    ast.CompareOp.EQ: exp.EQ, ast.CompareOp.NE: exp.NEQ, ast.CompareOp.LT: exp.LT,
    ast.CompareOp.LE: exp.LTE, ast.CompareOp.GT: exp.GT, ast.CompareOp.GE: exp.GTE,
}


class SqlCompiler(ast.Visitor[exp.Expr]):
    """Visitor producing sqlglot expressions; collects derived columns as it goes.

    It is the ``_sql_context.SqlContext`` that ``_sql_calls`` and ``_sql_chain`` call back into.
    """

    def __init__(
        self,
        as_of: dt.datetime,
        dialect: SqlDialect,
        segment_columns: Mapping[str, exp.Expr],
        membership: MembershipRelation | None,
        map_paths: frozenset[tuple[str, ...]],
        has_path: PathCheck | None = None,
    ) -> None:
        self.as_of = _time.as_instant(as_of)
        self.has_path = has_path
        self.dialect = dialect
        self.segment_columns = segment_columns
        self.membership = membership
        self.map_paths = map_paths
        self.derived: dict[str, DerivedColumn] = {}
        self.scope = Scope("profile")
        self.lambda_depth = 0
        #: Profile fields read inside event conditions so far: a derived column whose compiling raised it
        #: reads the profile row beside each event.
        self.profile_reads = 0

    # ---------------------------------------------------------------------------------- helpers

    def boolean(self, node: ast.Node) -> exp.Expr:
        """``node`` as a two-valued predicate (lists mean "at least one item")."""
        if isinstance(node, ast.EventFilter | ast.Select):
            return self.visit(ast.Exists(None, node, ast.BooleanLiteral(True)))
        return predicate(self.visit(node))

    def unsupported(self, construct: str, reason: str) -> NotSupportedOnEngine:
        """The error for a construct no SQL engine here can run."""
        return NotSupportedOnEngine(self.dialect.name, construct, reason)

    def _in_scope(self, scope: Scope, node: ast.Node, as_boolean: bool = False) -> exp.Expr:
        saved, self.scope = self.scope, scope
        try:
            return self.boolean(node) if as_boolean else self.visit(node)
        finally:
            self.scope = saved

    def item_lambda(self, array: exp.Expr, variable: str | None, body: ast.Node,
                    as_boolean: bool = True, events: bool = False) -> tuple[str, exp.Expr]:
        """Compile ``body`` over one item of ``array`` (``events``: an array of event rows); returns the
        lambda variable and body."""
        var = f"_i{self.lambda_depth}"
        self.lambda_depth += 1
        try:
            item = exp.column(var)
            variables = {**self.scope.variables, **({variable: item} if variable else {})}
            bound = self.scope.event_variables - {variable} if variable else self.scope.event_variables
            if events and variable:
                bound = bound | {variable}
            scope = replace(self.scope, item=item, variables=variables, event_item=events, event_variables=bound)
            return var, self._in_scope(scope, body, as_boolean)
        finally:
            self.lambda_depth -= 1

    def register(self, column: DerivedColumn) -> exp.Expr:
        """Record a derived column the expression reads; returns its reference."""
        return self._register(column)

    def _register(self, column: DerivedColumn) -> exp.Expr:
        self.derived.setdefault(column.key, column)
        return self.derived[column.key].reference()

    def _absent(self, row: str, segments: Sequence[str]) -> bool:
        """A field the data has never held reads as null (the checker accepted it from the XDM schema)."""
        return bool(segments) and self.has_path is not None and not self.has_path(row, tuple(segments))

    def _path(self, base: exp.Expr, segments: Sequence[str], prefix: tuple[str, ...] = ()) -> exp.Expr:
        value = base
        for index, segment in enumerate(segments):
            if prefix and prefix + tuple(segments[:index]) in self.map_paths:
                value = exp.Bracket(this=value, expressions=[exp.Literal.string(segment)])
            else:
                value = exp.Dot(this=value, expression=exp.to_identifier(segment, quoted=True))
        return value

    # --------------------------------------------------------------------------------- literals

    def visit_StringLiteral(self, node: ast.StringLiteral) -> exp.Expr:
        return exp.Literal.string(node.value)

    def visit_NumberLiteral(self, node: ast.NumberLiteral) -> exp.Expr:
        return exp.Literal.number(node.value) if node.is_integer else double_literal(float(node.value))

    def visit_BooleanLiteral(self, node: ast.BooleanLiteral) -> exp.Expr:
        return exp.Boolean(this=node.value)

    def visit_NullLiteral(self, node: ast.NullLiteral) -> exp.Expr:
        return exp.null()

    def visit_DateLiteral(self, node: ast.DateLiteral) -> exp.Expr:
        return date_literal(node.value)

    def visit_DateTimeLiteral(self, node: ast.DateTimeLiteral) -> exp.Expr:
        return timestamp_literal(node.value)

    def visit_PeriodEdge(self, node: ast.PeriodEdge) -> exp.Expr:
        return timestamp_literal(_time.period_edge(node, self.as_of))

    def visit_CurrentTime(self, node: ast.CurrentTime) -> exp.Expr:
        value = _time.current_value(node.kind, self.as_of)
        return timestamp_literal(value) if isinstance(value, dt.datetime) else date_literal(value)

    def visit_ArrayLiteral(self, node: ast.ArrayLiteral) -> exp.Expr:
        return exp.Array(expressions=[self.visit(item) for item in node.items])

    def visit_Duration(self, node: ast.Duration) -> exp.Expr:
        raise self.unsupported("duration", "a duration is only meaningful inside `occurs` windows")

    # -------------------------------------------------------------------------------- references

    def visit_FieldPath(self, node: ast.FieldPath) -> exp.Expr:
        if node.root is ast.Root.PROFILE:
            if self.scope.row == "event":
                # Read from the profile row the events scan joins (``derived.join_profiles``).
                self.profile_reads += 1
            if self._absent("profile", node.segments):
                return exp.null()
            first = exp.column(node.segments[0], table=PROFILE_ALIAS, quoted=True)
            return self._path(first, node.segments[1:], (node.segments[0],))
        if node.root is ast.Root.ITEM:
            if self.scope.item is None:
                raise self.unsupported("item path", f"{node.dotted} is used outside of a list condition")
            if self.scope.event_item and self._absent("event", node.segments):
                return exp.null()
            return self._path(self.scope.item, node.segments)
        if node.root is ast.Root.VARIABLE:
            assert node.name is not None
            if node.name not in self.scope.variables:
                raise self.unsupported("variable", f"{node.name} is not bound here")
            if node.name in self.scope.event_variables and self._absent("event", node.segments):
                return exp.null()
            return self._path(self.scope.variables[node.name], node.segments)
        raise self.unsupported("xEvent", "xEvent is a list of events: filter, aggregate or quantify it")

    def visit_StepRef(self, node: ast.StepRef) -> exp.Expr:
        if node.name not in self.scope.steps:
            raise self.unsupported("chain step reference", f"{node.name} is not an earlier, non-negated step")
        return self.scope.steps[node.name]

    def visit_Lambda(self, node: ast.Lambda) -> exp.Expr:
        return self.boolean(node.body)

    # --------------------------------------------------------------------------------- operators

    def visit_Compare(self, node: ast.Compare) -> exp.Expr:
        return _COMPARE[node.op](this=self.visit(node.left), expression=self.visit(node.right))

    def visit_And(self, node: ast.And) -> exp.Expr:
        return all_of([self.boolean(o) for o in node.operands])

    def visit_Or(self, node: ast.Or) -> exp.Expr:
        return any_of([self.boolean(o) for o in node.operands])

    def visit_Not(self, node: ast.Not) -> exp.Expr:
        return exp.Not(this=exp.paren(self.boolean(node.operand), copy=False))

    def visit_In(self, node: ast.In) -> exp.Expr:
        value = self.visit(node.value)
        if isinstance(node.values, ast.ArrayLiteral):
            test: exp.Expr = exp.In(this=value, expressions=[self.visit(v) for v in node.values.items])
            if not node.values.items:
                test = exp.And(this=not_null(value), expression=FALSE)
        else:
            test = self.dialect.build("array_contains", self.visit(node.values), value)
        # notIn is a comparison: false when the value is missing, like `!=`.
        return exp.and_(not_null(value), exp.Not(this=exp.paren(test))) if node.negated else test

    def visit_Like(self, node: ast.Like) -> exp.Expr:
        value = self.visit(node.value)
        if isinstance(node.pattern, ast.StringLiteral):
            regex = like_to_regex(node.pattern.value)
            return exp.RegexpLike(this=value, expression=exp.Literal.string(regex))
        return exp.Like(this=value, expression=self.visit(node.pattern))

    def visit_If(self, node: ast.If) -> exp.Expr:
        return exp.Case(ifs=[exp.If(this=self.boolean(node.condition), true=self.visit(node.then))],
                        default=self.visit(node.otherwise))

    def visit_Arithmetic(self, node: ast.Arithmetic) -> exp.Expr:
        moved = _time.moved_time(node)
        if moved is not None:
            instant, duration, sign = moved
            timestamp = exp.cast(self.visit(instant), exp.DataType.build("TIMESTAMP"))
            return interval(timestamp, sign * duration.amount, duration.unit)
        left, right = self.visit(node.left), self.visit(node.right)
        if node.op is ast.ArithOp.DIV:
            double = exp.DataType.build("DOUBLE")
            divisor = exp.Nullif(this=exp.cast(right, double), expression=exp.Literal.number(0))
            return exp.Div(this=exp.cast(left, double), expression=divisor)
        if node.op is ast.ArithOp.POW:
            return _power(left, right)
        if node.op is ast.ArithOp.MOD:
            return exp.Mod(this=left, expression=exp.Nullif(this=right, expression=exp.Literal.number(0)))
        operator = {ast.ArithOp.ADD: exp.Add, ast.ArithOp.SUB: exp.Sub, ast.ArithOp.MUL: exp.Mul}[node.op]
        return exp.paren(operator(this=left, expression=right), copy=False)

    def visit_Negate(self, node: ast.Negate) -> exp.Expr:
        return exp.Neg(this=exp.paren(self.visit(node.operand), copy=False))

    def visit_Call(self, node: ast.Call) -> exp.Expr:
        return compile_call(self, node)

    def visit_InSegment(self, node: ast.InSegment) -> exp.Expr:
        if node.namespace == "ups" and node.segment_id in self.segment_columns:
            return self.segment_columns[node.segment_id].copy()
        member = self.membership.member(node.segment_id, MEMBERSHIP_ALIAS) if self.membership else None
        if node.namespace != "ups" or member is None:
            return FALSE.copy()
        count = exp.Filter(this=exp.Count(this=exp.Star()), expression=exp.Where(this=member))
        column = DerivedColumn(
            key=column_key(MEMBERSHIP, count), relation=MEMBERSHIP, aggregate=count, row_filter=member,
            default=exp.Literal.number(0),
        )
        return exp.GT(this=self._register(column), expression=exp.Literal.number(0))

    # ------------------------------------------------------------------------------------- time

    def visit_Occurs(self, node: ast.Occurs) -> exp.Expr:
        return self.window(self.visit(node.value), node.window)

    def window(self, value: exp.Expr, window: ast.TimeWindow) -> exp.Expr:
        """The condition that the time ``value`` lies in ``window``."""
        bounds = _time.constant_bounds(window, self.as_of)
        if bounds is not None:
            return exp.or_(*(bounds_condition(value, b) for b in bounds), wrap=True) if bounds else FALSE.copy()
        return self._dynamic_window(value, window)

    def _dynamic_window(self, value: exp.Expr, window: ast.TimeWindow) -> exp.Expr:
        timestamp = exp.DataType.build("TIMESTAMP")
        if isinstance(window, ast.BetweenWindow):
            return exp.and_(self._window_end(value, window.start, True), self._window_end(value, window.end, False))
        assert isinstance(window, ast.OnWindow | ast.PointWindow | ast.RelativeWindow)
        anchor = exp.cast(self.visit(window.anchor), timestamp)
        day = exp.DataType.build("DATE")
        if isinstance(window, ast.OnWindow):
            return exp.EQ(this=exp.cast(value, day), expression=exp.cast(anchor, day))
        if isinstance(window, ast.PointWindow):
            before = window.direction is ast.Direction.BEFORE
            return (exp.LT if before else exp.GT)(this=value, expression=anchor)
        assert isinstance(window, ast.RelativeWindow)
        before = window.direction is ast.Direction.BEFORE
        amount = -window.amount if before else window.amount
        edge = interval(anchor, amount, window.unit)
        side = (exp.LTE if before else exp.GTE)(this=value, expression=anchor.copy())
        if window.op in (ast.CompareOp.EQ, ast.CompareOp.NE):
            if window.unit in _time.DAY_OR_LONGER:
                equal: exp.Expr = exp.EQ(this=exp.cast(value, day), expression=exp.cast(edge, day))
            else:
                equal = exp.EQ(this=value, expression=edge)
            return equal if window.op is ast.CompareOp.EQ else exp.and_(side, exp.Not(this=exp.paren(equal)))
        near = window.op in (ast.CompareOp.LT, ast.CompareOp.LE)
        inclusive = window.op in (ast.CompareOp.LE, ast.CompareOp.GE)
        if near:  # between the edge and the anchor
            toward = (exp.GTE if inclusive else exp.GT) if before else (exp.LTE if inclusive else exp.LT)
            return exp.and_(side, toward(this=value.copy(), expression=edge))
        away = (exp.LTE if inclusive else exp.LT) if before else (exp.GTE if inclusive else exp.GT)
        return away(this=value, expression=edge)

    def _window_end(self, value: exp.Expr, end: ast.Expr, is_start: bool) -> exp.Expr:
        constant = _time.constant_anchor(end, self.as_of)
        if constant is None:
            bound = exp.cast(self.visit(end), exp.DataType.build("TIMESTAMP"))
            return (exp.GTE if is_start else exp.LTE)(this=value.copy(), expression=bound)
        instant = _time.as_instant(constant)
        if is_start:
            return exp.GTE(this=value.copy(), expression=timestamp_literal(instant))
        if _time.is_date(constant):
            return exp.LT(this=value.copy(), expression=timestamp_literal(instant + dt.timedelta(days=1)))
        return exp.LTE(this=value.copy(), expression=timestamp_literal(instant))

    # ------------------------------------------------------------------------------ collections

    def visit_EventFilter(self, node: ast.EventFilter) -> exp.Expr:
        if _is_events(node):
            raise self.unsupported("event list value", "use the filtered events with count(), exists or an aggregate")
        array = self.visit(node.source)
        var, body = self.item_lambda(array, None, node.condition)
        return self.dialect.build("array_filter", array, lambda_([var], body))

    def visit_Select(self, node: ast.Select) -> exp.Expr:
        if _is_events(node):
            raise self.unsupported("event list value", "use the selected events with count() or as a condition")
        array = self.visit(node.source)
        if node.where is None:
            return array
        var, body = self.item_lambda(array, node.variable, node.where)
        return self.dialect.build("array_filter", array, lambda_([var], body))

    def visit_Exists(self, node: ast.Exists) -> exp.Expr:
        if _is_events(node.source):
            count = self._event_aggregate(ast.AggregateKind.COUNT, node.source, None, node.condition, node.variable)
            return exp.GT(this=count, expression=exp.Literal.number(0))
        array = self.visit(node.source)
        var, body = self.item_lambda(array, node.variable, node.condition)
        matches = self.dialect.build("array_filter", array, lambda_([var], body))
        return predicate(exp.GT(this=safe_size(self.dialect, matches), expression=exp.Literal.number(0)))

    def visit_ForAll(self, node: ast.ForAll) -> exp.Expr:
        negated = ast.Not(node.condition)
        if _is_events(node.source):
            count = self._event_aggregate(ast.AggregateKind.COUNT, node.source, None, negated, node.variable)
            return exp.EQ(this=count, expression=exp.Literal.number(0))
        array = self.visit(node.source)
        var, body = self.item_lambda(array, node.variable, negated)
        failures = self.dialect.build("array_filter", array, lambda_([var], body))
        # A missing array has no items, so every item (none) satisfies the condition.
        return exp.Coalesce(this=exp.EQ(this=safe_size(self.dialect, failures), expression=exp.Literal.number(0)),
                            expressions=[TRUE.copy()])

    def visit_Aggregate(self, node: ast.Aggregate) -> exp.Expr:
        if _is_events(node.source):
            return self._event_aggregate(node.kind, node.source, node.value, None, None)
        return array_aggregate(self, node)

    def visit_Chain(self, node: ast.Chain) -> exp.Expr:
        if not _is_events(node.source):
            raise self.unsupported("chain", "chain() runs over xEvent")
        atoms = decided_atoms(node.steps)
        if len(atoms) > MAX_PROFILE_TESTS:
            return listed_chain(self, node)
        if atoms:
            return self._decided(atoms, lambda fixed: self._register(compile_chain(self, fixed(node))))
        return self._register(compile_chain(self, node))

    # ---------------------------------------------------------------------------- event columns

    def event_scope(self, alias: str = EVENT_ALIAS, variable: str | None = None) -> Scope:
        """The scope of one event row under ``alias``."""
        if self.scope.row == "event":
            raise self.unsupported("nested event list", "an event condition cannot read xEvent again")
        item: exp.Expr = exp.Column(this=exp.to_identifier(alias))
        variables = {variable: item} if variable else {}
        return Scope("event", item=item, variables=variables, event_item=True,
                      event_variables=frozenset(variables))

    def event_conditions(self, source: ast.Expr, variable: str | None, alias: str = EVENT_ALIAS
                         ) -> tuple[list[exp.Expr], list[ast.Expr]]:
        """The compiled filters of an event source (``xEvent[a][b]``, ``select X from xEvent where``)."""
        conditions: list[exp.Expr] = []
        nodes: list[ast.Expr] = []
        while not (isinstance(source, ast.FieldPath) and source.root is ast.Root.EVENTS):
            if isinstance(source, ast.EventFilter):
                condition, var = source.condition, None
            elif isinstance(source, ast.Select) and source.where is not None:
                condition, var = source.where, source.variable
            elif isinstance(source, ast.Select):
                source = source.source
                continue
            else:
                raise self.unsupported("event source", f"{type(source).__name__} is not a list of events")
            conditions.append(self._in_scope(self.event_scope(alias, var), condition, as_boolean=True))
            nodes.append(condition)
            source = source.source
        return conditions, nodes

    def _event_aggregate(self, kind: ast.AggregateKind, source: ast.Expr, value: ast.Expr | None,
                         condition: ast.Expr | None, variable: str | None, split: bool = True) -> exp.Expr:
        atoms = decided_atoms((source, value, condition)) if split else []
        if len(atoms) > MAX_PROFILE_TESTS:
            return listed_aggregate(self, kind, source, value, condition, variable,
                                    event_bounds(_event_filters(source, condition), self.as_of))
        if atoms:
            return self._split_on_profile(atoms, kind, source, value, condition, variable)
        reads_before = self.profile_reads
        conditions, nodes = self.event_conditions(source, None)
        scope = self.event_scope(EVENT_ALIAS, variable)
        if condition is not None and condition != ast.BooleanLiteral(True):
            conditions.append(self._in_scope(scope, condition, as_boolean=True))
            nodes.append(condition)
        row_filter = exp.and_(*conditions) if conditions else None
        bounds = event_bounds(nodes, self.as_of)
        column = self._event_column(kind, value, scope, row_filter, bounds)
        if self.profile_reads != reads_before:
            column = replace(column, reads_profile=True)
        return self._register(column)

    def _split_on_profile(self, atoms: list[ast.Expr], kind: ast.AggregateKind, source: ast.Expr,
                          value: ast.Expr | None, condition: ast.Expr | None, variable: str | None) -> exp.Expr:
        """An event aggregate whose condition also tests the profile (``^^.person.gender = "female"`` inside an
        event filter): see :meth:`_decided`."""
        def compiled(fixed: Callable[[Any], Any]) -> exp.Expr:
            def decide(part: ast.Expr | None) -> ast.Expr | None:
                return None if part is None else fixed(part)

            return self._event_aggregate(kind, fixed(source), decide(value), decide(condition), variable,
                                         split=False)

        return self._decided(atoms, compiled)

    def _decided(self, atoms: list[ast.Expr], compiled: Callable[[Callable[[Any], Any]], exp.Expr]) -> exp.Expr:
        """A profile test inside an event condition is decided both ways, each way compiled (``compiled(fixed)``,
        ``fixed(tree)`` putting the answers in) to its own event column, and the profile's own answer picks one:
        the events scan then needs no profile row (a profile field beside an event field is read from the profile
        row the scan joins instead, ``derived.join_profiles``). An atom may also occur inside another
        (``inSegment("a")`` alone and in ``inSegment("a") or inSegment("b")``): answers go in outermost first."""
        def decided(chosen: dict[ast.Expr, bool]) -> exp.Expr:
            if len(chosen) < len(atoms):
                atom = atoms[len(chosen)]
                when_true, when_false = decided({**chosen, atom: True}), decided({**chosen, atom: False})
                return exp.Case(ifs=[exp.If(this=self.boolean(atom), true=when_true)], default=when_false)

            answers = {atom: ast.BooleanLiteral(value, span=atom.span) for atom, value in chosen.items()}
            return compiled(lambda tree: substitute(tree, answers))

        return decided({})

    def _event_column(self, kind: ast.AggregateKind, value: ast.Expr | None, scope: Scope,
                      row_filter: exp.Expr | None, bounds: _time.Bounds | None) -> DerivedColumn:
        def filtered(aggregate: exp.Expr) -> exp.Expr:
            if row_filter is None:
                return aggregate
            return exp.Filter(this=aggregate, expression=exp.Where(this=row_filter.copy()))

        default: exp.Expr = exp.null()
        if kind is ast.AggregateKind.COUNT:
            aggregate, default = filtered(exp.Count(this=exp.Star())), exp.Literal.number(0)
        else:
            if value is None:
                raise self.unsupported(kind.value, "an event aggregate needs a value, e.g. sum(commerce.order.priceTotal)")
            item = self._in_scope(scope, value)
            if kind is ast.AggregateKind.SUM:
                aggregate = filtered(exp.Sum(this=exp.cast(item, DECIMAL)))
                default = exp.cast(exp.Literal.number(0), DECIMAL)
            elif kind is ast.AggregateKind.AVG:
                total = exp.cast(filtered(exp.Sum(this=exp.cast(item, DECIMAL))), exp.DataType.build("DOUBLE"))
                count = exp.Nullif(this=filtered(exp.Count(this=item.copy())), expression=exp.Literal.number(0))
                aggregate = exp.Div(this=total, expression=count)
            else:
                aggregate = filtered((exp.Min if kind is ast.AggregateKind.MIN else exp.Max)(this=item))
        return DerivedColumn(column_key(EVENTS, aggregate), EVENTS, aggregate, row_filter, bounds, default)


def _event_filters(source: ast.Expr, condition: ast.Expr | None) -> list[ast.Expr]:
    """The conditions an event of ``source`` meets to be counted (``condition`` too, when given)."""
    found = [] if condition is None else [condition]
    while isinstance(source, ast.EventFilter | ast.Select):
        test = source.condition if isinstance(source, ast.EventFilter) else source.where
        if test is not None:
            found.append(test)
        source = source.source
    return found


def _is_events(node: ast.Expr) -> bool:
    """Whether ``node`` is xEvent or a filter/selection of it."""
    while isinstance(node, ast.EventFilter | ast.Select):
        node = node.source
    return isinstance(node, ast.FieldPath) and node.root is ast.Root.EVENTS


def event_bounds(conditions: Sequence[ast.Expr], as_of: dt.datetime) -> _time.Bounds | None:
    """The time range of ``timestamp`` implied by top-level ``occurs`` conjuncts, if any."""
    found: _time.Bounds | None = None
    for condition in conditions:
        conjuncts = condition.operands if isinstance(condition, ast.And) else (condition,)
        for conjunct in conjuncts:
            if not (isinstance(conjunct, ast.Occurs) and isinstance(conjunct.value, ast.FieldPath)
                    and conjunct.value.root is ast.Root.ITEM and conjunct.value.segments == ("timestamp",)):
                continue
            bounds = _time.constant_bounds(conjunct.window, as_of)
            if not bounds:
                continue
            hull = bounds[0]
            for other in bounds[1:]:
                hull = hull.hull(other)
            found = hull if found is None else _intersect(found, hull)
    return found


def _intersect(a: _time.Bounds, b: _time.Bounds) -> _time.Bounds:
    low = b.low if a.low is None else a.low if b.low is None else max(a.low, b.low)
    high = b.high if a.high is None else a.high if b.high is None else min(a.high, b.high)
    return _time.Bounds(low, high, True, True)


_REGEX_SPECIAL = frozenset(string.punctuation)


def like_to_regex(pattern: str) -> str:
    """A PQL ``like`` pattern (``%`` any run, ``_`` one character) as an anchored regular expression.

    Only ASCII punctuation is escaped: RE2 (DuckDB), Java (Spark) and Python all read ``\\`` before
    punctuation as the literal character, while RE2 rejects it before letters or spaces.
    """
    parts = []
    for char in pattern:
        if char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        elif char in _REGEX_SPECIAL:
            parts.append("\\" + char)
        else:
            parts.append(char)
    return "(?s)^" + "".join(parts) + "$"


def _power(base: exp.Expr, exponent: exp.Expr) -> exp.Expr:
    """``base ^ exponent`` as a DOUBLE, missing where it is not a real number.

    Both engines follow IEEE 754 (0 to a negative power is infinity, a negative base to a fractional power
    NaN), and they order NaN differently from Python; PQL's value is missing there instead, as for ``/ 0``.
    """
    double = exp.DataType.build("DOUBLE")
    b, e = exp.cast(base, double), exp.cast(exponent, double)
    zero = exp.Literal.number(0)
    undefined = exp.or_(
        exp.and_(exp.EQ(this=b.copy(), expression=zero), exp.LT(this=e.copy(), expression=zero.copy())),
        exp.and_(exp.LT(this=b.copy(), expression=zero.copy()), exp.NEQ(this=e.copy(), expression=exp.Floor(this=e.copy()))),
    )
    return exp.Case(ifs=[exp.If(this=exp.Not(this=exp.paren(undefined, copy=False)), true=exp.Pow(this=b, expression=e))])
