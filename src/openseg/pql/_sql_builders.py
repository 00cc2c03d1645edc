"""Small sqlglot building blocks of the SQL backend: literals, two-valued predicates, intervals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlglot import exp

from openseg.pql import _time, ast
from openseg.pql.dialects import SqlDialect

TRUE = exp.true()
FALSE = exp.false()
_TIMESTAMP = exp.DataType.build("TIMESTAMP")
_DATE = exp.DataType.build("DATE")
_DOUBLE = exp.DataType.build("DOUBLE")
#: Node types that are never NULL once built by the compiler, so need no COALESCE.
_TWO_VALUED = (exp.Coalesce, exp.Boolean, exp.And, exp.Or, exp.Not, exp.Is)


def all_of(conditions: Sequence[exp.Expr]) -> exp.Expr:
    """``c1 AND c2 AND ...`` (see ``_balanced``)."""
    return _balanced(exp.And, conditions)


def any_of(conditions: Sequence[exp.Expr]) -> exp.Expr:
    """``c1 OR c2 OR ...`` (see ``_balanced``)."""
    return _balanced(exp.Or, conditions)


def _balanced(connector: type[exp.And | exp.Or], conditions: Sequence[exp.Expr]) -> exp.Expr:
    """The conditions joined as a balanced tree, which renders as the same flat SQL text.

    ``exp.and_`` builds a left-deep chain: 500 ``and``s make a tree 500 levels deep, and sqlglot and the
    passes below recurse on it. Balanced, it is 9 levels deep.
    """
    level = [exp.paren(c, copy=False) if isinstance(c, exp.Connector) else c for c in conditions]
    while len(level) > 1:
        level = [connector(this=level[i], expression=level[i + 1]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]


def predicate(condition: exp.Expr) -> exp.Expr:
    """``COALESCE(condition, FALSE)``: PQL is two-valued, a predicate over a missing value is false."""
    inner = condition.this if isinstance(condition, exp.Paren) else condition
    if isinstance(inner, _TWO_VALUED) and _two_valued(inner):
        return condition
    return exp.Coalesce(this=condition, expressions=[FALSE.copy()])


def _two_valued(node: exp.Expr) -> bool:
    if isinstance(node, exp.And | exp.Or):
        return all(_two_valued(_unparen(side)) for side in (node.this, node.expression))
    if isinstance(node, exp.Not):
        return _two_valued(_unparen(node.this))
    return isinstance(node, exp.Coalesce | exp.Boolean | exp.Is)


def _unparen(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def filter_form(condition: exp.Expr) -> exp.Expr:
    """``condition`` for a WHERE or FILTER clause, where NULL and FALSE both drop the row: the two-valued
    ``COALESCE(p, FALSE)`` wrappers reachable through AND/OR only are removed (not under NOT, where they
    matter), which spares engines an expression per row and lets DuckDB push the tests into its scans."""
    if isinstance(condition, exp.Paren):
        return exp.paren(filter_form(condition.this), copy=False)
    if isinstance(condition, exp.And | exp.Or):
        return type(condition)(this=filter_form(condition.this), expression=filter_form(condition.expression))
    if (isinstance(condition, exp.Coalesce) and len(condition.expressions) == 1
            and isinstance(condition.expressions[0], exp.Boolean) and not condition.expressions[0].this):
        return filter_form(condition.this)
    return condition


def not_null(value: exp.Expr) -> exp.Expr:
    """``value IS NOT NULL``."""
    return exp.Not(this=exp.Is(this=value.copy(), expression=exp.null()))


def timestamp_literal(value: dt.datetime) -> exp.Expr:
    """A UTC instant as ``CAST('YYYY-MM-DD HH:MM:SS.ffffff' AS TIMESTAMP)`` (the store's naive UTC)."""
    naive = _time.as_instant(value).replace(tzinfo=None)
    return exp.cast(exp.Literal.string(naive.isoformat(sep=" ", timespec="microseconds")), _TIMESTAMP)


def date_literal(value: dt.date) -> exp.Expr:
    """``CAST('YYYY-MM-DD' AS DATE)``."""
    return exp.cast(exp.Literal.string(value.isoformat()), _DATE)


def double_literal(value: float) -> exp.Expr:
    """A DOUBLE literal (a bare ``1.5`` is DECIMAL in both engines, which compares exactly)."""
    return exp.cast(exp.Literal.number(repr(value)), _DOUBLE)


def safe_size(dialect: SqlDialect, array: exp.Expr) -> exp.Expr:
    """The array's length, NULL for a missing array (Spark's legacy ``size(NULL)`` is -1; the dialect decides
    how, see ``null_safe_size``)."""
    return dialect.build("null_safe_size", array.copy())


_INTERVAL_UNITS = {
    ast.TimeUnit.MILLISECOND: ("MILLISECOND", 1),
    ast.TimeUnit.SECOND: ("SECOND", 1),
    ast.TimeUnit.MINUTE: ("MINUTE", 1),
    ast.TimeUnit.HOUR: ("HOUR", 1),
    ast.TimeUnit.DAY: ("DAY", 1),
    ast.TimeUnit.WEEK: ("DAY", 7),
    ast.TimeUnit.MONTH: ("MONTH", 1),
    ast.TimeUnit.YEAR: ("YEAR", 1),
    ast.TimeUnit.DECADE: ("YEAR", 10),
    ast.TimeUnit.CENTURY: ("YEAR", 100),
    ast.TimeUnit.MILLENNIUM: ("YEAR", 1000),
}


def interval(instant: exp.Expr, amount: int, unit: ast.TimeUnit) -> exp.Expr:
    """``instant + INTERVAL 'amount' unit`` (negative amounts subtract); months clamp in both engines."""
    name, factor = _INTERVAL_UNITS[unit]
    step = exp.Interval(this=exp.Literal.string(str(abs(amount) * factor)), unit=exp.var(name))
    operator = exp.Sub if amount < 0 else exp.Add
    return exp.paren(operator(this=instant.copy(), expression=step), copy=False)


def to_double(value: exp.Expr) -> exp.Expr:
    """``CAST(value AS DOUBLE)``."""
    return exp.cast(value, _DOUBLE)
