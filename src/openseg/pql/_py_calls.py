"""The registry's ``Call`` functions and ``chain`` for the Python backend (mirrors ``_sql_calls``)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any

from openseg.pql import ast
from openseg.pql._py_context import Env, Fn, PyContext
from openseg.pql._py_values import (
    _number,
    aggregate_values,
    compare,
    instant_or_none,
    is_true,
    regex,
    round_half_away,
    to_text,
)

_Handler = Callable[[PyContext, ast.Call], Fn]
_HANDLERS: dict[str, _Handler] = {}


def _handles(*names: str) -> Callable[[_Handler], _Handler]:
    def register(handler: _Handler) -> _Handler:
        for name in names:
            _HANDLERS[name] = handler
        return handler

    return register


def compile_call(compiler: PyContext, node: ast.Call) -> Fn:
    """Compile one ``Call`` node (raises ``TypeError`` for a name without a translation)."""
    handler = _HANDLERS.get(node.name)
    if handler is None:
        raise TypeError(f"{node.name} has no Python translation")
    return handler(compiler, node)


def handled_names() -> frozenset[str]:
    """Registry names this module compiles."""
    return frozenset(_HANDLERS)


def _unary(compiler: PyContext, node: ast.Call, op: Callable[[Any], Any]) -> Fn:
    """Apply ``op`` to the receiver; a missing receiver gives None."""
    assert node.target is not None
    target = compiler.visit(node.target)

    def apply(env: Env) -> Any:
        value = target(env)
        return None if value is None else op(value)

    return apply


def _binary(compiler: PyContext, node: ast.Call, op: Callable[[Any, Any], Any]) -> Fn:
    """Apply ``op`` to the receiver and the first argument; either missing gives None."""
    assert node.target is not None
    target, arg = compiler.visit(node.target), compiler.visit(node.args[0])

    def apply(env: Env) -> Any:
        value, other = target(env), arg(env)
        return None if value is None or other is None else op(value, other)

    return apply


def _typed(kind: type | tuple[type, ...], op: Callable[..., Any]) -> Callable[..., Any]:
    """``op`` when every argument has type ``kind``, else None (SQL would not apply it)."""
    return lambda *args: op(*args) if all(isinstance(a, kind) for a in args) else None


def _list(value: Any) -> list[Any] | None:
    return list(value) if isinstance(value, list | tuple) else None


# ------------------------------------------------------------------------------------------ nulls


@_handles("isNull")
def _is_null(c: PyContext, node: ast.Call) -> Fn:
    assert node.target is not None
    target = c.visit(node.target)
    return lambda env: target(env) is None


@_handles("isNotNull", "exists")
def _is_not_null(c: PyContext, node: ast.Call) -> Fn:
    assert node.target is not None
    target = c.visit(node.target)
    return lambda env: target(env) is not None


# ---------------------------------------------------------------------------------------- strings

_STRING_TESTS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "equals": (lambda a, b: a == b, False), "notEqualTo": (lambda a, b: a == b, True),
    "startsWith": (str.startswith, False), "doesNotStartWith": (str.startswith, True),
    "endsWith": (str.endswith, False), "doesNotEndWith": (str.endswith, True),
    "contains": (lambda a, b: b in a, False), "doesNotContain": (lambda a, b: b in a, True),
}


@_handles(*_STRING_TESTS)
def _string_test(c: PyContext, node: ast.Call) -> Fn:
    test, negate = _STRING_TESTS[node.name]
    assert node.target is not None
    target, other = c.visit(node.target), c.visit(node.args[0])
    flag = c.boolean(node.args[1]) if len(node.args) > 1 else (lambda env: True)

    def apply(env: Env) -> bool:
        value, expected = target(env), other(env)
        if not isinstance(value, str) or not isinstance(expected, str):
            return False
        if not flag(env):
            value, expected = value.lower(), expected.lower()
        return test(value, expected) != negate

    return apply


@_handles("matches")
def _matches(c: PyContext, node: ast.Call) -> Fn:
    def test(value: Any, pattern: Any) -> bool | None:
        compiled = regex(pattern) if isinstance(pattern, str) else None
        return None if compiled is None or not isinstance(value, str) else compiled.search(value) is not None

    return _binary(c, node, test)


@_handles("regexGroup")
def _regex_group(c: PyContext, node: ast.Call) -> Fn:
    assert node.target is not None
    target, pattern, group = c.visit(node.target), c.visit(node.args[0]), c.visit(node.args[1])

    def extract(env: Env) -> str | None:
        value, compiled, index = target(env), regex(pattern(env) or ""), group(env)
        if not isinstance(value, str) or compiled is None or not isinstance(index, int):
            return None
        found = compiled.search(value)
        if found is None or index > compiled.groups:
            return None
        return found.group(index) or ""

    return extract


@_handles("lower")
def _lower(c: PyContext, node: ast.Call) -> Fn:
    return _unary(c, node, _typed(str, str.lower))


@_handles("upper")
def _upper(c: PyContext, node: ast.Call) -> Fn:
    return _unary(c, node, _typed(str, str.upper))


@_handles("trim")
def _trim(c: PyContext, node: ast.Call) -> Fn:
    return _unary(c, node, _typed(str, lambda s: s.strip(" ")))


@_handles("length")
def _length(c: PyContext, node: ast.Call) -> Fn:
    return _unary(c, node, _typed(str, len))


@_handles("concat")
def _concat(c: PyContext, node: ast.Call) -> Fn:
    parts = [c.visit(arg) for arg in node.args]

    def join(env: Env) -> str | None:
        texts = [to_text(part(env)) for part in parts]
        return None if any(t is None for t in texts) else "".join(t for t in texts if t is not None)

    return join


# ----------------------------------------------------------------------------------------- arrays


def _contains(items: list[Any], value: Any) -> bool:
    return value is not None and any(compare(ast.CompareOp.EQ, item, value) for item in items)


def _distinct(items: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item is not None and not _contains(seen, item):
            seen.append(item)
    return seen


@_handles("includes")
def _includes(c: PyContext, node: ast.Call) -> Fn:
    return _binary(c, node, lambda a, v: _contains(a, v) if _list(a) is not None else None)


@_handles("intersects")
def _intersects(c: PyContext, node: ast.Call) -> Fn:
    return _binary(c, node, _typed((list, tuple), lambda a, b: any(_contains(list(b), x) for x in a)))


@_handles("intersection")
def _intersection(c: PyContext, node: ast.Call) -> Fn:
    return _binary(c, node, _typed((list, tuple), lambda a, b: [x for x in _distinct(list(a)) if _contains(list(b), x)]))


@_handles("subsetOf")
def _subset_of(c: PyContext, node: ast.Call) -> Fn:
    return _binary(c, node, _typed((list, tuple), lambda a, b: all(_contains(list(b), x) for x in a)))


@_handles("supersetOf")
def _superset_of(c: PyContext, node: ast.Call) -> Fn:
    return _binary(c, node, _typed((list, tuple), lambda a, b: all(_contains(list(a), x) for x in b)))


@_handles("distinct")
def _distinct_call(c: PyContext, node: ast.Call) -> Fn:
    return _unary(c, node, lambda a: _distinct(list(a)) if _list(a) is not None else None)


def _count_arg(node: ast.Call, index: int) -> int:
    arg = node.args[index]
    if not (isinstance(arg, ast.NumberLiteral) and arg.is_integer):
        raise TypeError(f"{node.name}: the count must be a whole number literal")
    return max(int(arg.value), 0)


@_handles("first")
def _first(c: PyContext, node: ast.Call) -> Fn:
    n = _count_arg(node, 0)
    return _unary(c, node, lambda a: list(a)[:n] if _list(a) is not None else None)


@_handles("last")
def _last(c: PyContext, node: ast.Call) -> Fn:
    n = _count_arg(node, 0)
    return _unary(c, node, lambda a: (list(a)[-n:] if n else []) if _list(a) is not None else None)


@_handles("topN", "bottomN")
def _top_n(c: PyContext, node: ast.Call) -> Fn:
    n, top, variable = _count_arg(node, 1), node.name == "topN", node.variable
    key = c.visit(node.args[0])
    assert node.target is not None
    target = c.visit(node.target)

    def pick(env: Env) -> list[Any] | None:
        items = _list(target(env))
        if items is None:
            return None
        keyed = []
        for position, item in enumerate(items):
            value = key(_with_item(env, item, variable))
            value = float(value) if _number(value) else None
            keyed.append((value is None, (-value if top else value) if value is not None else 0.0, position, item))
        keyed.sort(key=lambda entry: entry[:3])
        return [entry[3] for entry in keyed[:n]]

    return pick


@_handles("map")
def _map(c: PyContext, node: ast.Call) -> Fn:
    value, variable = c.visit(node.args[0]), node.variable
    assert node.target is not None
    target = c.visit(node.target)

    def apply(env: Env) -> list[Any] | None:
        items = _list(target(env))
        return None if items is None else [value(_with_item(env, item, variable)) for item in items]

    return apply


def _with_item(env: Env, item: Any, variable: str | None = None) -> Env:
    """``env`` on ``item``; a lambda's variable (``x`` in ``map(x => x * 2)``) names it too."""
    if variable is None:
        return env.at(item)
    return env.at(item, {**env.variables, variable: item})


