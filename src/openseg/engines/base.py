"""The engine interface: run one compiled sqlglot plan over named relations, get Arrow back.

An engine knows three things: its name, the sqlglot dialect it renders plans in, and how to
register a relation (a Parquet path or an in-memory Arrow table) under a name before running.
Everything else (planning, compiling PQL) is engine-neutral and lives elsewhere.
"""

from __future__ import annotations

import abc
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import pyarrow as pa
from sqlglot import exp

#: A relation the plan reads: a Parquet file/directory path or an Arrow table already in memory.
TableSource: TypeAlias = str | os.PathLike[str] | pa.Table
#: A plan in stages: (name, query) pairs, each query reading the relations and the stages before it.
Stages: TypeAlias = Sequence[tuple[str, exp.Query]]


@dataclass(frozen=True)
class StageRun:
    """What running one stage of a staged plan cost.

    Attributes:
        name: The stage's name (the relation later stages read its result as).
        seconds: Wall-clock time it took.
        rows: Rows it produced.
        rows_scanned: Rows it read from its inputs, after the filters the engine pushed into the scans
            (None where the engine does not report it).
    """

    name: str
    seconds: float
    rows: int
    rows_scanned: int | None = None


#: Called after each stage of a staged run with its measurement (progress reports; may raise to stop).
StageCallback: TypeAlias = Callable[[StageRun], None]


class Engine(abc.ABC):
    """Runs sqlglot plans. Subclasses set ``name`` and ``dialect`` and implement ``_execute``."""

    #: Engine name shown to users and in errors ("duckdb", "spark").
    name: str = ""
    #: sqlglot dialect the plan is rendered in.
    dialect: str = ""

    def render(self, plan: exp.Expr) -> str:
        """Render a plan as SQL text in this engine's dialect.

        Args:
            plan: A sqlglot expression (usually a SELECT).

        Returns:
            The SQL text.
        """
        return plan.sql(dialect=self.dialect)

    def run(self, plan: exp.Expr, tables: Mapping[str, TableSource]) -> pa.Table:
        """Register ``tables`` under their names, render ``plan`` and run it.

        Args:
            plan: The sqlglot query to run.
            tables: Relation name -> Parquet path or Arrow table.

        Returns:
            The result as an Arrow table.
        """
        return self._execute(self.render(plan), tables)

    def run_staged(self, stages: Stages, final: exp.Query, tables: Mapping[str, TableSource],
                   on_stage: StageCallback | None = None) -> tuple[pa.Table, list[StageRun]]:
        """Run ``stages`` one after the other, each readable by the next under its name, then ``final``;
        measure each, and call ``on_stage`` after each (an exception it raises stops the run).

        This generic form hands each stage's result back as Arrow; engines override it to keep results
        where they are (DuckDB temporary tables, Spark cached views).

        Returns:
            ``final``'s result, and one ``StageRun`` per stage followed by one for ``final`` (named ``""``).
        """
        relations: dict[str, TableSource] = dict(tables)
        runs: list[StageRun] = []
        for name, query in [*stages, ("", final)]:
            started = time.perf_counter()
            result = self.run(query, relations)
            runs.append(StageRun(name, time.perf_counter() - started, result.num_rows))
            relations[name] = result
            if on_stage is not None:
                on_stage(runs[-1])
        return result, runs

    @abc.abstractmethod
    def _execute(self, sql: str, tables: Mapping[str, TableSource]) -> pa.Table:
        """Run rendered SQL with ``tables`` registered; return the result as Arrow."""

    def close(self) -> None:
        """Release resources held by the engine (no-op by default)."""
