"""SQL for the registry's ``Call`` functions and for aggregates over arrays (part of the SQL backend).

One ``_<name>`` function per registry name; ``compile_call`` dispatches and fails loudly for a name it
does not know, so a function added to the registry cannot silently compile to nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from openseg.pql import _time, ast
from openseg.pql._sql_builders import FALSE, TRUE, not_null, predicate, safe_size, to_double
from openseg.pql._sql_context import SqlContext
from openseg.pql.dialects import DECIMAL, lambda_

_Handler = Callable[[SqlContext, ast.Call], exp.Expr]
_HANDLERS: dict[str, _Handler] = {}


def _handles(*names: str) -> Callable[[_Handler], _Handler]:
    def register(handler: _Handler) -> _Handler:
        for name in names:
            _HANDLERS[name] = handler
        return handler

    return register


def compile_call(compiler: SqlContext, node: ast.Call) -> exp.Expr:
    """Compile one ``Call`` node.

    Raises:
        NotSupportedOnEngine: For a function the engine cannot run.
    """
    compiler.dialect.check(node.name)
    handler = _HANDLERS.get(node.name)
    if handler is None:
        raise compiler.unsupported(node.name, "no SQL translation")
    return handler(compiler, node)


def handled_names() -> frozenset[str]:
    """Registry names this module compiles (a test compares it with ``functions.call_names()``)."""
    return frozenset(_HANDLERS)


def _target(compiler: SqlContext, node: ast.Call) -> exp.Expr:
    assert node.target is not None
    return compiler.visit(node.target)


def _temporal_target(compiler: SqlContext, node: ast.Call) -> exp.Expr:
    """The target of a date function; a field the data never held (a bare NULL) is a typed one, which the
    engine's date functions accept (``year(NULL)`` matches no overload)."""
    value = _target(compiler, node)
    return exp.cast(value, exp.DataType.build("TIMESTAMP")) if isinstance(value, exp.Null) else value


def _int_arg(compiler: SqlContext, node: ast.Call, index: int) -> int:
    arg = node.args[index]
    if not (isinstance(arg, ast.NumberLiteral) and arg.is_integer):
        raise compiler.unsupported(node.name, "the count must be a whole number literal")
    return max(int(arg.value), 0)


# ----------------------------------------------------------------------------------- null tests