@_handles("head")
def _head(c: PyContext, node: ast.Call) -> Fn:
    return _unary(c, node, lambda a: next(iter(a), None) if _list(a) is not None else None)


@_handles("isEmpty")
def _is_empty(c: PyContext, node: ast.Call) -> Fn:
    assert node.target is not None
    target = c.visit(node.target)
    return lambda env: not (_list(target(env)) or [])


@_handles("isNotEmpty")
def _is_not_empty(c: PyContext, node: ast.Call) -> Fn:
    assert node.target is not None
    target = c.visit(node.target)
    return lambda env: bool(_list(target(env)) or [])


# ------------------------------------------------------------------------------------------- maps


@_handles("groupBy")
def _group_by(c: PyContext, node: ast.Call) -> Fn:
    key, variable = c.visit(node.args[0]), node.variable
    assert node.target is not None
    target = c.visit(node.target)

    def apply(env: Env) -> dict[Any, list[Any]] | None:
        items = _list(target(env))
        if items is None:
            return None
        groups: dict[Any, list[Any]] = {}
        for item in items:
            value = key(_with_item(env, item, variable))
            if value is not None:
                groups.setdefault(value, []).append(item)
        return groups

    return apply


@_handles("get")
def _get(c: PyContext, node: ast.Call) -> Fn:
    return _binary(c, node, lambda m, k: m.get(k) if isinstance(m, Mapping) else None)


