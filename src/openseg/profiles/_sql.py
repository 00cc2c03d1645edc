"""Small sqlglot helpers shared by the profile store's DuckDB queries.

Every query of the profile store is built from these constructors: identifiers come from field names
the unified schema holds, values are literals or ``?`` parameters, never pasted text.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
from sqlglot import exp

DIALECT = "duckdb"


def ident(name: str) -> exp.Identifier:
    """A quoted identifier (field names are case- and keyword-sensitive in XDM)."""
    return exp.to_identifier(name, quoted=True)


def col(name: str, table: str | None = None) -> exp.Column:
    """A quoted column reference, optionally qualified by a table alias."""
    return exp.column(ident(name), table=ident(table) if table else None)


def field(struct: exp.Expr, name: str) -> exp.Expr:
    """``struct_extract(struct, 'name')``: unambiguous even where a table alias shares the name."""
    return exp.func("struct_extract", struct, exp.Literal.string(name))


def struct_pack(items: list[tuple[str, exp.Expr]]) -> exp.Expr:
    """``struct_pack(name := value, ...)`` keeping the given field order."""
    return exp.func("struct_pack", *[exp.PropertyEQ(this=ident(n), expression=v) for n, v in items])


def string(value: str) -> exp.Literal:
    """A string literal."""
    return exp.Literal.string(value)


def duckdb_type(connection: duckdb.DuckDBPyConnection, arrow_type: pa.DataType) -> exp.DataType:
    """The DuckDB type DuckDB itself maps an Arrow type to, as a sqlglot type."""
    relation = connection.from_arrow(pa.table({"x": pa.array([], type=arrow_type)}))
    return exp.DataType.build(str(relation.types[0]), dialect=DIALECT)


def cast(expression: exp.Expr, to: exp.DataType) -> exp.Cast:
    """``CAST(expression AS to)``."""
    return exp.cast(expression, to)


def is_null(expression: exp.Expr) -> exp.Is:
    """``expression IS NULL``."""
    return exp.Is(this=expression, expression=exp.Null())


def render(expression: exp.Expr) -> str:
    """SQL text for DuckDB, at the engine boundary."""
    return expression.sql(dialect=DIALECT)
