"""DuckDB engine: the embedded default. One fresh in-memory connection per run."""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from sqlglot import exp

from openseg import lake_files
from openseg.engines.base import (
    Engine,
    StageCallback,
    StageRun,
    Stages,
    TableSource,
    Workspace,
    write_part_files,
)
from openseg.engines.graph import connected_components
from openseg.engines.parquet import COMPRESSION, COMPRESSION_LEVEL, BatchWriter

#: Rows per Arrow batch a result streams in when DuckDB's COPY cannot write it (see ``DuckDBWorkspace.write``).
_BATCH_ROWS = 100_000


#: What a merged record's aggregate states take in DuckDB, with room to spare: a build's merge and profiles write
#: at 1M and 10M profiles ran out of 200 MB and 2 GB (about 1.1M and 11M fragments) in one piece.
MERGE_BYTES_PER_ROW = 512

#: DuckDB optimizers every openseg connection turns off (those the installed DuckDB has).
#:
#: ``partitioned_execution`` (DuckDB 2.0) splits a GROUP BY on a column the Parquet file is sorted by (events
#: and profiles are sorted by ``_profile_id``) into one branch per key range. When the scan also has a WHERE
#: the range test stays above the scan, so every branch reads every row group: a per-profile count of one
#: event type over 100M events took 19 s instead of 1.8 s, and the 10-segment job at 10M profiles 60 s
#: instead of 22 s, same counts (docs/benchmarks.md, 2026-12-04 evening).
DISABLED_OPTIMIZERS = ("partitioned_execution",)


@functools.cache
def disabled_optimizers() -> str:
    """The ``disabled_optimizers`` setting for a connection: the names of ``DISABLED_OPTIMIZERS`` this DuckDB
    knows (an older release without one would refuse the setting), comma-separated."""
    with duckdb.connect(":memory:") as connection:
        known = {row[0] for row in connection.execute("SELECT name FROM duckdb_optimizers()").fetchall()}
    return ",".join(name for name in DISABLED_OPTIMIZERS if name in known)


def connection_config(**settings: str | bool | int | float | list[str]) -> dict[str, str | bool | int | float | list[str]]:
    """A ``duckdb.connect`` config: ``settings`` plus the optimizers every openseg connection turns off."""
    config = dict(settings)
    if disabled := disabled_optimizers():
        config["disabled_optimizers"] = disabled
    return config


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(I?B)?\s*$", re.IGNORECASE)


def memory_bytes(setting: str | None) -> int | None:
    """A DuckDB ``memory_limit`` such as ``2GB``, ``512MiB`` or ``1.5 GB`` in bytes; None for none (or one this
    does not read: DuckDB's default, most of the machine's memory)."""
    matched = _SIZE.match(setting or "")
    if not matched:
        return None
    number, unit, suffix = matched.groups()
    base = 1024 if (suffix or "").lower() == "ib" else 1000
    return int(float(number) * base ** "BKMGT".index(unit.upper() or "B"))


def parquet_glob(source: str | os.PathLike[str]) -> str:
    """The glob DuckDB reads for a Parquet file or a directory of Parquet files (an object store lake's
    ``s3://`` location is always a file: the catalog records files)."""
    if isinstance(source, str) and lake_files.is_remote(source):
        return source
    path = Path(source)
    return str(path / "**" / "*.parquet") if path.is_dir() else str(path)