@_handles("isNull")
def _is_null(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.Is(this=_target(c, node), expression=exp.null())


@_handles("isNotNull", "exists")
def _is_not_null(c: SqlContext, node: ast.Call) -> exp.Expr:
    return not_null(_target(c, node))


# -------------------------------------------------------------------------------------- strings


def _case_pair(c: SqlContext, node: ast.Call) -> tuple[exp.Expr, exp.Expr, ast.Expr | None]:
    flag = node.args[1] if len(node.args) > 1 else None
    return _target(c, node), c.visit(node.args[0]), flag


def _with_case(c: SqlContext, node: ast.Call, test: Callable[[exp.Expr, exp.Expr], exp.Expr]
               ) -> exp.Expr:
    value, other, flag = _case_pair(c, node)
    sensitive = test(value, other)
    insensitive = test(exp.Lower(this=value.copy()), exp.Lower(this=other.copy()))
    if flag is None or (isinstance(flag, ast.BooleanLiteral) and flag.value):
        return sensitive
    if isinstance(flag, ast.BooleanLiteral):
        return insensitive
    return exp.Case(ifs=[exp.If(this=predicate(c.visit(flag)), true=sensitive)], default=insensitive)


def _negated(test: exp.Expr) -> exp.Expr:
    return exp.Not(this=exp.paren(test, copy=False))


_STRING_TESTS: dict[str, tuple[str | None, bool]] = {
    "equals": (None, False), "notEqualTo": (None, True),
    "startsWith": ("starts_with", False), "doesNotStartWith": ("starts_with", True),
    "endsWith": ("ends_with", False), "doesNotEndWith": ("ends_with", True),
    "contains": ("str_contains", False), "doesNotContain": ("str_contains", True),
}


@_handles(*_STRING_TESTS)
def _string_test(c: SqlContext, node: ast.Call) -> exp.Expr:
    construct, negate = _STRING_TESTS[node.name]

    def test(a: exp.Expr, b: exp.Expr) -> exp.Expr:
        if construct is None:
            return exp.EQ(this=a, expression=b)
        return c.dialect.build(construct, a, b)

    result = _with_case(c, node, test)
    # A missing string makes the test NULL, and NOT NULL stays NULL: "does not" is false when missing.
    return _negated(result) if negate else result


@_handles("matches")
def _matches(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.RegexpLike(this=_target(c, node), expression=c.visit(node.args[0]))


@_handles("regexGroup")
def _regex_group(c: SqlContext, node: ast.Call) -> exp.Expr:
    value, regex, group = _target(c, node), c.visit(node.args[0]), c.visit(node.args[1])
    # Both engines return '' when the regex does not match; PQL's value is missing then.
    matched = exp.RegexpLike(this=value, expression=regex)
    extract = c.dialect.build("regexp_extract", value.copy(), regex.copy(), group)
    return exp.Case(ifs=[exp.If(this=matched, true=extract)])


@_handles("lower")
def _lower(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.Lower(this=_target(c, node))


@_handles("upper")
def _upper(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.Upper(this=_target(c, node))


@_handles("trim")
def _trim(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.Trim(this=_target(c, node))


@_handles("length")
def _length(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.Length(this=_target(c, node))


@_handles("concat")
def _concat(c: SqlContext, node: ast.Call) -> exp.Expr:
    parts = [
        c.visit(arg) if isinstance(arg, ast.StringLiteral) else exp.cast(c.visit(arg), "VARCHAR")
        for arg in node.args
    ]
    result = parts[0]
    for part in parts[1:]:
        result = exp.DPipe(this=result, expression=part, safe=False)
    return exp.paren(result, copy=False)


# --------------------------------------------------------------------------------------- arrays


@_handles("includes")
def _includes(c: SqlContext, node: ast.Call) -> exp.Expr:
    return c.dialect.build("array_contains", _target(c, node), c.visit(node.args[0]))


def _empty(node: ast.Expr) -> bool:
    """An empty array literal: Spark types ``ARRAY()`` as array<null>, which set functions reject."""
    return isinstance(node, ast.ArrayLiteral) and not node.items


@_handles("intersects")
def _intersects(c: SqlContext, node: ast.Call) -> exp.Expr:
    if _empty(node.args[0]):
        return FALSE.copy()
    return c.dialect.build("array_overlaps", _target(c, node), c.visit(node.args[0]))


@_handles("intersection")
def _intersection(c: SqlContext, node: ast.Call) -> exp.Expr:
    if _empty(node.args[0]):
        var = f"_s{c.lambda_depth}"
        return c.dialect.build("array_filter", _target(c, node), lambda_([var], FALSE.copy()))
    return c.dialect.build("array_intersect", _target(c, node), c.visit(node.args[0]))


def _all_in(c: SqlContext, items: exp.Expr, container: exp.Expr) -> exp.Expr:
    """Every item of ``items`` is in ``container`` (NULL when ``items`` is missing)."""
    var = f"_s{c.lambda_depth}"
    missing = exp.Not(this=predicate(c.dialect.build("array_contains", container, exp.column(var))))
    outside = c.dialect.build("array_filter", items, lambda_([var], missing))
    return exp.EQ(this=safe_size(c.dialect, outside), expression=exp.Literal.number(0))


@_handles("subsetOf")
def _subset_of(c: SqlContext, node: ast.Call) -> exp.Expr:
    if _empty(node.args[0]):
        return exp.EQ(this=safe_size(c.dialect, _target(c, node)), expression=exp.Literal.number(0))
    return _all_in(c, _target(c, node), c.visit(node.args[0]))


@_handles("supersetOf")
def _superset_of(c: SqlContext, node: ast.Call) -> exp.Expr:
    array = _target(c, node)
    if _empty(node.args[0]):
        return not_null(array)
    return exp.and_(not_null(array), predicate(_all_in(c, c.visit(node.args[0]), array.copy())))


@_handles("distinct")
def _distinct(c: SqlContext, node: ast.Call) -> exp.Expr:
    return c.dialect.build("array_distinct", _target(c, node), f"_d{c.lambda_depth}")


@_handles("first")
def _first(c: SqlContext, node: ast.Call) -> exp.Expr:
    count = exp.Literal.number(_int_arg(c, node, 0))
    return c.dialect.build("array_slice", _target(c, node), exp.Literal.number(1), count)


@_handles("last")
def _last(c: SqlContext, node: ast.Call) -> exp.Expr:
    array, n = _target(c, node), _int_arg(c, node, 0)
    start = exp.Greatest(
        this=exp.Add(this=exp.Sub(this=c.dialect.build("array_size", array.copy()), expression=exp.Literal.number(n)),
                     expression=exp.Literal.number(1)),
        expressions=[exp.Literal.number(1)],
    )
    return c.dialect.build("array_slice", array, start, exp.Literal.number(n))


@_handles("topN", "bottomN")
def _top_n(c: SqlContext, node: ast.Call) -> exp.Expr:
    # Sort (key missing, -key | key, position) structs ascending, then read the first n items back by position:
    # no field is NULL and positions are distinct, so every engine orders them alike (a missing key last, ties
    # in the array's order), and the items themselves need not be orderable (Spark's sort_array requires it).
    array, n = _target(c, node), _int_arg(c, node, 1)
    var, key = c.item_lambda(array, node.variable, node.args[0], as_boolean=False)
    key = to_double(key)
    if node.name == "topN":
        key = exp.Neg(this=exp.paren(key, copy=False))
    position = f"{var}_n"
    pack = exp.Struct(expressions=[
        exp.PropertyEQ(this=exp.to_identifier("m"), expression=exp.Is(this=key.copy(), expression=exp.null())),
        exp.PropertyEQ(this=exp.to_identifier("k"), expression=exp.Coalesce(this=key, expressions=[to_double(
            exp.Literal.number(0))])),
        exp.PropertyEQ(this=exp.to_identifier("n"), expression=c.dialect.build("lambda_position", exp.column(position))),
    ])
    keyed = c.dialect.build("array_transform", array.copy(), lambda_([var, position], pack))
    sliced = c.dialect.build("array_slice", c.dialect.build("sort_ascending", keyed), exp.Literal.number(1),
                             exp.Literal.number(n))
    item = c.dialect.build("array_element", array, exp.Dot(this=exp.column(var), expression=exp.to_identifier("n")))
    return c.dialect.build("array_transform", sliced, lambda_([var], item))


@_handles("map")
def _map(c: SqlContext, node: ast.Call) -> exp.Expr:
    array = _target(c, node)
    var, value = c.item_lambda(array, node.variable, node.args[0], as_boolean=False)
    return c.dialect.build("array_transform", array.copy(), lambda_([var], value))


@_handles("groupBy")
def _group_by(c: SqlContext, node: ast.Call) -> exp.Expr:
    # A map from each distinct non-null key (first appearance first) to the items with that key, in order.
    array = _target(c, node)
    var, key = c.item_lambda(array, node.variable, node.args[0], as_boolean=False)
    keys = c.dialect.build("array_distinct", c.dialect.build("array_transform", array.copy(), lambda_([var], key)),
                           f"_g{c.lambda_depth}")
    group_key = f"_k{c.lambda_depth}"
    c.lambda_depth += 1
    try:
        var, item_key = c.item_lambda(array, node.variable, node.args[0], as_boolean=False)
    finally:
        c.lambda_depth -= 1
    members = c.dialect.build("array_filter", array.copy(),
                              lambda_([var], exp.EQ(this=item_key, expression=exp.column(group_key))))
    groups = c.dialect.build("array_transform", keys.copy(), lambda_([group_key], members))
    return exp.Case(ifs=[exp.If(this=not_null(array), true=c.dialect.build("map_from_arrays", keys, groups))])


@_handles("head")
def _head(c: SqlContext, node: ast.Call) -> exp.Expr:
    return c.dialect.build("array_element", _target(c, node), exp.Literal.number(1))


@_handles("isEmpty")
def _is_empty(c: SqlContext, node: ast.Call) -> exp.Expr:
    size = safe_size(c.dialect, _target(c, node))
    return exp.Coalesce(this=exp.EQ(this=size, expression=exp.Literal.number(0)), expressions=[TRUE.copy()])


@_handles("isNotEmpty")
def _is_not_empty(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.GT(this=safe_size(c.dialect, _target(c, node)), expression=exp.Literal.number(0))


# ----------------------------------------------------------------------------------------- maps


@_handles("get")
def _get(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.Bracket(this=_target(c, node), expressions=[c.visit(node.args[0])])


@_handles("keys")
def _keys(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.Anonymous(this="map_keys", expressions=[_target(c, node)])


@_handles("values")
def _values(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.Anonymous(this="map_values", expressions=[_target(c, node)])


@_handles("containsKey")
def _contains_key(c: SqlContext, node: ast.Call) -> exp.Expr:
    return c.dialect.build("map_contains_key", _target(c, node), c.visit(node.args[0]))


# ----------------------------------------------------------------------------------------- math


@_handles("abs")
def _abs(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.Abs(this=_target(c, node))


@_handles("round")
def _round(c: SqlContext, node: ast.Call) -> exp.Expr:
    # ROUND on DOUBLE/DECIMAL rounds halves away from zero in DuckDB and Spark alike.
    return exp.Round(this=_target(c, node))


@_handles("floor")
def _floor(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.Floor(this=_target(c, node))


@_handles("ceil")
def _ceil(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.Ceil(this=_target(c, node))


# ------------------------------------------------------------------------------------ date/time


@_handles("currentYear", "currentMonth", "currentDayOfMonth")
def _current(c: SqlContext, node: ast.Call) -> exp.Expr:
    part = {"currentYear": "year", "currentMonth": "month", "currentDayOfMonth": "day"}[node.name]
    return exp.Literal.number(getattr(c.as_of, part))


@_handles("getYear")
def _get_year(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.Year(this=_temporal_target(c, node))


@_handles("getMonth")
def _get_month(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.Month(this=_temporal_target(c, node))


@_handles("getDayOfMonth")
def _get_day(c: SqlContext, node: ast.Call) -> exp.Expr:
    return exp.Day(this=_temporal_target(c, node))


@_handles("age")
def _age(c: SqlContext, node: ast.Call) -> exp.Expr:
    value, today = _temporal_target(c, node), c.as_of.date()
    month, day = exp.Month(this=value.copy()), exp.Day(this=value.copy())
    later = exp.or_(
        exp.GT(this=month, expression=exp.Literal.number(today.month)),
        exp.and_(exp.EQ(this=month.copy(), expression=exp.Literal.number(today.month)),
                 exp.GT(this=day, expression=exp.Literal.number(today.day))),
    )
    birthday_ahead = exp.Case(ifs=[exp.If(this=later, true=exp.Literal.number(1))], default=exp.Literal.number(0))
    years = exp.Sub(this=exp.Literal.number(today.year), expression=exp.Year(this=value))
    return exp.paren(exp.Sub(this=years, expression=birthday_ahead), copy=False)


@_handles("anniversary")
def _anniversary(c: SqlContext, node: ast.Call) -> exp.Expr:
    value = _temporal_target(c, node)
    anchor_node = node.args[0] if node.args else ast.CurrentTime(ast.CurrentTimeKind.TODAY)
    constant = _time.constant_anchor(anchor_node, c.as_of)
    month: exp.Expr
    day: exp.Expr
    if constant is not None:
        month, day = exp.Literal.number(constant.month), exp.Literal.number(constant.day)
    else:
        anchor = c.visit(anchor_node)
        month, day = exp.Month(this=anchor), exp.Day(this=anchor.copy())
    return exp.and_(exp.EQ(this=exp.Month(this=value), expression=month),
                    exp.EQ(this=exp.Day(this=value.copy()), expression=day))


# ------------------------------------------------------------------------------ array aggregates


def array_aggregate(c: SqlContext, node: ast.Aggregate) -> exp.Expr:
    """``count/sum/average/min/max`` over an array (a missing array counts and sums to 0)."""
    array = c.visit(node.source)
    if node.value is not None:
        var, value = c.item_lambda(array, None, node.value, as_boolean=False)
        array = c.dialect.build("array_transform", array, lambda_([var], value))
    if node.kind is ast.AggregateKind.COUNT:
        return exp.Coalesce(this=safe_size(c.dialect, array), expressions=[exp.Literal.number(0)])
    return aggregate_items(c, node.kind, array)


def aggregate_items(c: SqlContext, kind: ast.AggregateKind, array: exp.Expr) -> exp.Expr:
    """``sum/average/min/max`` of the values in ``array`` (missing values left out; a missing array sums to 0)."""
    var = f"_a{c.lambda_depth}"
    if kind is ast.AggregateKind.MIN:
        return c.dialect.build("array_min", array)
    if kind is ast.AggregateKind.MAX:
        return c.dialect.build("array_max", array)
    total = c.dialect.build("array_sum", array, var)
    if kind is ast.AggregateKind.SUM:
        return exp.Coalesce(this=total, expressions=[exp.cast(exp.Literal.number(0), DECIMAL)])
    present = c.dialect.build("array_filter", array.copy(), lambda_([var], not_null(exp.column(var))))
    count = exp.Nullif(this=c.dialect.build("array_size", present), expression=exp.Literal.number(0))
    return exp.Div(this=to_double(total), expression=count)


__all__ = ["aggregate_items", "array_aggregate", "compile_call", "handled_names"]
