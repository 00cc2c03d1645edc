"""How large a PQL expression may be: nesting depth and durations, refused with a positioned error.

Every stage after the parser (checker, SQL and Python backends, ``describe``) walks the tree recursively,
so the tree's depth is bounded once, here, rather than in each of them. Long flat chains are not deep:
``a and b and ... and z`` is one ``And`` node with many operands, and the SQL backend folds it into a
balanced tree. What is refused is nesting: parentheses, ``not``, event conditions and arithmetic within
one another beyond these limits, which no real segment needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from openseg.pql.errors import PqlError

#: Brackets ``( [ {`` and ``not``s open within one another while parsing.
MAX_NESTING = 32
#: Levels of the expression tree (a flat ``and`` chain of any length counts one).
MAX_DEPTH = 64
#: The longest duration or time window, in days: 10,000 years, past every date an engine holds.
MAX_DURATION_DAYS = 3_652_500
#: Days in one unit, rounded up (a month counts 31), by ``TimeUnit`` value.
_UNIT_DAYS = {"millisecond": 1 / 86_400_000, "second": 1 / 86_400, "minute": 1 / 1_440, "hour": 1 / 24, "day": 1,
              "week": 7, "month": 31, "year": 366, "decade": 3_660, "century": 36_600, "millennium": 366_000}


class _Span(Protocol):
    """Where a node sits (``ast.Span``)."""

    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def line(self) -> int: ...
    @property
    def col(self) -> int: ...


class _Tree(Protocol):
    """A syntax tree node as ``check_depth`` reads it (``ast.Node``, which imports this module's limits)."""

    @property
    def span(self) -> _Span: ...
    def children(self) -> Iterator[_Tree]: ...


def duration_too_long(amount: int, unit: str) -> bool:
    """Whether ``amount`` ``unit``s exceed ``MAX_DURATION_DAYS``."""
    return amount * _UNIT_DAYS[unit] > MAX_DURATION_DAYS


def check_depth(expr: _Tree, source: str) -> None:
    """Refuse a tree deeper than ``MAX_DEPTH``, pointing at the node that crosses the limit.

    Raises:
        PqlError: located at the innermost node of the first path found deeper than the limit.
    """
    stack: list[tuple[_Tree, int]] = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            span = node.span
            raise PqlError(f"the expression is nested too deeply: at most {MAX_DEPTH} levels of operators, "
                           "functions and conditions within one another",
                           line=span.line, col=span.col, found=source[span.start:span.end] or None, source=source,
                           offset=span.start, end_offset=span.end)
        stack.extend((child, depth + 1) for child in node.children())
