"""The engine interface: run compiled sqlglot plans over named relations.

An engine knows its name, the sqlglot dialect it renders plans in, and how to run them. A one-off query
(a preview) goes through :meth:`Engine.run`; a job's whole work goes through a :class:`Workspace`, where
relations (Parquet files, Arrow tables, materialised results) live between statements and results are
written to Parquet by the engine itself, so that nothing per-profile passes through the caller. What the
statements say (planning, compiling PQL, the membership diff) is engine-neutral and lives elsewhere.
"""

from __future__ import annotations

import abc
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from openseg.engines import graph
from openseg.engines.parquet import COMPRESSION, COMPRESSION_LEVEL, BatchWriter, matching_rows

#: A relation the plan reads: a Parquet file or directory path, several Parquet files read as one, or an
#: Arrow table already in memory.
TableSource: TypeAlias = str | os.PathLike[str] | tuple[str, ...] | pa.Table
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


class Workspace(abc.ABC):
    """Where one job's statements run, one after the other, on one engine.

    Relations registered or materialised here stay readable by name until the workspace closes
    (DuckDB: temporary tables of one connection; Spark: cached temporary views). Statements are sqlglot
    expressions that the workspace renders in its engine's dialect; results the caller needs whole are
    small (counts), everything per-profile stays in the engine or is written to Parquet by it.
    """

    #: The sqlglot dialect statements are rendered in.
    dialect: str = ""
    #: Whether a ``row_number()`` window over every row is cheap here: True where one process sorts anyway
    #: (DuckDB); False where such a window moves every row into one partition (Spark), and a build ranks the
    #: fragments it merges by a struct of their rank's terms instead (``profiles.merge.ranked_query``).
    global_windows = True

    @abc.abstractmethod
    def register(self, name: str, source: TableSource) -> None:
        """Make ``source`` readable as ``name`` (read where it lies, not copied)."""

    @abc.abstractmethod
    def materialize(self, name: str, query: exp.Query) -> None:
        """Compute ``query`` once and keep its result as ``name``."""

    def define(self, name: str, query: exp.Query) -> None:
        """Make ``query`` readable as ``name``, computed where it is read (a view). By default, materialised."""
        self.materialize(name, query)

    @abc.abstractmethod
    def fetch(self, query: exp.Query) -> pa.Table:
        """Run ``query`` and return its (small) result."""

    @abc.abstractmethod
    def write(self, query: exp.Query, path: Path, row_group_rows: int | None = None,
              file_rows: int | None = None) -> None:
        """Write ``query``'s result, in its order, to Parquet (zstd) at ``path``: one file, or a directory of
        part files where the engine writes in parallel. ``row_group_rows`` asks for small row groups (point
        lookups read one); engines that size groups in bytes approximate it.

        With ``file_rows``, ``path`` is always a directory (created, or empty) holding nothing but part files
        of at most ``file_rows`` rows each, in the result's order by name; none is empty unless the result
        is, which is then one file with no rows and the result's schema."""

    def register_numbered(self, name: str, files: Sequence[tuple[int, str]], file_column: str,
                          row_column: str) -> None:
        """Make Parquet ``files`` of one schema readable as ``name``, each row with two more BIGINT columns: the
        number given with its file (``file_column``) and its position in that file, from 0 (``row_column``).
        A profile build numbers its records with them. By default the files are read here (pyarrow) and
        registered as one Arrow table."""
        tables = []
        for number, path in files:
            table = pq.read_table(path)
            rows = table.num_rows
            table = table.append_column(file_column, pa.array([number] * rows, pa.int64()))
            tables.append(table.append_column(row_column, pa.array(range(rows), pa.int64())))
        self.register(name, pa.concat_tables(tables))

    def write_file(self, query: exp.Query | Sequence[exp.Query], path: Path, row_group_rows: int | None = None,
                   split: tuple[str, Path] | None = None) -> None:
        """Write ``query``'s result, in its order, as one Parquet file (zstd) at ``path``, for readers that open
        it as a file (the merged profile store); a sequence of queries (the :meth:`slices` of one result) one
        after the other. ``split``: ``(column, path)``, the query's last column goes, row for row, to a file of
        its own instead; the query's order must then be total. By default each result is fetched and written
        here."""
        queries = [query] if isinstance(query, exp.Query) else list(query)
        with ExitStack() as stack:
            writer: BatchWriter | None = None
            for each in queries:
                result = self.fetch(each)
                writer = writer or stack.enter_context(BatchWriter(path, result.schema, split, row_group_rows))
                writer.write(result)

    def materialize_numbered(self, name: str, query: exp.Query, order: str, column: str) -> None:
        """Keep ``query``'s rows as ``name``, with a first BIGINT column ``column``: each row's position, from 0,
        in the order of its column ``order`` (unique, never null). By default one window over every row
        (``row_number() OVER (ORDER BY ...)``), which an engine that sorts in parallel replaces."""
        position = exp.Window(this=exp.RowNumber(), order=exp.Order(expressions=[
            exp.Ordered(this=exp.column(order, table="q", quoted=True))]))
        numbered = exp.cast(exp.Sub(this=position, expression=exp.Literal.number(1)), "BIGINT")
        self.materialize(name, exp.select(exp.alias_(numbered, column, quoted=True), exp.Star())
                         .from_(query.subquery("q")))

    def slices(self, rows: int) -> int:
        """Into how many slices a grouped statement over ``rows`` records (the merge of a build's fragments)
        should be cut to stay within this workspace's memory: 1 where the engine spills whatever it holds
        (Spark); more where aggregate states must fit in memory (DuckDB under a memory limit)."""
        return 1

    def components(self, name: str, edges: exp.Query) -> None:
        """Create ``name(node, root)``: for every node on an edge of ``edges`` (columns ``a`` and ``b``, BIGINT
        node numbers ≥ 0), the smallest node of its connected component. By default in rounds of statements
        (:func:`openseg.engines.graph.label_components`), so the graph stays in the engine."""
        graph.label_components(self, name, edges)

    def drop(self, name: str) -> None:
        """Release the relation ``name`` (and the memory it holds) before the workspace closes. By default
        nothing is released."""

    def materialize_staged(self, stages: Stages, final: exp.Query, name: str,
                           on_stage: StageCallback | None = None) -> list[StageRun]:
        """Materialise each stage under its name, then ``final`` as ``name``, measuring each and calling
        ``on_stage`` after each (an exception it raises stops the run).

        Returns:
            One ``StageRun`` per stage, then one for ``final`` (named ``""``).
        """
        runs: list[StageRun] = []
        for stage, query in [*stages, ("", final)]:
            started = time.perf_counter()
            self.materialize(stage or name, query)
            rows = self.count(stage or name)
            runs.append(StageRun(stage, time.perf_counter() - started, rows))
            if on_stage is not None:
                on_stage(runs[-1])
        return runs

    def count(self, name: str) -> int:
        """Rows of the relation ``name``."""
        result = self.fetch(exp.select(exp.func("count", exp.Star()).as_("n")).from_(exp.to_table(name)))
        return int(result.column(0)[0].as_py() or 0)

    def render(self, query: exp.Expr) -> str:
        return query.sql(dialect=self.dialect)


