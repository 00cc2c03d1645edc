"""Spark engine: the same compiled plans on pyspark, for data that outgrows one machine.

The engine runs on a classic session (``local[N]``, a cluster's ``spark://host:port``: the driver is this
process) or on a Spark Connect session (``sc://host:port``: the driver is the Connect server, this process a
gRPC client of it). It uses only the DataFrame and SQL API that both share: no SparkContext, no RDD, no JVM.

Starting a SparkSession costs 8-13 s, so the process shares one session (``get_spark_session``);
runs are serialised with a lock because temporary views are session-global.
"""

from __future__ import annotations

import atexit
import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from openseg.engines import graph
from openseg.engines.base import Engine, StageCallback, StageRun, Stages, TableSource, Workspace
from openseg.engines.parquet import COMPRESSION, COMPRESSION_LEVEL

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Bytes per row group Spark writes when a file is asked for ``row_group_rows`` rows (Spark sizes groups
#: in bytes): membership rows are a profile id and a few 64-bit words.
_BYTES_PER_ROW = 64

#: Session settings, which a Spark Connect session sets as well. ANSI mode is off on purpose: PQL is two-valued
#: and total, so an overflow, a bad cast or a missing array index must yield NULL (then false), never abort the
#: whole job. The compiler still emits NULL-safe division and TRY_CAST so results do not depend on it.
SESSION_CONFIG: dict[str, str] = {
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Timestamps in the files executors write are plain UTC microseconds, as DuckDB and pyarrow write them
    # (Spark's default, INT96, is a legacy encoding other readers treat differently).
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.maxPlanStringLength": "200000",
    # A job's cached relations (its stages, its result, its membership diff) are read once or twice, soon after
    # they are made: encoding them cost more than reading them uncompressed saves. The 10-segment job at 10M
    # profiles on local[2]: 53.7 -> 48.0 s (the final stage 15.4 -> 11.7 s). They stay spillable (CACHE TABLE
    # keeps memory and disk).
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
}

#: Lets the JIT compile methods however long (see ``APPLICATION_CONFIG``).
_JIT_HUGE_METHODS = "-XX:-DontCompileHugeMethods"

#: Settings of the Spark application (its JVMs, its UI, its SQL status store): a classic session sets them as it
#: starts its driver; a Spark Connect server must be started with them (docs/scale-out.md), a Connect session
#: cannot change them.
APPLICATION_CONFIG: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # HotSpot leaves a method of more than 8,000 bytes of bytecode to its interpreter, and the code Spark
    # generates for a many-segment plan (dozens of filtered aggregates in one method) is that big: compiled,
    # the 100-segment job of the 1M benchmark went from 72 to 43 s on local[2] (its event stage 31 -> 12 s).
    "spark.driver.extraJavaOptions": f"-Duser.timezone=UTC {_JIT_HUGE_METHODS}",
    "spark.executor.extraJavaOptions": f"-Duser.timezone=UTC {_JIT_HUGE_METHODS}",
    # The driver keeps each query's plan as text for the SQL status store even with the UI off: a
    # 100-segment plan is megabytes of text, and a long-lived session kept a thousand of them until its heap
    # ran out. Keep few (and SESSION_CONFIG cuts each one short).
    "spark.sql.ui.retainedExecutions": "20",
}

_session_lock = threading.Lock()
_session: SparkSession | None = None
#: The master and extra settings the shared session was created with.
_session_key: tuple[str, tuple[tuple[str, str], ...]] | None = None
#: Whether pyspark's Connect mode was on before openseg started its Connect session (see ``_stop``).
_connect_mode_before = False

#: The master a session is created with when nobody asks for one.
DEFAULT_MASTER = "local[2]"

#: pyspark marks the process as a Spark Connect client with this variable (its functions and columns then build
#: Connect plans); it leaves it set when a session on a remote server stops.
_CONNECT_MODE = "SPARK_CONNECT_MODE_ENABLED"


def is_connect(master: str) -> bool:
    """Whether ``master`` is a Spark Connect URL (``sc://host:port``, optionally ``/;token=...``)."""
    return master.startswith("sc://")


