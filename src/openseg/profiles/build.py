"""Building the merged profile store of one merge policy from the lake's files.

The whole build runs in one embedded DuckDB connection: fragments are read once into a temp table,
events are streamed from their files twice (identities, then the final sorted write), identities are
stitched with :mod:`openseg.profiles.identity`, fragments merged with :mod:`openseg.profiles.merge`,
and the store is published atomically (:mod:`openseg.profiles.store`). A build is a full rebuild: it is
a pure function of the sources and the policy, which is what makes it safe to re-run when a batch lands
(:mod:`openseg.profiles.refresh` decides when an incremental update can stand in for it).

Beside the documented store files a build keeps ``_state/event_rids.parquet``: the record id of every
row of ``events.parquet``, in the same order. Events are ordered by ``(_profile_id, timestamp, record
id)`` and oversized graphs are replayed in record-id order, so an incremental update needs the ids of
the events it re-sorts; they are not an XDM field, so they stay out of ``events.parquet``.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from openseg.profiles._sql import col, render
from openseg.profiles.identity import ANCHOR, ANCHOR_SQL, IDENTITY_LIST, IDENTITY_LIST_SQL, OversizedGraph, stitch
from openseg.profiles.manifest import source_entry, write_manifest
from openseg.profiles.merge import merge_query, ranked_query
from openseg.profiles.merge_policy import MergePolicySpec
from openseg.profiles.reading import INGEST, RID, SOURCES_TABLE, plan_inputs, read_query
from openseg.profiles.sources import IDENTITY_MAP, SourceFile, ingest_order
from openseg.profiles.store import (
    EVENT_RIDS_FILE,
    EVENTS_FILE,
    FRAGMENTS_FILE,
    IDENTITIES_FILE,
    MANIFEST_FILE,
    PROFILES_FILE,
    SCHEMA_FILE,
    new_staging_dir,
    primary_namespace,
    publish,
    write_schema,
)
from openseg.xdm.schema import PRIMARY_NAMESPACE

_log = logging.getLogger(__name__)

PROFILE = "__profile"
KEYS = "__keys"
# Row groups small enough that a lookup by `_profile_id` reads one of them (min/max statistics).
ROW_GROUP_ROWS = 100_000
RefreshKind = Literal["full", "incremental", "unchanged"]


@dataclass(frozen=True)
class BuildStats:
    """What a build produced.

    Attributes:
        profiles: Merged profiles written (including event-only ones).
        events: ExperienceEvents written, each linked to a profile.
        fragments: Profile fragments read.
        identities: Distinct identities seen.
        oversized_graphs: Identity graphs over the 50-identity guardrail, split and reported.
        seconds: Wall time of the build.
        event_only_profiles: Profiles made only of events (``_hasProfileRecord`` false).
        unlinked_fragments: Fragments without any identity (they belong to no profile).
        unlinked_events: Events without any identity (not written).
        refresh: How the store was brought up to date: ``"full"`` (built from every source),
            ``"incremental"`` (only the profiles new sources touch were recomputed) or
            ``"unchanged"`` (the sources had not changed; the statistics are the existing build's).
    """

    profiles: int
    events: int
    fragments: int
    identities: int
    oversized_graphs: tuple[OversizedGraph, ...]
    seconds: float
    event_only_profiles: int = 0
    unlinked_fragments: int = 0
    unlinked_events: int = 0
    refresh: RefreshKind = "full"

    def to_dict(self) -> dict[str, Any]:
        """The statistics as a JSON-ready dict."""
        data = asdict(self)
        data["oversized_graphs"] = [
            {"identities": [list(i) for i in g.identities], "profile_ids": list(g.profile_ids)}
            for g in self.oversized_graphs
        ]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildStats:
        """Inverse of :meth:`to_dict`."""
        graphs = tuple(
            OversizedGraph(
                identities=tuple((str(ns), str(i)) for ns, i in g["identities"]),
                profile_ids=tuple(g["profile_ids"]),
            )
            for g in data.get("oversized_graphs", ())
        )
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data and name != "oversized_graphs"}
        return cls(**{**known, "oversized_graphs": graphs})


def build_profile_store(
    sources: Sequence[SourceFile],
    policy: MergePolicySpec,
    out_dir: Path,
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> BuildStats:
    """Build (or rebuild) the merged profile store of ``policy`` at ``out_dir``.

    Args:
        sources: The successful batches' files, profile fragments and events, in any order.
        policy: The merge policy to apply.
        out_dir: The store path (``{home}/profiles/{sandboxId}/{mergePolicyId}``); replaced atomically.
        threads: DuckDB threads (default: all cores).
        memory_limit: DuckDB memory limit such as ``"3GB"`` (default: DuckDB's); DuckDB spills to a
            directory inside the build beyond it.

    Returns:
        The build statistics (also written to ``manifest.json``).

    Raises:
        SchemaConflictError: If two files hold incompatible types for one field.
    """
    started = time.perf_counter()
    ordered = ingest_order(sources)
    return write_build(Path(out_dir), [source_entry(s) for s in ordered], policy,
                       lambda connection, staging: _build(connection, ordered, policy, staging),
                       threads=threads, memory_limit=memory_limit, started=started)


#: Writes a store's files into a staging directory over a build connection: (stats, union schemas).
Producer = Callable[[duckdb.DuckDBPyConnection, Path], tuple["BuildStats", dict[str, pa.Schema]]]


def write_build(out_dir: Path, entries: list[dict[str, Any]], policy: MergePolicySpec, produce: Producer, *,
                threads: int | None, memory_limit: str | None, started: float) -> BuildStats:
    """Run ``produce`` into a fresh staging directory, add the manifest and publish the build atomically.

    Full builds and incremental refreshes both come here; a failure leaves the published store as it was.
    """
    staging = new_staging_dir(out_dir)
    try:
        with connect(staging / "_spill", threads, memory_limit) as connection:
            stats, schemas = produce(connection, staging)
        shutil.rmtree(staging / "_spill", ignore_errors=True)
        stats = replace(stats, seconds=round(time.perf_counter() - started, 3))
        write_manifest(staging / MANIFEST_FILE, entries, policy, stats.to_dict(), schemas)
        publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return stats


def connect(spill: Path, threads: int | None, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for a build: UTC, spilling to ``spill``, order kept only where asked."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "temp_directory": str(spill),
        # ORDER BY is still honoured; everything else may stream out of order, which saves memory.
        "preserve_insertion_order": False,
    }
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    connection = duckdb.connect(config=config)
    # Time zone conversions (TIMESTAMPTZ -> TIMESTAMP) must land in UTC.
    connection.execute("SET TimeZone = 'UTC'")
    # A server's or worker's log is no terminal: no progress bar.
    connection.execute("SET enable_progress_bar = false")
    return connection


def _build(
    connection: duckdb.DuckDBPyConnection,
    sources: list[SourceFile],
    policy: MergePolicySpec,
    staging: Path,
) -> tuple[BuildStats, dict[str, pa.Schema]]:
    inputs, files = plan_inputs(sources)
    register_sources(connection, files)
    profile_schema, event_schema = inputs["profile"].schema, inputs["event"].schema

    with phase("read fragments"):
        connection.execute(
            f"CREATE TEMP TABLE __frag AS SELECT *, {ANCHOR_SQL} AS {ANCHOR}, {IDENTITY_LIST_SQL} AS {IDENTITY_LIST} "
            f"FROM ({render(read_query(connection, inputs['profile']))})"
        )
    connection.execute(
        f"CREATE TEMP VIEW __evt AS SELECT *, {ANCHOR_SQL} AS {ANCHOR}, {IDENTITY_LIST_SQL} AS {IDENTITY_LIST} "
        f"FROM ({render(read_query(connection, inputs['event']))})"
    )
    with phase("stitch identities"):
        oversized = stitch(connection, ["__frag", "__evt"], policy.identity_graph)
    fragments = count(connection, "SELECT count(*) FROM __frag")
    unlinked_fragments = count(connection, f"SELECT count(*) FROM __frag WHERE {ANCHOR} IS NULL")
    identities = count(connection, "SELECT count(*) FROM __ids")
    with phase("merge and write profiles"):
        create_merged_view(connection, "__frag", profile_schema, policy)
        profiles = write_query(connection, profiles_query(profile_schema), staging / PROFILES_FILE)
    with phase("write identities"):
        write_query(connection, IDENTITIES_QUERY, staging / IDENTITIES_FILE)
        if policy.identity_graph == "none":
            write_query(connection, fragments_query("__frag"), staging / FRAGMENTS_FILE)
    # The events sort is the biggest step: free the memory the earlier steps held first.
    for table in ("__frag", "__pairs", "__ident", "__profile_keys", "__ids", "__ns"):
        connection.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    with phase("write events"):
        events = write_query(
            connection, events_query(event_schema), staging / EVENTS_FILE, split=(RID, staging / EVENT_RIDS_FILE)
        )
    write_schema(staging / SCHEMA_FILE, pq.read_schema(staging / PROFILES_FILE), pq.read_schema(staging / EVENTS_FILE))
    event_only = count(
        connection,
        "SELECT count(*) FROM read_parquet(?) WHERE NOT _hasProfileRecord",
        [str(staging / PROFILES_FILE)],
    )
    stats = BuildStats(
        profiles=profiles,
        events=events,
        fragments=fragments,
        identities=identities,
        oversized_graphs=tuple(oversized),
        seconds=0.0,
        event_only_profiles=event_only,
        unlinked_fragments=unlinked_fragments,
        unlinked_events=sum(pq.ParquetFile(f.path).metadata.num_rows for _, f, _ in inputs["event"].files) - events,
    )
    return stats, {kind: source.schema for kind, source in inputs.items()}


def register_sources(connection: duckdb.DuckDBPyConnection, files: pa.Table) -> None:
    """Load the table of source files (from :func:`~openseg.profiles.reading.plan_inputs`) the reads join to."""
    connection.register("__source_files_arrow", files)
    connection.execute(f"CREATE TEMP TABLE {SOURCES_TABLE} AS SELECT * FROM __source_files_arrow")
    connection.unregister("__source_files_arrow")


def create_merged_view(
    connection: duckdb.DuckDBPyConnection, fragments: str, schema: pa.Schema, policy: MergePolicySpec
) -> None:
    """Create ``__merged``: one merged row per profile of the fragments in ``fragments``.

    Needs the ``__key_pid`` table of :func:`~openseg.profiles.identity.stitch`.
    """
    connection.execute(
        f"CREATE OR REPLACE TEMP VIEW __frag_pid AS "
        f"SELECT f.* EXCLUDE ({ANCHOR}, {IDENTITY_LIST}), k._profile_id AS {PROFILE} "
        f"FROM {fragments} AS f JOIN __key_pid AS k ON k.key = f.{ANCHOR}"
    )
    ranked = render(ranked_query("__frag_pid", schema, policy))
    connection.execute(f"CREATE OR REPLACE TEMP VIEW __ranked AS {ranked}")
    merged = render(merge_query("__ranked", schema, PROFILE))
    connection.execute(f"CREATE OR REPLACE TEMP VIEW __merged AS {merged}")


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Log how long a build (or refresh) phase took (DEBUG), to see where a slow one spends its time."""
    started = time.perf_counter()
    yield
    _log.debug("profile store: %s took %.2f s", name, time.perf_counter() - started)


def count(connection: duckdb.DuckDBPyConnection, query: str, parameters: list[object] | None = None) -> int:
    """The single integer a query yields."""
    # fetchall: DuckDB 2 keeps a partly fetched result open and refuses the next statement.
    return int(connection.execute(query, parameters or []).fetchall()[0][0])


def write_query(
    connection: duckdb.DuckDBPyConnection, query: str, path: Path, split: tuple[str, Path] | None = None
) -> int:
    """Stream a query's rows into a Parquet file; return the row count.

    Args:
        connection: The connection to run ``query`` in.
        query: The rows to write, in the order to write them.
        path: The Parquet file to write.
        split: ``(column, path)``: write that (last) column to a file of its own instead, row for row.
    """
    reader = connection.sql(query).to_arrow_reader(ROW_GROUP_ROWS)
    with BatchWriter(path, reader.schema, split) as writer:
        for batch in reader:
            writer.write(batch)
    return writer.rows


class BatchWriter:
    """Writes record batches to a Parquet file (and optionally one column to a second file).

    DuckDB's Arrow stream feeding pyarrow's writer was measured faster than DuckDB's own writer on
    sorted nested XDM events (2 cores). Writing runs in a second thread so that compressing one batch
    overlaps with producing the next (both release the GIL).
    """

    def __init__(self, path: Path, schema: pa.Schema, split: tuple[str, Path] | None = None) -> None:
        self._split = split[0] if split else None
        if split is not None:
            if schema.names[-1] != split[0]:
                raise ValueError(f"split: {split[0]!r} is not the last column")
            split_path = split[1]
            split_path.parent.mkdir(parents=True, exist_ok=True)
            self._side: pq.ParquetWriter | None = pq.ParquetWriter(
                split_path, pa.schema([schema.field(split[0])]), compression="zstd"
            )
            schema = schema.remove(len(schema) - 1)
        else:
            self._side = None
        self.schema = schema
        self._main = pq.ParquetWriter(path, schema, compression="zstd")
        self._pool = ThreadPoolExecutor(1)
        self._pending: Future[None] | None = None
        self.rows = 0

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Queue ``batch`` (with the split column last, if any) for writing."""
        if batch.num_rows == 0:
            return
        if self._pending is not None:
            self._pending.result()
        self._pending = self._pool.submit(self._write, batch)
        self.rows += batch.num_rows

    def _write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if self._side is not None:
            last = batch.num_columns - 1
            self._side.write_table(pa.table([batch.column(last)], names=[self._split]), row_group_size=ROW_GROUP_ROWS)
            batch = batch.remove_column(last)
        if isinstance(batch, pa.RecordBatch):
            self._main.write_batch(batch, row_group_size=ROW_GROUP_ROWS)
        else:
            self._main.write_table(batch, row_group_size=ROW_GROUP_ROWS)

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._pending is not None and exc_info[0] is None:
                self._pending.result()
        finally:
            self._pool.shutdown(wait=True)
            self._main.close()
            if self._side is not None:
                self._side.close()


def profiles_query(schema: pa.Schema) -> str:
    """One row per profile: merged attributes, the union identityMap, provenance columns and the namespace of
    its primary identity."""
    columns: list[exp.Expr] = [exp.alias_(col("_profile_id", "k"), "_profile_id", quoted=True)]
    for top in schema:
        source = col(IDENTITY_MAP, "i") if top.name == IDENTITY_MAP else col(top.name, "m")
        columns.append(exp.alias_(source, top.name, quoted=True))
    select = render(exp.select(*columns))
    namespace = render(primary_namespace(col(IDENTITY_MAP, "i"), col("_profile_id", "k")))
    # The rest is fixed text over the store's own temp tables.
    return f"""
    WITH ids AS (
        SELECT x.pid, n.ns, list_sort(list(struct_pack(id := n.id, "primary" := x.is_primary))) AS ids
        FROM __ident AS x JOIN __ids AS n USING (iid)
        GROUP BY x.pid, n.ns
    ), "i" AS (
        SELECT pid, map_from_entries(list_sort(list(struct_pack(key := ns, value := ids)))) AS identityMap
        FROM ids GROUP BY pid
    )
    {select},
        coalesce("m"._sources, []::VARCHAR[]) AS _sources,
        coalesce("m"._lastModifiedAt, k.last_ingest) AS _lastModifiedAt,
        "m".{PROFILE} IS NOT NULL AS _hasProfileRecord,
        {namespace} AS {PRIMARY_NAMESPACE}
    FROM __profile_keys AS "k"
    JOIN "i" USING (pid)
    LEFT JOIN __merged AS "m" ON "m".{PROFILE} = "k"._profile_id
    ORDER BY "k".pid
    """


def events_query(schema: pa.Schema) -> str:
    """One row per linked event, ordered as ``events.parquet``, with the record id as last column."""
    columns: list[exp.Expr] = [exp.alias_(col("_profile_id", "r"), "_profile_id", quoted=True)]
    columns += [exp.alias_(col(f.name, "e"), f.name, quoted=True) for f in schema]
    columns.append(exp.alias_(col(INGEST, "e"), "_ingestTime", quoted=True))
    columns.append(exp.alias_(col(RID, "e"), RID, quoted=True))
    select = render(exp.select(*columns))
    # Joining on the anchor keeps the hash table narrow (one row per identity, not per event); the
    # integer pid orders like _profile_id and sorts faster.
    return f"""
    {select}
    FROM __evt AS "e" JOIN __key_pid AS "r" ON "r".key = "e".{ANCHOR}
    ORDER BY "r".pid, "e"."timestamp" NULLS LAST, "e".{RID}
    """


# Under pdg every identity is in one profile. Under none an identity keying a profile maps to that
# profile only; one carried only beside other anchors maps to every profile whose records carry it.
IDENTITIES_QUERY = """
SELECT n.ns AS namespace, n.id, p.key AS _profile_id
FROM __ident AS x JOIN __ids AS n ON n.iid = x.iid JOIN __ids AS p ON p.iid = x.pid
WHERE x.iid = x.pid OR x.iid NOT IN (SELECT DISTINCT pid FROM __ident)
ORDER BY n.id, n.key, p.key
"""


def fragments_query(relation: str) -> str:
    """The rows of ``fragments.parquet`` from the fragments in ``relation`` (a store temp table).

    Under identityGraph none a lookup merges the fragments carrying one identity (see identity.py), so
    the unmerged fragments are kept, each with the keys of its identities.
    """
    return f"""
    SELECT * EXCLUDE ({ANCHOR}, {IDENTITY_LIST}),
           list_sort(list_transform({IDENTITY_LIST}, lambda __i: __i.key)) AS {KEYS}
    FROM {relation}
    WHERE {ANCHOR} IS NOT NULL
    ORDER BY {RID}
    """