class ArrowWorkspace(Workspace):
    """The workspace of an engine that only runs single queries (:meth:`Engine.run`): every materialised
    result comes back as Arrow and is handed to the next statement. Correct on any engine, but it holds
    results in this process; DuckDB and Spark keep them in the engine instead."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.relations: dict[str, TableSource] = {}

    def register(self, name: str, source: TableSource) -> None:
        self.relations[name] = source

    def materialize(self, name: str, query: exp.Query) -> None:
        self.relations[name] = self.fetch(query)

    def fetch(self, query: exp.Query) -> pa.Table:
        return self.engine.run(query, self.relations)

    def write(self, query: exp.Query, path: Path, row_group_rows: int | None = None,
              file_rows: int | None = None) -> None:
        if file_rows:
            write_part_files(self.fetch(query).to_reader(), path, file_rows)
        else:
            pq.write_table(self.fetch(query), path, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL,
                           row_group_size=row_group_rows)


def write_part_files(reader: pa.RecordBatchReader, directory: Path, file_rows: int) -> list[Path]:
    """Stream ``reader`` into the directory ``directory`` (created, or empty) as ``part-00000.parquet``,
    ``part-00001.parquet``, ... of at most ``file_rows`` rows each (zstd; a row group per batch). An empty
    stream still writes one zero-row file with its schema, so that readers see an empty table.

    The way for an engine that streams its results in this process to honour ``Workspace.write``'s
    ``file_rows`` (DuckDB's COPY splits files by bytes or threads, never by rows).

    Returns:
        The files written, in order.
    """
    directory.mkdir(parents=True, exist_ok=True)
    parts: list[Path] = []
    writer: pq.ParquetWriter | None = None
    rows_in_file = 0

    def roll() -> pq.ParquetWriter:
        parts.append(directory / f"part-{len(parts):05d}.parquet")
        return pq.ParquetWriter(parts[-1], reader.schema, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL)

    try:
        for batch in reader:
            offset = 0
            while offset < batch.num_rows:
                if writer is None or rows_in_file >= file_rows:
                    if writer is not None:
                        writer.close()
                    writer, rows_in_file = roll(), 0
                take = min(file_rows - rows_in_file, batch.num_rows - offset)
                writer.write_batch(batch.slice(offset, take))
                rows_in_file += take
                offset += take
        if writer is None:
            writer = roll()
            writer.write_table(reader.schema.empty_table())
    finally:
        if writer is not None:
            writer.close()
    return parts

    def drop(self, name: str) -> None:
        self.relations.pop(name, None)


class Engine(abc.ABC):
    """Runs sqlglot plans. Subclasses set ``name`` and ``dialect`` and implement ``_execute``."""

    #: Engine name shown to users and in errors ("duckdb", "spark").
    name: str = ""
    #: sqlglot dialect the plan is rendered in.
    dialect: str = ""
    #: Whether the engine runs in this process, so that fetching a large result costs no transfer: work that
    #: fetches per-profile rows (an incremental profile refresh, which splices them into sorted files here)
    #: runs only on such an engine. Spark's driver must not collect them.
    in_process: bool = False

    def describe(self) -> dict[str, str]:
        """Which engine ran a job, as jobs, exports and builds report it (``metrics["openseg:engine"]``): its
        ``name``, and for a cluster engine its ``master`` and ``applicationId``."""
        return {"name": self.name}

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

    @contextmanager
    def workspace(self) -> Iterator[Workspace]:
        """A workspace for one job's statements, released when the ``with`` block ends."""
        yield ArrowWorkspace(self)

    def read_rows(self, path: str | os.PathLike[str], column: str, keys: Sequence[object],
                  columns: Sequence[str] | None = None) -> pa.Table:
        """The rows of one local Parquet file whose ``column`` holds one of ``keys`` (a point lookup: a profile,
        its identities, its events), in file order, with ``columns`` (all when None).

        Reads only the row groups whose statistics can hold a key, in this process, on every engine: a
        lookup answers in milliseconds, which no query an engine plans and schedules does. The file's footer
        is read once per version of the file (:func:`openseg.engines.parquet.matching_rows`).
        """
        return matching_rows(path, column, keys, columns)

    def with_limits(self, memory_limit: str | None = None, spill: Path | None = None) -> Engine:
        """This engine for one large job of its own (a profile build): using at most ``memory_limit`` of memory
        (e.g. ``"2GB"``) and spilling beyond it to ``spill``, and free to produce rows in any order where a
        statement asks for none. An engine whose resources are set elsewhere (Spark's cluster) is returned as
        it is."""
        return self

    @abc.abstractmethod
    def _execute(self, sql: str, tables: Mapping[str, TableSource]) -> pa.Table:
        """Run rendered SQL with ``tables`` registered; return the result as Arrow."""

    def close(self) -> None:
        """Release resources held by the engine (no-op by default)."""
