"""Per-engine override tables for the few SQL constructs DuckDB and Spark spell differently.

The SQL compiler asks a :class:`SqlDialect` for these constructs by name instead of relying on sqlglot's
transpilation, which mis-handles several of them in sqlglot 30 (docs/engine-pitfalls: ``len`` becomes
Spark's string-only ``LENGTH``, ``map_contains_key`` arguments are swapped for DuckDB, Spark lambdas are
lost inside ``exists``). Function names below are fixed identifiers, never user input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlglot import exp

from openseg.pql.errors import NotSupportedOnEngine

Builder = Callable[..., exp.Expr]

#: Money and other sums are DECIMAL so that parallel aggregation is deterministic.
DECIMAL = exp.DataType.build("DECIMAL(38, 6)")


def _fn(name: str) -> Builder:
    """A builder calling the engine function ``name`` with the given arguments."""
    return lambda *args: exp.Anonymous(this=name, expressions=list(args))


def lambda_(params: list[str], body: exp.Expr) -> exp.Lambda:
    """``(params) -> body`` (sqlglot renders DuckDB's ``LAMBDA x : body`` form)."""
    return exp.Lambda(this=body, expressions=[exp.to_identifier(p) for p in params])


def _decimal_items(transform: Builder, array: exp.Expr, var: str) -> exp.Expr:
    return transform(array, lambda_([var], exp.cast(exp.column(var), DECIMAL)))


def _duckdb_sum(array: exp.Expr, var: str) -> exp.Expr:
    return _fn("list_sum")(_decimal_items(_fn("list_transform"), array, var))


def _spark_sum(array: exp.Expr, var: str) -> exp.Expr:
    # Spark has no array sum: fold with a DECIMAL accumulator, skipping NULL items.
    acc = f"{var}_acc"
    step = exp.Add(
        this=exp.column(acc),
        expression=exp.Coalesce(
            this=exp.cast(exp.column(var), DECIMAL), expressions=[exp.cast(exp.Literal.number(0), DECIMAL)]
        ),
    )
    has_items = exp.GT(
        this=_fn("size")(_fn("filter")(array, lambda_([var], exp.Not(this=exp.column(var).is_(exp.null()))))),
        expression=exp.Literal.number(0),
    )
    folded = _fn("aggregate")(array, exp.cast(exp.Literal.number(0), DECIMAL), lambda_([acc, var], step))
    return exp.Case(ifs=[exp.If(this=has_items, true=folded)])


def _spark_null_safe_size(array: exp.Expr) -> exp.Expr:
    # Spark's legacy size(NULL) is -1: a missing array must stay NULL.
    present = exp.Not(this=exp.Is(this=array.copy(), expression=exp.null()))
    return exp.Case(ifs=[exp.If(this=present, true=_fn("size")(array))])


def _duckdb_distinct(array: exp.Expr, var: str) -> exp.Expr:
    # list_distinct does not keep order; keep the first occurrence of each non-NULL item instead.
    index = f"{var}_n"
    first = exp.EQ(this=_fn("list_position")(array, exp.column(var)), expression=exp.column(index))
    keep = exp.and_(exp.Not(this=exp.column(var).is_(exp.null())), first)
    return _fn("list_filter")(array, lambda_([var, index], keep))


def _spark_distinct(array: exp.Expr, var: str) -> exp.Expr:
    not_null = exp.Not(this=exp.column(var).is_(exp.null()))
    return _fn("array_distinct")(_fn("filter")(array, lambda_([var], not_null)))


@dataclass(frozen=True)
class SqlDialect:
    """The sqlglot dialect name plus builders for the constructs engines spell differently.

    Attributes:
        name: sqlglot dialect (and engine) name.
        builders: Construct name -> builder taking sqlglot expressions.
        unsupported: Construct name -> reason, for PQL constructs this engine cannot run.
    """

    name: str
    builders: Mapping[str, Builder]
    unsupported: Mapping[str, str] = field(default_factory=dict)

    def build(self, construct: str, *args: exp.Expr | str) -> exp.Expr:
        """Build ``construct`` for this engine.

        Raises:
            NotSupportedOnEngine: When the engine cannot run the construct.
        """
        if construct in self.unsupported:
            raise NotSupportedOnEngine(self.name, construct, self.unsupported[construct])
        return self.builders[construct](*args)

    def check(self, construct: str) -> None:
        """Raise :class:`NotSupportedOnEngine` if this engine cannot run ``construct``."""
        if construct in self.unsupported:
            raise NotSupportedOnEngine(self.name, construct, self.unsupported[construct])


DUCKDB = SqlDialect(
    name="duckdb",
    builders={
        "array_size": _fn("len"),
        # len(NULL) is NULL already: no CASE, which would evaluate a filtered array twice per row.
        "null_safe_size": _fn("len"),
        "array_contains": _fn("list_contains"),
        "array_overlaps": _fn("list_has_any"),
        "array_intersect": _fn("list_intersect"),
        "array_filter": _fn("list_filter"),
        "array_transform": _fn("list_transform"),
        "array_slice": lambda a, start, length: _fn("list_slice")(
            a, start, exp.Sub(this=exp.Add(this=start, expression=length), expression=exp.Literal.number(1))
        ),
        # Not exp.Bracket: sqlglot shifts bracket indexes by the dialect's index offset.
        "array_element": _fn("list_extract"),
        "array_sum": _duckdb_sum,
        "array_min": _fn("list_min"),
        "array_max": _fn("list_max"),
        "array_distinct": _duckdb_distinct,
        "map_contains_key": _fn("map_contains"),
        "map_from_arrays": _fn("map"),
        "regexp_extract": _fn("regexp_extract"),
        "starts_with": _fn("starts_with"),
        "ends_with": _fn("suffix"),
        "str_contains": _fn("contains"),
        "sort_ascending": lambda a: _fn("list_sort")(a, exp.Literal.string("ASC"), exp.Literal.string("NULLS LAST")),
        # The index a two-parameter list_transform lambda receives is 1-based.
        "lambda_position": lambda i: i,
        # Every event row of a profile as one list of structs (an aggregate over the events scan ``e``).
        "events_list": lambda row: exp.ArrayAgg(this=row),
    },
)

SPARK = SqlDialect(
    name="spark",
    builders={
        "array_size": _fn("size"),
        "null_safe_size": _spark_null_safe_size,
        "array_contains": _fn("array_contains"),
        "array_overlaps": _fn("arrays_overlap"),
        "array_intersect": _fn("array_intersect"),
        "array_filter": _fn("filter"),
        "array_transform": _fn("transform"),
        "array_slice": _fn("slice"),
        "array_element": _fn("try_element_at"),
        "array_sum": _spark_sum,
        "array_min": _fn("array_min"),
        "array_max": _fn("array_max"),
        "array_distinct": _spark_distinct,
        "map_contains_key": _fn("map_contains_key"),
        "map_from_arrays": _fn("map_from_arrays"),
        "regexp_extract": _fn("regexp_extract"),
        "starts_with": _fn("startswith"),
        "ends_with": _fn("endswith"),
        "str_contains": _fn("contains"),
        "sort_ascending": lambda a: _fn("sort_array")(a, exp.true()),
        # The index a two-parameter transform lambda receives is 0-based; element_at's is 1-based.
        "lambda_position": lambda i: exp.Add(this=i, expression=exp.Literal.number(1)),
        "events_list": lambda row: exp.ArrayAgg(this=exp.Struct(expressions=[exp.Column(this=exp.Star(), table=row.this)])),
    },
)

DIALECTS: Mapping[str, SqlDialect] = {d.name: d for d in (DUCKDB, SPARK)}


def get_dialect(name: str) -> SqlDialect:
    """The override table of an engine (``"duckdb"`` or ``"spark"``).

    Raises:
        ValueError: For an unknown engine.
    """
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown SQL dialect {name!r}; expected one of {sorted(DIALECTS)}") from None