class DuckDBEngine(Engine):
    """Runs plans on DuckDB.

    A connection is opened per run so that concurrent runs (worker threads) never share state;
    opening an in-memory DuckDB connection costs well under a millisecond.

    Args:
        threads: Worker threads DuckDB may use (``None`` keeps DuckDB's default, all cores).
        memory_limit: DuckDB ``memory_limit`` setting, e.g. ``"4GB"`` (``None`` keeps the default).
        temp_directory: Where DuckDB spills beyond the memory limit (``None`` keeps DuckDB's ``.tmp``).
        preserve_insertion_order: DuckDB's setting of that name: False lets a statement without ORDER BY
            produce its rows in any order, which saves memory (ORDER BY is still honoured).
    """

    name = "duckdb"
    dialect = "duckdb"
    in_process = True

    def __init__(self, threads: int | None = None, memory_limit: str | None = None,
                 temp_directory: str | os.PathLike[str] | None = None, preserve_insertion_order: bool = True) -> None:
        self.threads = threads
        self.memory_limit = memory_limit
        self.temp_directory = temp_directory
        self.preserve_insertion_order = preserve_insertion_order

    def with_limits(self, memory_limit: str | None = None, spill: Path | None = None) -> DuckDBEngine:
        return DuckDBEngine(self.threads, memory_limit or self.memory_limit,
                            spill if spill is not None else self.temp_directory, preserve_insertion_order=False)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """Open a configured in-memory connection."""
        config = connection_config()
        if self.threads is not None:
            config["threads"] = self.threads
        if self.memory_limit is not None:
            config["memory_limit"] = self.memory_limit
        if self.temp_directory is not None:
            config["temp_directory"] = str(self.temp_directory)
        if not self.preserve_insertion_order:
            config["preserve_insertion_order"] = False
        connection = duckdb.connect(":memory:", config=config)
        for filesystem in lake_files.duckdb_filesystems():  # an object store lake's s3:// files
            connection.register_filesystem(filesystem)
        # Times are UTC in every statement, as on Spark (SESSION_CONFIG), whatever the host's zone.
        connection.execute("SET TimeZone = 'UTC'")
        # A job's queries run for seconds; DuckDB would otherwise draw a progress bar on the worker's
        # terminal (or into its log).
        connection.execute("SET enable_progress_bar = false")
        return connection

    @contextmanager
    def workspace(self) -> Iterator[DuckDBWorkspace]:
        """One connection for the job: its relations are temporary tables and views of that connection."""
        with self.connect() as connection:
            yield DuckDBWorkspace(self, connection)

    def _execute(self, sql: str, tables: Mapping[str, TableSource]) -> pa.Table:
        with self.connect() as connection:
            for name, source in tables.items():
                _register(connection, name, source)
            return connection.sql(sql).to_arrow_table()

    def materialize_staged(self, connection: duckdb.DuckDBPyConnection, stages: Stages, final: exp.Query,
                           tables: Mapping[str, TableSource], name: str,
                           on_stage: StageCallback | None = None) -> list[StageRun]:
        """Run each stage into a temporary table named after it, then ``final`` into ``name``, measuring
        each statement with DuckDB's profiler (wall time, rows produced, rows its scans read). The stages'
        tables are dropped at the end.

        The DuckDB-only way to run a plan: its result stays in DuckDB for the SQL that follows (a membership
        diff, counts) instead of a round trip through Arrow and a new connection.

        Args:
            connection: A connection from :meth:`connect`; ``tables`` are registered in it.
            stages: (name, query) pairs, each reading ``tables`` and the stages before it.
            final: The query reading the stages; its result becomes ``name``.
            tables: Relation name -> Parquet path or Arrow table.
            name: The temporary table to create for ``final``'s result.
            on_stage: Called after each stage (an exception it raises stops the run).

        Returns:
            One ``StageRun`` per stage, then one for ``final`` (named ``""``).
        """
        for relation, source in tables.items():
            _register(connection, relation, source)
        runs: list[StageRun] = []
        connection.execute("SET enable_profiling = 'no_output'")
        try:
            for stage, query in [*stages, ("", final)]:
                table = stage or name
                started = time.perf_counter()
                connection.execute(_create_temp(table, query).sql(dialect=self.dialect))
                seconds = time.perf_counter() - started
                profile = json.loads(connection.get_profiling_information(format="json"))
                count = exp.select(exp.func("count", exp.Star())).from_(exp.to_table(table))
                row = connection.execute(count.sql(dialect=self.dialect)).fetchone()
                rows = int(row[0]) if row else 0
                scanned = profile.get("query", {}).get("total_rows_scanned")
                runs.append(StageRun(stage, seconds, rows, int(scanned) if scanned is not None else None))
                if on_stage is not None:
                    on_stage(runs[-1])
        finally:
            connection.execute("PRAGMA disable_profiling")
            # The stages live on in ``name``; their memory is the next statements' (a membership diff).
            for stage, _ in stages:
                connection.execute(exp.Drop(tables=[exp.to_table(stage)], kind="TABLE", exists=True).sql(self.dialect))
        return runs


