"""The SQL compiler as its helper modules see it (part of the SQL backend).

``to_sql.SqlCompiler`` visits the tree and hands ``Call`` nodes, array aggregates and chains to
``_sql_calls`` and ``_sql_chain``, which call back into it. They see it through :class:`SqlContext`
rather than importing the compiler, so ``to_sql`` imports them at module level and no import cycle is
needed to split the backend into files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sqlglot import exp

from openseg.pql import ast
from openseg.pql.derived import EVENT_ALIAS, DerivedColumn
from openseg.pql.dialects import SqlDialect
from openseg.pql.errors import NotSupportedOnEngine


@dataclass(frozen=True)
class Scope:
    """What paths resolve to where an expression is compiled."""

    row: str  # "profile" or "event"
    item: exp.Expr | None = None
    variables: Mapping[str, exp.Expr] = field(default_factory=dict)
    steps: Mapping[str, exp.Expr] = field(default_factory=dict)
    #: Whether ``item`` is an event row, and which variables are bound to event rows (for ``has_path``).
    event_item: bool = False
    event_variables: frozenset[str] = frozenset()


class SqlContext(Protocol):
    """The compiler's state and the methods its helpers call back (``to_sql.SqlCompiler`` has them)."""

    #: Evaluation time (a UTC instant).
    as_of: dt.datetime
    dialect: SqlDialect
    #: Where paths resolve now; a helper compiling in another scope sets it and restores it.
    scope: Scope
    #: How many item lambdas enclose the node being compiled (their variables are numbered by it).
    lambda_depth: int
    #: Profile fields read inside event conditions so far (a chain reading one joins the profile row).
    profile_reads: int

    def visit(self, node: ast.Node) -> exp.Expr:
        """Compile ``node`` in the current scope."""
        ...

    def boolean(self, node: ast.Node) -> exp.Expr:
        """Compile ``node`` as a two-valued predicate."""
        ...

    def unsupported(self, construct: str, reason: str) -> NotSupportedOnEngine:
        """The error for a construct the engine cannot run."""
        ...

    def item_lambda(self, array: exp.Expr, variable: str | None, body: ast.Node,
                    as_boolean: bool = True, events: bool = False) -> tuple[str, exp.Expr]:
        """Compile ``body`` over one item of ``array`` (``events``: an array of event rows); returns the
        lambda variable and body."""
        ...

    def register(self, column: DerivedColumn) -> exp.Expr:
        """Record a derived column the expression reads; returns its reference."""
        ...

    def event_scope(self, alias: str = EVENT_ALIAS, variable: str | None = None) -> Scope:
        """The scope of one event row under ``alias``."""
        ...

    def window(self, value: exp.Expr, window: ast.TimeWindow) -> exp.Expr:
        """The condition that the time ``value`` lies in ``window``."""
        ...
