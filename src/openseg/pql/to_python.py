"""PQL AST -> a Python predicate over one merged profile and its events.

Used for streaming, edge (synchronous) evaluation and explanations, one profile at a time. The semantics
are those of ``to_sql`` (its module docstring lists them) and the differential tests hold both to it:
two-valued logic, missing arrays and event lists are empty, sums are exact decimals, ``/`` and ``%`` by
zero are missing, times are UTC instants resolved against ``as_of`` (never the clock).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from openseg.pql import _time, ast
from openseg.pql._py_calls import compile_call, compile_chain
from openseg.pql._py_context import Env, Event, Fn, Profile, WindowFn
from openseg.pql._py_values import (
    IN_STATUSES,
    aggregate_values,
    arithmetic,
    compare,
    get_path,
    instant_or_none,
    is_true,
    like_regex,
)

Predicate = Callable[[Profile, Sequence[Event]], bool]
#: A predicate compiled without an evaluation time: ``predicate(profile, events, as_of)``.
TimedPredicate = Callable[[Profile, Sequence[Event], dt.datetime], bool]


def compile_predicate(node: ast.Node, as_of: dt.datetime) -> Predicate:
    """Compile a PQL expression to ``predicate(profile, events) -> bool``.

    Args:
        node: The (checked) AST root.
        as_of: Evaluation time (``now``, ``today``, relative windows).

    Returns:
        A function of a merged profile dict (``segmentMembership.ups`` answers ``inSegment``) and the
        profile's event dicts (``timestamp`` a datetime; naive datetimes are UTC).
    """
    fn = PythonCompiler(as_of).boolean(node)

    def predicate(profile: Profile, events: Sequence[Event]) -> bool:
        return bool(fn(Env(profile, events)))

    return predicate


def compile_value(node: ast.Node, as_of: dt.datetime) -> Callable[[Profile, Sequence[Event]], Any]:
    """Compile a PQL value expression (``orders.count()``) to ``value(profile, events)``: its value for one
    profile, None where it is missing (a condition gives True or False)."""
    fn = PythonCompiler(as_of).visit(node)

    def value(profile: Profile, events: Sequence[Event]) -> Any:
        return fn(Env(profile, events))

    return value


def compile_timed(node: ast.Node) -> TimedPredicate:
    """Compile a PQL expression once to ``predicate(profile, events, as_of) -> bool``, the evaluation time an
    input of each call (streaming evaluates one compiled definition at every message's time). Its values are
    those of :func:`compile_predicate` at the same ``as_of``."""
    fn = PythonCompiler(None).boolean(node)

    def predicate(profile: Profile, events: Sequence[Event], as_of: dt.datetime) -> bool:
        return bool(fn(Env(profile, events, as_of=_time.as_instant(as_of))))

    return predicate


class PythonCompiler(ast.Visitor[Fn]):
    """Visitor producing closures ``fn(env) -> value`` (the ``_py_context.PyContext`` of ``_py_calls``).

    ``as_of`` None: the closures read the evaluation time from ``Env.as_of`` (:func:`compile_timed`).
    """

    def __init__(self, as_of: dt.datetime | None) -> None:
        self.as_of = None if as_of is None else _time.as_instant(as_of)

    def timed(self, value: Callable[[dt.datetime], Any]) -> Fn:
        """``value(as_of)``: computed once when the time is fixed, else at each call from ``Env.as_of``."""
        if self.as_of is not None:
            fixed = value(self.as_of)
            return lambda env: fixed
        return lambda env: value(env.as_of)  # type: ignore[arg-type]

    def boolean(self, node: ast.Node) -> Fn:
        """``node`` as a two-valued predicate (lists mean "at least one item")."""
        if isinstance(node, ast.EventFilter | ast.Select):
            # The first item that passes answers: the rest are not tested (the list is not built).
            items, holds = self._filtered(node)
            if holds is None:
                return lambda env: bool(items(env))
            return lambda env: any(holds(env, item) for item in items(env))
        fn = self.visit(node)
        return lambda env: is_true(fn(env))

    # ---------------------------------------------------------------------------------- literals

    def visit_StringLiteral(self, node: ast.StringLiteral) -> Fn:
        return _const(node.value)

    def visit_NumberLiteral(self, node: ast.NumberLiteral) -> Fn:
        return _const(node.value)

    def visit_BooleanLiteral(self, node: ast.BooleanLiteral) -> Fn:
        return _const(node.value)

    def visit_NullLiteral(self, node: ast.NullLiteral) -> Fn:
        return _const(None)

    def visit_DateLiteral(self, node: ast.DateLiteral) -> Fn:
        return _const(node.value)

    def visit_DateTimeLiteral(self, node: ast.DateTimeLiteral) -> Fn:
        return _const(node.value)

    def visit_PeriodEdge(self, node: ast.PeriodEdge) -> Fn:
        return self.timed(lambda as_of: _time.period_edge(node, as_of))

    def visit_CurrentTime(self, node: ast.CurrentTime) -> Fn:
        kind = node.kind
        return self.timed(lambda as_of: _time.current_value(kind, as_of))

    def visit_ArrayLiteral(self, node: ast.ArrayLiteral) -> Fn:
        items = [self.visit(item) for item in node.items]
        return lambda env: [item(env) for item in items]

    def visit_Duration(self, node: ast.Duration) -> Fn:
        raise TypeError("a duration is only meaningful inside `occurs` windows")

    # -------------------------------------------------------------------------------- references

    def visit_FieldPath(self, node: ast.FieldPath) -> Fn:
        segments = node.segments
        if node.root is ast.Root.PROFILE:
            return lambda env: get_path(env.profile, segments)
        if node.root is ast.Root.ITEM:
            return lambda env: get_path(env.item, segments)
        if node.root is ast.Root.VARIABLE:
            name = node.name
            return lambda env: get_path(env.variables.get(name), segments)  # type: ignore[arg-type]
        return lambda env: env.events

    def visit_StepRef(self, node: ast.StepRef) -> Fn:
        name = node.name
        return lambda env: env.steps.get(name)

    def visit_Lambda(self, node: ast.Lambda) -> Fn:
        return self.boolean(node.body)

    # --------------------------------------------------------------------------------- operators

    def visit_Compare(self, node: ast.Compare) -> Fn:
        left, right, op = self.visit(node.left), self.visit(node.right), node.op
        return lambda env: compare(op, left(env), right(env))

    def visit_And(self, node: ast.And) -> Fn:
        operands = [self.boolean(o) for o in node.operands]
        return lambda env: all(o(env) for o in operands)

    def visit_Or(self, node: ast.Or) -> Fn:
        operands = [self.boolean(o) for o in node.operands]
        return lambda env: any(o(env) for o in operands)

    def visit_Not(self, node: ast.Not) -> Fn:
        operand = self.boolean(node.operand)
        return lambda env: not operand(env)

    def visit_In(self, node: ast.In) -> Fn:
        value, values, negated = self.visit(node.value), self.visit(node.values), node.negated
        literal = isinstance(node.values, ast.ArrayLiteral)

        def test(env: Env) -> bool:
            v, options = value(env), values(env)
            if v is None or options is None:
                return False
            found = any(compare(ast.CompareOp.EQ, v, option) for option in options)
            if not negated:
                return found
            # SQL's `x NOT IN (.., NULL)` is never true; keep that for literal lists.
            return not found and not (literal and any(option is None for option in options))

        return test

    def visit_Like(self, node: ast.Like) -> Fn:
        value, pattern = self.visit(node.value), self.visit(node.pattern)

        def test(env: Env) -> bool:
            v, p = value(env), pattern(env)
            if not isinstance(v, str) or not isinstance(p, str):
                return False
            return like_regex(p).fullmatch(v) is not None

        return test

    def visit_If(self, node: ast.If) -> Fn:
        condition, then, otherwise = self.boolean(node.condition), self.visit(node.then), self.visit(node.otherwise)
        return lambda env: then(env) if condition(env) else otherwise(env)

    def visit_Arithmetic(self, node: ast.Arithmetic) -> Fn:
        moved = _time.moved_time(node)
        if moved is not None:
            instant, duration, sign = moved
            value = self.visit(instant)

            def move(env: Env) -> dt.datetime | None:
                at = instant_or_none(value(env))
                return None if at is None else _time.shift(at, sign * duration.amount, duration.unit)

            return move
        left, right, op = self.visit(node.left), self.visit(node.right), node.op
        return lambda env: arithmetic(op, left(env), right(env))

    def visit_Negate(self, node: ast.Negate) -> Fn:
        operand = self.visit(node.operand)

        def negate(env: Env) -> Any:
            value = operand(env)
            return None if value is None else -value

        return negate

    def visit_Call(self, node: ast.Call) -> Fn:
        return compile_call(self, node)

    def visit_InSegment(self, node: ast.InSegment) -> Fn:
        namespace, segment_id = node.namespace, node.segment_id

        def member(env: Env) -> bool:
            namespaces = get_path(env.profile, ("segmentMembership",))
            if not isinstance(namespaces, Mapping):
                return False
            for key, segments in namespaces.items():  # namespaces compare case-insensitively
                if isinstance(key, str) and key.lower() == namespace and isinstance(segments, Mapping):
                    entry = segments.get(segment_id)
                    if isinstance(entry, Mapping) and entry.get("status") in IN_STATUSES:
                        return True
            return False

        return member

    # ---------------------------------------------------------------------------------------- time

    def visit_Occurs(self, node: ast.Occurs) -> Fn:
        value, window = self.visit(node.value), self.window(node.window)
        return lambda env: window(env, instant_or_none(value(env)))

    def window(self, node: ast.TimeWindow) -> WindowFn:
        """``fn(env, instant) -> bool``: whether the instant lies in the window."""
        # Whether the bounds are constant depends on the window's shape only, not on the time.
        if _time.constant_bounds(node, self.as_of or _PROBE) is not None:
            bounds = self.timed(lambda as_of: _time.constant_bounds(node, as_of))
            return lambda env, t: t is not None and any(b.contains(t) for b in bounds(env))
        if isinstance(node, ast.BetweenWindow):
            start, end = self._window_end(node.start, True), self._window_end(node.end, False)
            return lambda env, t: t is not None and start(env, t) and end(env, t)
        assert isinstance(node, ast.OnWindow | ast.PointWindow | ast.RelativeWindow)
        anchor = self.visit(node.anchor)

        def contains(env: Env, t: dt.datetime | None) -> bool:
            # A dynamic anchor is an instant even when it is a date (as in SQL, which cannot tell).
            at = instant_or_none(anchor(env))
            if t is None or at is None:
                return False
            return any(b.contains(t) for b in _time.anchor_bounds(node, at))

        return contains

    def _window_end(self, end: ast.Expr, is_start: bool) -> Callable[[Env, dt.datetime], bool]:
        probe = _time.constant_anchor(end, self.as_of or _PROBE)
        if probe is not None:
            # Whether an end is a date depends on its node, not on the time: the probe tells.
            anchor = self.timed(lambda as_of: _time.as_instant(_time.constant_anchor(end, as_of)))  # type: ignore[arg-type]
            if is_start:
                return lambda env, t: t >= anchor(env)
            if _time.is_date(probe):
                return lambda env, t: t < anchor(env) + dt.timedelta(days=1)
            return lambda env, t: t <= anchor(env)
        value = self.visit(end)

        def test(env: Env, t: dt.datetime) -> bool:
            bound = instant_or_none(value(env))
            return bound is not None and (t >= bound if is_start else t <= bound)

        return test

    # --------------------------------------------------------------------------------- collections

    def items(self, source: ast.Expr) -> Fn:
        """The items of a list source (none when it is missing)."""
        fn = self.visit(source)

        def items(env: Env) -> list[Any]:
            value = fn(env)
            return list(value) if isinstance(value, list | tuple) else []  # missing: no items

        return items

    def _condition(self, variable: str | None, condition: ast.Expr) -> Callable[[Env, Any], bool]:
        test = self.boolean(condition)

        def holds(env: Env, item: Any) -> bool:
            variables = {**env.variables, variable: item} if variable else env.variables
            return bool(test(env.at(item, variables)))

        return holds

    def visit_EventFilter(self, node: ast.EventFilter) -> Fn:
        items, holds = self._filtered(node)
        assert holds is not None
        return lambda env: [item for item in items(env) if holds(env, item)]

    def visit_Select(self, node: ast.Select) -> Fn:
        items, holds = self._filtered(node)
        if holds is None:
            return items
        return lambda env: [item for item in items(env) if holds(env, item)]

    def _filtered(self, node: ast.EventFilter | ast.Select) -> tuple[Fn, Callable[[Env, Any], bool] | None]:
        """The items a filter or a select reads, and the test each must pass to be in it (None: every item)."""
        if isinstance(node, ast.Select):
            return self.items(node.source), None if node.where is None else self._condition(node.variable, node.where)
        source = self.visit(node.source)

        def items(env: Env) -> list[Any]:
            value = source(env)
            # An object filtered by a condition (`person.filter(age >= 21)`) is a list of itself (the checker
            # admits no other dict here: a map is not filtered).
            return [value] if isinstance(value, dict) else list(value) if isinstance(value, list | tuple) else []

        return items, self._condition(None, node.condition)

    def visit_Exists(self, node: ast.Exists) -> Fn:
        items, holds = self.items(node.source), self._condition(node.variable, node.condition)
        return lambda env: any(holds(env, item) for item in items(env))

    def visit_ForAll(self, node: ast.ForAll) -> Fn:
        items, holds = self.items(node.source), self._condition(node.variable, node.condition)
        return lambda env: all(holds(env, item) for item in items(env))

    def visit_Aggregate(self, node: ast.Aggregate) -> Fn:
        items, kind = self.items(node.source), node.kind
        if node.value is None:
            return lambda env: aggregate_values(kind, items(env))
        value = self.visit(node.value)
        return lambda env: aggregate_values(kind, [value(env.at(item)) for item in items(env)],
                                            count=len(items(env)))

    def visit_Chain(self, node: ast.Chain) -> Fn:
        return compile_chain(self, node)


#: Any instant: whether a window or bound is constant is asked of its shape with it.
_PROBE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _const(value: Any) -> Fn:
    return lambda env: value


__all__ = ["Env", "Predicate", "PythonCompiler", "TimedPredicate", "compile_predicate", "compile_timed"]