class DuckDBWorkspace(Workspace):
    """A job's statements on one DuckDB connection: results stay in it as temporary tables, and COPY writes
    the files."""

    dialect = "duckdb"

    def __init__(self, engine: DuckDBEngine, connection: duckdb.DuckDBPyConnection) -> None:
        self.engine = engine
        self.connection = connection
        #: The table behind each view ``materialize_numbered`` made, dropped with it.
        self._backing: dict[str, str] = {}

    def register(self, name: str, source: TableSource) -> None:
        _register(self.connection, name, source)

    def materialize_numbered(self, name: str, query: exp.Query, order: str, column: str) -> None:
        """The rows sorted once into a table, and ``name`` a view numbering them by their row id: an ORDER BY
        inserts in its order whatever ``preserve_insertion_order`` says, and a table numbers its rows in insertion
        order. The window it replaces held every row in one sort and then numbered them in one thread: 59 s of a
        10M-profile build's identities."""
        rows = f"{name}__rows"
        self.materialize(rows, exp.select(exp.Star()).from_(query.subquery("q"))
                         .order_by(exp.column(order, quoted=True)))
        position = exp.cast(exp.column("rowid"), "BIGINT")
        self.define(name, exp.select(exp.alias_(position, column, quoted=True), exp.Star()).from_(rows))
        self._backing[name] = rows

    def materialize(self, name: str, query: exp.Query) -> None:
        self.connection.execute(_create_temp(name, query).sql(dialect=self.dialect))

    def define(self, name: str, query: exp.Query) -> None:
        view = exp.Create(this=exp.to_table(name), kind="VIEW", expression=query, replace=True,
                          properties=exp.Properties(expressions=[exp.TemporaryProperty()]))
        self.connection.execute(view.sql(dialect=self.dialect))

    def fetch(self, query: exp.Query) -> pa.Table:
        return self.connection.sql(self.render(query)).to_arrow_table()

    def write(self, query: exp.Query, path: Path, row_group_rows: int | None = None,
              file_rows: int | None = None) -> None:
        if file_rows:
            # COPY splits its output by bytes or by thread, not by rows: the result streams to part files here
            # (in batches, never whole).
            write_part_files(self.connection.sql(self.render(query)).to_arrow_reader(batch_size=_BATCH_ROWS),
                             path, file_rows)
            return
        size = f", ROW_GROUP_SIZE {int(row_group_rows)}" if row_group_rows else ""
        # The target is a bound parameter, never spliced into the statement.
        self.connection.execute(f"COPY ({self.render(query)}) TO $target (FORMAT parquet, COMPRESSION {COMPRESSION}, "
                                f"COMPRESSION_LEVEL {COMPRESSION_LEVEL}{size})",
                                {"target": str(path)})

    def materialize_staged(self, stages: Stages, final: exp.Query, name: str,
                           on_stage: StageCallback | None = None) -> list[StageRun]:
        return self.engine.materialize_staged(self.connection, stages, final, {}, name, on_stage)

    def register_numbered(self, name: str, files: Sequence[tuple[int, str]], file_column: str,
                          row_column: str) -> None:
        # read_parquet's virtual columns: the file's position in the list, and the row's in its file.
        numbers = exp.convert([number for number, _ in files])
        # 0-based, as sqlglot takes list positions (it renders DuckDB's 1-based index).
        position = exp.cast(exp.column("file_index", "r"), "BIGINT")
        read = exp.select(
            exp.Star(),
            exp.alias_(exp.cast(exp.Bracket(this=numbers, expressions=[position]), "BIGINT"), file_column, quoted=True),
            exp.alias_(exp.cast(exp.column("file_row_number", "r"), "BIGINT"), row_column, quoted=True),
        ).from_(exp.alias_(exp.func("read_parquet", exp.convert([path for _, path in files])), "r"))
        view = exp.Create(this=exp.to_table(name), kind="VIEW", expression=read, replace=True,
                          properties=exp.Properties(expressions=[exp.TemporaryProperty()]))
        self.connection.execute(view.sql(dialect=self.dialect))

    def write_file(self, query: exp.Query | Sequence[exp.Query], path: Path, row_group_rows: int | None = None,
                   split: tuple[str, Path] | None = None) -> None:
        # DuckDB's Arrow stream into pyarrow's writer: measured faster than COPY on sorted nested XDM events.
        # Slices run one at a time, each once the one before is written.
        queries = [query] if isinstance(query, exp.Query) else list(query)
        readers = (self.connection.sql(self.render(each)).to_arrow_reader(row_group_rows or 1_000_000)
                   for each in queries)
        first = next(readers)
        with BatchWriter(path, first.schema, split, row_group_rows) as writer:
            for reader in itertools.chain([first], readers):
                for batch in reader:
                    writer.write(batch)

    def slices(self, rows: int) -> int:
        # A hash aggregate's list and arg_max states stay in memory (they do not spill): under a memory limit,
        # each slice's states get at most half of it.
        limit = memory_bytes(self.engine.memory_limit)
        if limit is None:
            return 1
        return max(1, math.ceil(rows * MERGE_BYTES_PER_ROW / (limit / 2)))

    def components(self, name: str, edges: exp.Query) -> None:
        # The graph is in this process already: label it with numpy rather than in rounds of statements.
        table = self.fetch(exp.select("a", "b").from_(edges.subquery("e")))
        left = table.column("a").to_numpy().astype(np.int64, copy=False)
        right = table.column("b").to_numpy().astype(np.int64, copy=False)
        size = int(max(left.max(initial=-1), right.max(initial=-1))) + 1
        roots = connected_components(size, left, right)
        on_edge = np.zeros(size, dtype=bool)
        on_edge[left] = True
        on_edge[right] = True
        nodes = np.flatnonzero(on_edge).astype(np.int64)
        self.connection.register(name, pa.table({"node": nodes, "root": roots[nodes]}))

    def drop(self, name: str) -> None:
        for kind in ("TABLE", "VIEW"):
            try:
                self.connection.execute(exp.Drop(tables=[exp.to_table(name)], kind=kind, exists=True).sql(self.dialect))
            except duckdb.CatalogException:
                continue  # a view is no table, and an Arrow table neither
        self.connection.unregister(name)
        if name in self._backing:
            self.drop(self._backing.pop(name))


def _create_temp(name: str, query: exp.Query) -> exp.Create:
    return exp.Create(this=exp.to_table(name), kind="TABLE", expression=query, replace=True,
                      properties=exp.Properties(expressions=[exp.TemporaryProperty()]))


def _register(connection: duckdb.DuckDBPyConnection, name: str, source: TableSource) -> None:
    if isinstance(source, pa.Table):
        connection.register(name, source)
        return
    files: exp.Expr = (exp.convert([parquet_glob(path) for path in source]) if isinstance(source, tuple)
                       else exp.Literal.string(parquet_glob(source)))
    # Built with sqlglot so that neither the relation name nor the path is spliced into SQL text.
    read = exp.select(exp.Star()).from_(
        exp.func("read_parquet", files, exp.EQ(this=exp.column("union_by_name"), expression=exp.true()))
    )
    view = exp.Create(this=exp.to_table(name), kind="VIEW", expression=read, replace=True)
    connection.execute(view.sql(dialect="duckdb"))
