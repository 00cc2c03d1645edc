"""Statements the domain hands to an engine, written as fixed SQL text and parsed into sqlglot expressions.

The membership diff, history reads and previews say what they compute in a few lines of SQL. The text is
DuckDB's dialect, parsed once by sqlglot into an expression that each engine renders in its own dialect
(``Workspace``, ``Engine.run``). It is fixed text: relation and column names of the module, integers, and
constants rendered by :func:`literal`; never user input spliced in.
"""

from __future__ import annotations

from datetime import datetime

import sqlglot
from sqlglot import exp


def statement(sql: str) -> exp.Query:
    """One of this module's statements as a sqlglot expression, for the workspace to render in its
    engine's dialect. The text is fixed: this module's relation and column names, integers, and literals
    rendered by sqlglot (:func:`literal`); never user input."""
    parsed = sqlglot.parse_one(sql, read="duckdb")
    assert isinstance(parsed, exp.Query), sql
    return parsed


def literal(value: str | datetime) -> str:
    """A string or timestamp constant as SQL text rendered by sqlglot."""
    if isinstance(value, datetime):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("TIMESTAMPTZ")).sql("duckdb")
    return exp.Literal.string(value).sql("duckdb")
