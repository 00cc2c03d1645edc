"""What a compiled Python predicate runs against, and the compiler as its helpers see it (Python backend).

``to_python.PythonCompiler`` hands ``Call`` nodes and chains to ``_py_calls``, which calls back into it
through :class:`PyContext` rather than importing the compiler, so ``to_python`` imports it at module level
and the backend is split into files without an import cycle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from openseg.pql import ast

Profile = Mapping[str, Any]
Event = Mapping[str, Any]


@dataclass(frozen=True)
class Env:
    """What an expression is evaluated against."""

    profile: Profile
    events: Sequence[Event]
    item: Any = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    steps: Mapping[str, dt.datetime] = field(default_factory=dict)
    #: The evaluation time of a predicate compiled without one (``compile_timed``); None otherwise.
    as_of: dt.datetime | None = None

    def at(self, item: Any, variables: Mapping[str, Any] | None = None,
           steps: Mapping[str, dt.datetime] | None = None) -> Env:
        """This environment on ``item`` (with ``variables`` and ``steps`` when given): what
        ``dataclasses.replace`` makes, without its look at every field (1.8 -> 0.35 us; a filter makes one per
        event, for every definition a streamed message re-evaluates)."""
        moved = object.__new__(Env)
        values = moved.__dict__
        values.update(self.__dict__)
        values["item"] = item
        if variables is not None:
            values["variables"] = variables
        if steps is not None:
            values["steps"] = steps
        return moved


#: A compiled expression: its value in an environment.
Fn = Callable[[Env], Any]
#: A compiled time window: whether an instant (None: missing) lies in it.
WindowFn = Callable[[Env, dt.datetime | None], bool]


class PyContext(Protocol):
    """The compiler's methods its helpers call back (``to_python.PythonCompiler`` has them)."""

    def timed(self, value: Callable[[dt.datetime], Any]) -> Fn:
        """``value`` of the evaluation time: fixed at compile time, or read from ``Env.as_of``."""
        ...

    def visit(self, node: ast.Node) -> Fn:
        """Compile ``node``."""
        ...

    def boolean(self, node: ast.Node) -> Fn:
        """Compile ``node`` as a two-valued predicate."""
        ...

    def window(self, node: ast.TimeWindow) -> WindowFn:
        """Compile a time window."""
        ...

    def items(self, source: ast.Expr) -> Fn:
        """Compile a list source: its items, no items when it is missing."""
        ...