@_handles("keys")
def _keys(c: PyContext, node: ast.Call) -> Fn:
    return _unary(c, node, lambda m: list(m.keys()) if isinstance(m, Mapping) else None)


@_handles("values")
def _values(c: PyContext, node: ast.Call) -> Fn:
    return _unary(c, node, lambda m: list(m.values()) if isinstance(m, Mapping) else None)


@_handles("containsKey")
def _contains_key(c: PyContext, node: ast.Call) -> Fn:
    return _binary(c, node, lambda m, k: k in m if isinstance(m, Mapping) else None)


# ------------------------------------------------------------------------------------------- math


@_handles("abs")
def _abs(c: PyContext, node: ast.Call) -> Fn:
    return _unary(c, node, lambda v: abs(v) if _number(v) else None)


@_handles("round")
def _round(c: PyContext, node: ast.Call) -> Fn:
    return _unary(c, node, round_half_away)


@_handles("floor")
def _floor(c: PyContext, node: ast.Call) -> Fn:
    return _unary(c, node, lambda v: math.floor(v) if _number(v) else None)


@_handles("ceil")
def _ceil(c: PyContext, node: ast.Call) -> Fn:
    return _unary(c, node, lambda v: math.ceil(v) if _number(v) else None)


# -------------------------------------------------------------------------------------- date/time


