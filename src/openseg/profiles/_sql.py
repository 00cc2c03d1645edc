"""Small sqlglot helpers shared by the profile store's queries.

Every query of the profile store is built from these constructors: identifiers come from field names
the unified schema holds, values are literals or ``?`` parameters, never pasted text. Fixed statements are
DuckDB-dialect text parsed once (:func:`statement`); a workspace renders them in its engine's dialect.
"""

from __future__ import annotations

import pyarrow as pa
import sqlglot
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
    return exp.func("struct_extract", struct, exp.Literal.string(name), dialect=DIALECT)


def struct_pack(items: list[tuple[str, exp.Expr]]) -> exp.Expr:
    """``struct_pack(name := value, ...)`` keeping the given field order."""
    return exp.func("struct_pack", *[exp.PropertyEQ(this=ident(n), expression=v) for n, v in items], dialect=DIALECT)


def string(value: str) -> exp.Literal:
    """A string literal."""
    return exp.Literal.string(value)


def statement(sql: str) -> exp.Query:
    """A fixed statement of the store (its own relation and column names, never input) as a sqlglot query."""
    parsed = portable(sqlglot.parse_one(sql, read=DIALECT))
    assert isinstance(parsed, exp.Query), sql
    return parsed


def expression(sql: str) -> exp.Expr:
    """A fixed expression of the store, as :func:`statement` reads it."""
    return portable(sqlglot.parse_one(sql, read=DIALECT))


def portable(tree: exp.Expr) -> exp.Expr:
    """``tree`` with DuckDB list functions that sqlglot renders in no other dialect spelled portably:
    ``list_bool_or(list_transform(xs, f))`` becomes ``len(list_filter(xs, f)) > 0`` (Spark: ``size(filter(...))``;
    a NULL list is no match either way)."""

    def rewrite(node: exp.Expr) -> exp.Expr:
        if (isinstance(node, exp.Anonymous) and node.name.lower() == "list_bool_or" and len(node.expressions) == 1
                and isinstance(node.expressions[0], exp.Transform)):
            mapped = node.expressions[0]
            matches = exp.ArrayFilter(this=mapped.this, expression=mapped.expression)
            return exp.GT(this=exp.ArraySize(this=matches), expression=exp.Literal.number(0))
        return node

    return tree.transform(rewrite)


#: Arrow types the unified schemas hold (after :func:`openseg.profiles.sources.normalize_type`), as the SQL
#: type names DuckDB gives them.
_PRIMITIVES: dict[pa.DataType, str] = {
    pa.bool_(): "BOOLEAN",
    pa.int8(): "TINYINT",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.uint8(): "UTINYINT",
    pa.uint16(): "USMALLINT",
    pa.uint32(): "UINTEGER",
    pa.uint64(): "UBIGINT",
    pa.float16(): "FLOAT",
    pa.float32(): "FLOAT",
    pa.float64(): "DOUBLE",
    pa.string(): "VARCHAR",
    pa.large_string(): "VARCHAR",
    pa.binary(): "BLOB",
    pa.large_binary(): "BLOB",
    pa.date32(): "DATE",
    pa.date64(): "DATE",
    pa.timestamp("us"): "TIMESTAMP",
}


def sql_type(arrow_type: pa.DataType) -> exp.DataType:
    """The SQL type of an Arrow type, as DuckDB maps it (``TIMESTAMP`` is UTC without a zone: Spark's
    ``TIMESTAMP_NTZ``).

    Raises:
        TypeError: For an Arrow type no profile source holds after normalisation.
    """
    if arrow_type in _PRIMITIVES:
        return exp.DataType.build(_PRIMITIVES[arrow_type], dialect=DIALECT)
    if pa.types.is_decimal(arrow_type):
        return exp.DataType.build(f"DECIMAL({arrow_type.precision}, {arrow_type.scale})", dialect=DIALECT)
    if pa.types.is_struct(arrow_type):
        children = [arrow_type.field(i) for i in range(arrow_type.num_fields)]
        return exp.DataType(this=exp.DataType.Type.STRUCT, nested=True, expressions=[
            exp.ColumnDef(this=ident(child.name), kind=sql_type(child.type)) for child in children])
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return exp.DataType(this=exp.DataType.Type.ARRAY, nested=True, expressions=[sql_type(arrow_type.value_type)])
    if pa.types.is_map(arrow_type):
        return exp.DataType(this=exp.DataType.Type.MAP, nested=True,
                            expressions=[sql_type(arrow_type.key_type), sql_type(arrow_type.item_type)])
    raise TypeError(f"no SQL type for the Arrow type {arrow_type}")


def cast(expression: exp.Expr, to: exp.DataType) -> exp.Cast:
    """``CAST(expression AS to)``."""
    return exp.cast(expression, to)


def is_null(expression: exp.Expr) -> exp.Is:
    """``expression IS NULL``."""
    return exp.Is(this=expression, expression=exp.Null())


def render(expression: exp.Expr) -> str:
    """SQL text for DuckDB, at the engine boundary."""
    return expression.sql(dialect=DIALECT)