def public_master(master: str) -> str:
    """``master`` as job metrics show it: a Spark Connect URL without its parameters (``/;token=...`` holds a
    secret), other masters as they are."""
    return f"sc://{urlsplit(master).netloc}" if is_connect(master) else master


def get_spark_session(master: str | None = None, conf: Sequence[tuple[str, str]] = ()) -> SparkSession:
    """Return the process-wide SparkSession, creating it on first use.

    A JVM holds one SparkContext, and pyspark cannot mix a classic session with a Connect one, so a process
    talks to one master at a time: asking for another master (or other settings) stops the current session and
    starts a new one.

    Args:
        master: Spark master URL (``local[N]``, ``spark://host:port``) or Spark Connect URL (``sc://host:port``);
            None: the current session, whatever its master, or a new one on ``local[2]``.
        conf: Spark settings applied over ``SESSION_CONFIG`` and ``APPLICATION_CONFIG`` (``OPENSEG_SPARK_CONF``),
            such as ``("spark.executor.memory", "4g")``; they take part in deciding whether the session is the
            one asked for. A Connect session sets them on its server session, which refuses application
            settings (pyspark warns, naming each).

    Returns:
        The shared session.
    """
    global _session, _session_key
    with _session_lock:
        key = (master or DEFAULT_MASTER, tuple(conf))
        if _session is not None and master is not None and key != _session_key:
            _stop()
        if _session is None:
            _session = _connect_session(*key) if is_connect(key[0]) else _classic_session(*key)
            _session_key = key
            atexit.register(stop_spark_session)
        return _session


def _classic_session(master: str, conf: tuple[tuple[str, str], ...]) -> SparkSession:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName("openseg")
    for name, value in {**APPLICATION_CONFIG, **SESSION_CONFIG, **dict(conf)}.items():
        builder = builder.config(name, value)
    session = builder.getOrCreate()
    # Failed queries raise AnalysisException with the message; the JVM's ERROR log of the
    # same failure would only duplicate it on stderr.
    session.sparkContext.setLogLevel("FATAL")
    return session


def _connect_session(url: str, conf: tuple[tuple[str, str], ...]) -> SparkSession:
    """A session on a Spark Connect server: the server's application runs the queries (its log level and
    application settings are the server's own)."""
    global _connect_mode_before
    from pyspark.sql import SparkSession

    _connect_mode_before = _CONNECT_MODE in os.environ
    builder = SparkSession.builder.remote(url)
    for name, value in {**SESSION_CONFIG, **dict(conf)}.items():
        builder = builder.config(name, value)
    return builder.getOrCreate()


def stop_spark_session() -> None:
    """Stop the shared session if one was started."""
    with _session_lock:
        _stop()


def _stop() -> None:
    """Stop the shared session (the caller holds ``_session_lock``). After a Connect session, pyspark's Connect
    mode is switched off again, so that a classic session can start in this process."""
    global _session, _session_key
    if _session is None:
        return
    _session.stop()
    if _session_key is not None and is_connect(_session_key[0]) and not _connect_mode_before:
        os.environ.pop(_CONNECT_MODE, None)
    _session = None
    _session_key = None


