"""Building the merged profile store of one merge policy from the lake's files.

The whole build runs in one embedded DuckDB connection: fragments are read once into a temp table,
events are streamed from their files twice (identities, then the final sorted write), identities are
stitched with :mod:`openseg.profiles.identity`, fragments merged with :mod:`openseg.profiles.merge`,
and the store is published atomically (:mod:`openseg.profiles.store`). A build is a full rebuild: it is
a pure function of the sources and the policy, which is what makes it safe to re-run when a batch lands.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from openseg.profiles._sql import col, render
from openseg.profiles.identity import ANCHOR, ANCHOR_SQL, IDENTITY_LIST, IDENTITY_LIST_SQL, OversizedGraph, stitch
from openseg.profiles.merge import merge_query, ranked_query
from openseg.profiles.merge_policy import MergePolicySpec
from openseg.profiles.reading import INGEST, PROVENANCE, RID, SOURCES_TABLE, plan_inputs, read_query
from openseg.profiles.sources import IDENTITY_MAP, SourceFile, ingest_order, utc_naive
from openseg.profiles.store import (
    EVENTS_FILE,
    FRAGMENTS_FILE,
    IDENTITIES_FILE,
    MANIFEST_FILE,
    PROFILES_FILE,
    SCHEMA_FILE,
    new_staging_dir,
    publish,
    write_schema,
)

_log = logging.getLogger(__name__)

PROFILE = "__profile"
KEYS = "__keys"
# Row groups small enough that a lookup by `_profile_id` reads one of them (min/max statistics).
_ROW_GROUP_ROWS = 100_000


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

    def to_dict(self) -> dict[str, object]:
        """The statistics as a JSON-ready dict."""
        data = asdict(self)
        data["oversized_graphs"] = [
            {"identities": [list(i) for i in g.identities], "profile_ids": list(g.profile_ids)}
            for g in self.oversized_graphs
        ]
        return data


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
    out_dir = Path(out_dir)
    staging = new_staging_dir(out_dir)
    try:
        with _connect(staging / "_spill", threads, memory_limit) as connection:
            stats = _build(connection, ordered, policy, staging)
        shutil.rmtree(staging / "_spill", ignore_errors=True)
        stats = replace(stats, seconds=round(time.perf_counter() - started, 3))
        _write_manifest(staging / MANIFEST_FILE, ordered, policy, stats)
        publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return stats


def _connect(spill: Path, threads: int | None, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
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
    return connection


def _build(
    connection: duckdb.DuckDBPyConnection,
    sources: list[SourceFile],
    policy: MergePolicySpec,
    staging: Path,
) -> BuildStats:
    inputs, files = plan_inputs(sources)
    connection.register("__source_files_arrow", files)
    connection.execute(f"CREATE TEMP TABLE {SOURCES_TABLE} AS SELECT * FROM __source_files_arrow")
    connection.unregister("__source_files_arrow")
    profile_schema, event_schema = inputs["profile"].schema, inputs["event"].schema

    with _phase("read fragments"):
        connection.execute(
            f"CREATE TEMP TABLE __frag AS SELECT *, {ANCHOR_SQL} AS {ANCHOR}, {IDENTITY_LIST_SQL} AS {IDENTITY_LIST} "
            f"FROM ({render(read_query(connection, inputs['profile']))})"
        )
    connection.execute(
        f"CREATE TEMP VIEW __evt AS SELECT *, {ANCHOR_SQL} AS {ANCHOR}, {IDENTITY_LIST_SQL} AS {IDENTITY_LIST} "
        f"FROM ({render(read_query(connection, inputs['event']))})"
    )
    with _phase("stitch identities"):
        oversized = stitch(connection, ["__frag", "__evt"], policy.identity_graph)
    fragments = _count(connection, "SELECT count(*) FROM __frag")
    unlinked_fragments = _count(connection, f"SELECT count(*) FROM __frag WHERE {ANCHOR} IS NULL")
    identities = _count(connection, "SELECT count(*) FROM __ids")
    with _phase("merge and write profiles"):
        connection.execute(
            f"CREATE TEMP VIEW __frag_pid AS "
            f"SELECT f.* EXCLUDE ({ANCHOR}, {IDENTITY_LIST}), k._profile_id AS {PROFILE} "
            f"FROM __frag AS f JOIN __key_pid AS k ON k.key = f.{ANCHOR}"
        )
        ranked = render(ranked_query("__frag_pid", profile_schema, policy))
        connection.execute(f"CREATE TEMP VIEW __ranked AS {ranked}")
        connection.execute(f"CREATE TEMP VIEW __merged AS {render(merge_query('__ranked', profile_schema, PROFILE))}")
        profiles = _write(connection, _profiles_query(profile_schema), staging / PROFILES_FILE)
    with _phase("write identities"):
        _write(connection, _IDENTITIES, staging / IDENTITIES_FILE)
        if policy.identity_graph == "none":
            _write(connection, _FRAGMENTS, staging / FRAGMENTS_FILE)
    # The events sort is the biggest step: free the memory the earlier steps held first.
    for table in ("__frag", "__pairs", "__ident", "__profile_keys", "__ids", "__ns"):
        connection.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    with _phase("write events"):
        events = _write(connection, _events_query(event_schema), staging / EVENTS_FILE)
    write_schema(staging / SCHEMA_FILE, pq.read_schema(staging / PROFILES_FILE), pq.read_schema(staging / EVENTS_FILE))
    event_only = _count(
        connection,
        "SELECT count(*) FROM read_parquet(?) WHERE NOT _hasProfileRecord",
        [str(staging / PROFILES_FILE)],
    )
    return BuildStats(
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


@contextmanager
def _phase(name: str) -> Iterator[None]:
    """Log how long a build phase took (DEBUG), to see where a slow build spends its time."""
    started = time.perf_counter()
    yield
    _log.debug("profile build: %s took %.2f s", name, time.perf_counter() - started)


def _count(connection: duckdb.DuckDBPyConnection, query: str, parameters: list[object] | None = None) -> int:
    # fetchall: DuckDB 2 keeps a partly fetched result open and refuses the next statement.
    return int(connection.execute(query, parameters or []).fetchall()[0][0])


def _write(connection: duckdb.DuckDBPyConnection, query: str, path: Path) -> int:
    """Stream a query's rows into a Parquet file; return the row count.

    DuckDB's Arrow stream feeding pyarrow's writer was measured faster than DuckDB's own writer on
    sorted nested XDM events (2 cores). Writing runs in a second thread so that compressing one batch
    overlaps with DuckDB producing the next (both release the GIL).
    """
    reader = connection.sql(query).to_arrow_reader(_ROW_GROUP_ROWS)
    rows = 0
    with pq.ParquetWriter(path, reader.schema, compression="zstd") as writer, ThreadPoolExecutor(1) as pool:
        pending: Future[None] | None = None
        for batch in reader:
            if pending is not None:
                pending.result()
            pending = pool.submit(writer.write_batch, batch, row_group_size=_ROW_GROUP_ROWS)
            rows += batch.num_rows
        if pending is not None:
            pending.result()
    return rows


def _profiles_query(schema: pa.Schema) -> str:
    """One row per profile: merged attributes, the union identityMap, provenance columns."""
    columns: list[exp.Expr] = [exp.alias_(col("_profile_id", "k"), "_profile_id", quoted=True)]
    for top in schema:
        source = col(IDENTITY_MAP, "i") if top.name == IDENTITY_MAP else col(top.name, "m")
        columns.append(exp.alias_(source, top.name, quoted=True))
    select = render(exp.select(*columns))
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
        "m".{PROFILE} IS NOT NULL AS _hasProfileRecord
    FROM __profile_keys AS "k"
    JOIN "i" USING (pid)
    LEFT JOIN __merged AS "m" ON "m".{PROFILE} = "k"._profile_id
    ORDER BY "k".pid
    """