@_handles("currentYear", "currentMonth", "currentDayOfMonth")
def _current(c: PyContext, node: ast.Call) -> Fn:
    part = {"currentYear": "year", "currentMonth": "month", "currentDayOfMonth": "day"}[node.name]
    return c.timed(lambda as_of: getattr(as_of, part))


def _date_part(part: str) -> Callable[[Any], Any]:
    return lambda v: getattr(instant_or_none(v), part) if isinstance(v, dt.date) else None


@_handles("getYear")
def _get_year(c: PyContext, node: ast.Call) -> Fn:
    return _unary(c, node, _date_part("year"))


@_handles("getMonth")
def _get_month(c: PyContext, node: ast.Call) -> Fn:
    return _unary(c, node, _date_part("month"))


@_handles("getDayOfMonth")
def _get_day(c: PyContext, node: ast.Call) -> Fn:
    return _unary(c, node, _date_part("day"))


@_handles("age")
def _age(c: PyContext, node: ast.Call) -> Fn:
    assert node.target is not None
    target, today = c.visit(node.target), c.timed(lambda as_of: as_of.date())

    def age(env: Env) -> int | None:
        born, now = instant_or_none(target(env)), today(env)
        if born is None:
            return None
        return int(now.year - born.year - (1 if (born.month, born.day) > (now.month, now.day) else 0))

    return age


@_handles("anniversary")
def _anniversary(c: PyContext, node: ast.Call) -> Fn:
    assert node.target is not None
    target = c.visit(node.target)
    anchor = c.visit(node.args[0] if node.args else ast.CurrentTime(ast.CurrentTimeKind.TODAY))

    def test(env: Env) -> bool:
        value, at = instant_or_none(target(env)), instant_or_none(anchor(env))
        return value is not None and at is not None and (value.month, value.day) == (at.month, at.day)

    return test


# ------------------------------------------------------------------------------------------ chain


def compile_chain(c: PyContext, node: ast.Chain) -> Fn:
    """Whether events match the chain's steps in order (semantics in ``_sql_chain``'s docstring)."""
    source = c.items(node.source)
    time_of = c.visit(node.time_field)
    steps = [(step, c.boolean(step.what), c.window(step.when) if step.when is not None else None)
             for step in node.steps]
    positive = [entry for entry in steps if not entry[0].negated]

    def matches(env: Env, entry: Any, event: Any, t: dt.datetime, chosen: dict[str, dt.datetime]) -> bool:
        step, what, when = entry
        # The step's event is also named when `^` reads it from a list of its condition.
        variables = {**env.variables, step.variable: event} if step.variable else env.variables
        scoped = env.at(event, variables, dict(chosen))
        return is_true(what(scoped)) and (when is None or when(scoped, t))

    def no_violation(env: Env, timed: list[tuple[dt.datetime, Any]], chosen: dict[str, dt.datetime]) -> bool:
        for index, entry in enumerate(steps):
            if not entry[0].negated:
                continue
            before = next((chosen[s.name] for s, _, _ in reversed(steps[:index]) if not s.negated), None)
            after = next((chosen[s.name] for s, _, _ in steps[index + 1:] if not s.negated), None)
            for t, event in timed:
                if (before is None or t > before) and (after is None or t < after) and matches(env, entry, event, t, chosen):
                    return False
        return True

    def search(env: Env, timed: list[tuple[dt.datetime, Any]], index: int, chosen: dict[str, dt.datetime]) -> bool:
        if index == len(positive):
            return no_violation(env, timed, chosen)
        entry = positive[index]
        previous = chosen[positive[index - 1][0].name] if index else None
        for t, event in timed:
            if previous is not None and not t > previous:
                continue
            if matches(env, entry, event, t, chosen):
                chosen[entry[0].name] = t
                if search(env, timed, index + 1, chosen):
                    return True
                del chosen[entry[0].name]
        return False

    def holds(env: Env) -> bool:
        timed = []
        for event in source(env):
            t = instant_or_none(time_of(env.at(event)))
            if t is not None:
                timed.append((t, event))
        timed.sort(key=lambda pair: pair[0])
        return search(env, timed, 0, {})

    return holds


__all__ = ["aggregate_values", "compile_call", "compile_chain", "handled_names"]