class SparkEngine(Engine):
    """Runs plans on the shared SparkSession.

    Args:
        master: Spark master URL for the shared session (``local[2]`` by default), or a Spark Connect server's
            ``sc://host:port``.
        conf: Spark settings over openseg's own (``OPENSEG_SPARK_CONF``).
    """

    name = "spark"
    dialect = "spark"

    def __init__(self, master: str = DEFAULT_MASTER, conf: Sequence[tuple[str, str]] = ()) -> None:
        self.master = master
        self.conf = tuple(conf)
        self._run_lock = threading.Lock()

    def describe(self) -> dict[str, str]:
        """``{"name": "spark", "master", "applicationId"}`` of the session the engine runs on; only the name
        and master while no session is up (describing never starts one). On Spark Connect the master is the
        server's URL (without its parameters) and the application the server's."""
        with _session_lock:
            session = _session if _session_key == (self.master, self.conf) else None
            if session is None:
                return {"name": self.name, "master": public_master(self.master)}
            if is_connect(self.master):
                return {"name": self.name, "master": public_master(self.master),
                        "applicationId": str(session.conf.get("spark.app.id"))}
            context = session.sparkContext
            return {"name": self.name, "master": str(context.master), "applicationId": str(context.applicationId)}

    def _session(self) -> SparkSession:
        return get_spark_session(self.master, self.conf)

    def _execute(self, sql: str, tables: Mapping[str, TableSource]) -> pa.Table:
        with self._views(tables) as spark:
            return spark.sql(sql).toArrow()

    def run_staged(self, stages: Stages, final: exp.Query, tables: Mapping[str, TableSource],
                   on_stage: StageCallback | None = None) -> tuple[pa.Table, list[StageRun]]:
        """Each stage becomes a cached temporary view (counted, which computes it), then ``final`` runs over
        them. Spark does not report rows scanned per query here, so ``rows_scanned`` is None."""
        runs: list[StageRun] = []
        with self._views(tables) as spark:
            cached: list[str] = []
            try:
                for name, query in stages:
                    started = time.perf_counter()
                    _cache_view(spark, name, self.render(query))
                    cached.append(name)
                    rows = spark.table(name).count()
                    runs.append(StageRun(name, time.perf_counter() - started, rows))
                    if on_stage is not None:
                        on_stage(runs[-1])
                started = time.perf_counter()
                result = spark.sql(self.render(final)).toArrow()
                runs.append(StageRun("", time.perf_counter() - started, result.num_rows))
                if on_stage is not None:
                    on_stage(runs[-1])
                return result, runs
            finally:
                _drop_views(spark, cached, cached)

    @contextmanager
    def workspace(self) -> Iterator[SparkWorkspace]:
        """The shared session for one job: its relations are temporary views (materialised ones cached),
        dropped at the end. Temporary views are session-global, so the job has the session to itself."""
        spark = self._session()
        with self._run_lock:
            workspace = SparkWorkspace(spark)
            try:
                yield workspace
            finally:
                workspace.close()

    @contextmanager
    def _views(self, tables: Mapping[str, TableSource]) -> Iterator[SparkSession]:
        """The shared session with ``tables`` registered as temporary views, for one run at a time."""
        spark = self._session()
        with self._run_lock:
            for name, source in tables.items():
                _frame(spark, source).createOrReplaceTempView(name)
            try:
                yield spark
            finally:
                for name in tables:
                    spark.catalog.dropTempView(name)