def _events_query(schema: pa.Schema) -> str:
    columns: list[exp.Expr] = [exp.alias_(col("_profile_id", "r"), "_profile_id", quoted=True)]
    columns += [exp.alias_(col(f.name, "e"), f.name, quoted=True) for f in schema]
    columns.append(exp.alias_(col(INGEST, "e"), "_ingestTime", quoted=True))
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
_IDENTITIES = """
SELECT n.ns AS namespace, n.id, p.key AS _profile_id
FROM __ident AS x JOIN __ids AS n ON n.iid = x.iid JOIN __ids AS p ON p.iid = x.pid
WHERE x.iid = x.pid OR x.iid NOT IN (SELECT DISTINCT pid FROM __ident)
ORDER BY n.id, n.key, p.key
"""

# Under identityGraph none a lookup merges the fragments carrying one identity (see identity.py), so
# the unmerged fragments are kept, each with the keys of its identities.
_FRAGMENTS = f"""
SELECT * EXCLUDE ({ANCHOR}, {IDENTITY_LIST}),
       list_sort(list_transform({IDENTITY_LIST}, lambda __i: __i.key)) AS {KEYS}
FROM __frag
WHERE {ANCHOR} IS NOT NULL
ORDER BY {RID}
"""


def _write_manifest(path: Path, sources: list[SourceFile], policy: MergePolicySpec, stats: BuildStats) -> None:
    manifest = {
        "formatVersion": 1,
        "builtAt": datetime.now(UTC).isoformat(),
        "policy": policy.to_dict(),
        "sources": [
            {
                "path": s.path,
                "datasetId": s.dataset_id,
                "batchId": s.batch_id,
                "ingestTime": utc_naive(s.ingest_time).isoformat() + "Z",
                "kind": s.kind,
            }
            for s in sources
        ],
        "stats": stats.to_dict(),
        "provenanceColumns": list(PROVENANCE),
    }
    path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