class SparkWorkspace(Workspace):
    """A job's statements on the shared session: materialised results are cached views on the executors,
    and the executors write the files (a directory of part files per result); only counts come back.

    Caches are held by view name (``cacheTable``), not by DataFrame: on Spark Connect a DataFrame is the SQL text
    it came from, analysed again on every use, so releasing it would fail once the views it reads are dropped;
    a view holds its analysed plan."""

    dialect = "spark"
    global_windows = False

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self._views: list[str] = []
        #: Views whose rows are cached (materialised relations).
        self._cached: list[str] = []
        #: Checkpointed relations by name: on Spark Connect the server keeps a checkpoint while its DataFrame
        #: lives here, so they are held until dropped.
        self._checkpoints: dict[str, DataFrame] = {}

    def register(self, name: str, source: TableSource) -> None:
        _frame(self.spark, source).createOrReplaceTempView(name)
        self._views.append(name)

    def materialize(self, name: str, query: exp.Query) -> None:
        if name in self._cached:  # replaced: its earlier rows are released first
            self.spark.catalog.uncacheTable(name)
        _cache_view(self.spark, name, self.render(query))
        self._cached.append(name)
        self._views.append(name)

    def define(self, name: str, query: exp.Query) -> None:
        self.spark.sql(self.render(query)).createOrReplaceTempView(name)
        self._views.append(name)

    def fetch(self, query: exp.Query) -> pa.Table:
        return self.spark.sql(self.render(query)).toArrow()

    def write(self, query: exp.Query, path: Path, row_group_rows: int | None = None,
              file_rows: int | None = None) -> None:
        writer = self.spark.sql(self.render(query)).write.option("compression", COMPRESSION)
        writer = writer.option("parquet.compression.codec.zstd.level", COMPRESSION_LEVEL)
        if row_group_rows:
            writer = writer.option("parquet.block.size", row_group_rows * _BYTES_PER_ROW)
        if file_rows:
            writer = writer.option("maxRecordsPerFile", file_rows)
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()  # Spark writes only where nothing is
        writer.parquet(str(path))
        if file_rows:
            _keep_parts(path)

    def register_numbered(self, name: str, files: Sequence[tuple[int, str]], file_column: str,
                          row_column: str) -> None:
        """The executors read the files; each row's file is told by its path and its row by
        ``_metadata.row_index``. ``_metadata.file_path`` is a URI (a local file as Hadoop spells it,
        ``file:/a%20b/x.parquet``): the executors decode it back to the path (``+`` is a plus in a URI's path,
        not a space as ``url_decode`` would read it), so nothing here needs the JVM (Spark Connect has none)."""
        from pyspark.sql import functions as F

        numbers = [(_path_key(path), number) for number, path in files]
        by_path = self.spark.createDataFrame(numbers, "__path STRING, __number BIGINT")
        frame = self.spark.read.parquet(*[path for _, path in files])
        local = F.regexp_replace(F.col("_metadata.file_path"), F.lit("^file:(//)?"), F.lit(""))
        path = F.url_decode(F.replace(local, F.lit("+"), F.lit("%2B")))
        columns = [frame[f"`{column}`"] for column in frame.columns]
        numbered = (frame.select(*columns, path.alias("__path"), F.col("_metadata.row_index").alias(row_column))
                    .join(F.broadcast(by_path), "__path")
                    .select(*[F.col(f"`{column}`") for column in frame.columns],
                            F.col("__number").alias(file_column), F.col(row_column)))
        numbered.createOrReplaceTempView(name)
        self._views.append(name)

    def write_file(self, query: exp.Query | Sequence[exp.Query], path: Path, row_group_rows: int | None = None,
                   split: tuple[str, Path] | None = None) -> None:
        """One executor writes the file, in the query's order: the sorted result is coalesced into one
        partition (coalescing keeps the order of the sorted partitions) and its one part file moved to
        ``path``. With ``split`` the query runs twice (the main columns, then the side column); its total order
        keeps them aligned row for row. (Spark spills what a merge holds: its :meth:`slices` is 1, and a sequence
        of queries is written as the base class does.)"""
        if not isinstance(query, exp.Query):
            queries = list(query)
            if len(queries) != 1:
                super().write_file(queries, path, row_group_rows, split)
                return
            query = queries[0]
        frame = self.spark.sql(self.render(query))
        if split is None:
            _write_one(frame, path, row_group_rows)
            return
        column, side = split
        if frame.columns[-1] != column:
            raise ValueError(f"split: {column!r} is not the last column")
        _write_one(frame.select(*[frame[f"`{c}`"] for c in frame.columns[:-1]]), path, row_group_rows)
        side.parent.mkdir(parents=True, exist_ok=True)
        _write_one(frame.select(frame[f"`{column}`"]), side, row_group_rows)

    def materialize_numbered(self, name: str, query: exp.Query, order: str, column: str) -> None:
        """Sorted in ranges on every executor, not in one partition as a window without ``PARTITION BY`` would:
        after the sort, partition ``p`` holds the ``p``-th range in order, so a row's position is the rows of the
        partitions before it plus its index in its own (``monotonically_increasing_id`` is ``p << 33`` plus that
        index). The sorted rows are checkpointed first, so the counts and the positions read the same ranges."""
        from pyspark.sql import functions as F

        frame = self.spark.sql(self.render(query))
        columns = [frame[f"`{c}`"] for c in frame.columns]
        sorted_rows = (frame.orderBy(frame[f"`{order}`"].asc())
                       .select(F.spark_partition_id().alias("__part"),
                               F.monotonically_increasing_id().alias("__id"), *columns)
                       .localCheckpoint(eager=True))
        counts = {row["__part"]: row["n"] for row in sorted_rows.groupBy("__part").agg(F.count("*").alias("n")).collect()}
        offsets, before = [], 0
        for part in sorted(counts):
            offsets.append((part, before))
            before += counts[part]
        firsts = self.spark.createDataFrame(offsets or [(0, 0)], "__part INT, __first BIGINT")
        position = (F.col("__first") + F.col("__id") - F.shiftleft(F.col("__part").cast("bigint"), 33)).alias(column)
        numbered = (sorted_rows.join(F.broadcast(firsts), "__part")
                    .select(position, *[F.col(f"`{c}`") for c in frame.columns]))
        self._checkpoint(name, numbered)
        sorted_rows.unpersist()  # the numbered rows are checkpointed: the sorted ones are no longer read

    def components(self, name: str, edges: exp.Query) -> None:
        # Each round of labels is checkpointed on the executors: planning a round then reads one relation,
        # not every earlier round's plan (each round reads the previous one three times).
        graph.label_components(self, name, edges, keep=self._checkpoint)

    def _checkpoint(self, name: str, query: exp.Query | DataFrame) -> None:
        computed = self.spark.sql(self.render(query)) if isinstance(query, exp.Expr) else query
        frame = computed.localCheckpoint(eager=True)
        replaced = self._checkpoints.pop(name, None)
        if replaced is not None:
            replaced.unpersist()
        self._checkpoints[name] = frame
        frame.createOrReplaceTempView(name)
        self._views.append(name)

    def drop(self, name: str) -> None:
        _drop_views(self.spark, [name], self._cached)
        self._cached = [view for view in self._cached if view != name]
        frame = self._checkpoints.pop(name, None)
        if frame is not None:
            frame.unpersist()

    def close(self) -> None:
        _drop_views(self.spark, list(dict.fromkeys(self._views)), self._cached)
        for frame in self._checkpoints.values():
            frame.unpersist()
        self._checkpoints.clear()


def _cache_view(spark: SparkSession, name: str, sql: str) -> None:
    """``sql``'s result as the temporary view ``name``, cached (lazily: its first use computes it)."""
    spark.sql(sql).createOrReplaceTempView(name)
    spark.catalog.cacheTable(name)


def _drop_views(spark: SparkSession, names: Sequence[str], cached: Sequence[str]) -> None:
    """Drop temporary views, releasing the cached ones' rows first (all before any view goes: releasing a cache
    looks its view up)."""
    for name in names:
        if name in cached:
            spark.catalog.uncacheTable(name)
    for name in names:
        spark.catalog.dropTempView(name)


def _path_key(path: str) -> str:
    """A file's path as ``register_numbered``'s executors decode ``_metadata.file_path``: a local path absolute
    (a ``file://`` URI's path), another URI decoded."""
    if "://" not in path:
        return os.path.abspath(path)
    if path.lower().startswith("file:"):
        return unquote(urlsplit(path).path)
    return unquote(path)


def _keep_parts(directory: Path) -> None:
    """Leave only the part files with rows in a directory Spark wrote (or the first, when none has any).

    Spark's task 0 writes a file even when its partition is empty (so that an empty result has its schema),
    and the committer leaves ``_SUCCESS`` and checksum files; readers of the directory see part files only.
    Only the files' footers are read here, never their rows.
    """
    parts = sorted(directory.glob("part-*.parquet"))
    kept = [part for part in parts if pq.read_metadata(part).num_rows] or parts[:1]
    for entry in directory.iterdir():
        if entry not in kept:
            entry.unlink()


def _write_one(frame: DataFrame, path: Path, row_group_rows: int | None) -> None:
    parts = path.with_name(f".{path.name}.parts")
    writer = frame.coalesce(1).write.mode("overwrite").option("compression", "zstd")
    if row_group_rows:
        writer = writer.option("parquet.block.size", row_group_rows * _BYTES_PER_ROW)
    writer.parquet(str(parts))
    [part] = sorted(parts.glob("part-*.parquet"))
    part.rename(path)
    shutil.rmtree(parts)


def _frame(spark: SparkSession, source: TableSource) -> DataFrame:
    if isinstance(source, pa.Table):
        return spark.createDataFrame(source)
    paths = [str(path) for path in source] if isinstance(source, tuple) else [str(source)]
    return spark.read.option("mergeSchema", "true").parquet(*paths)
