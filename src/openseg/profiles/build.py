"""Building the merged profile store of one merge policy from the lake's files.

The whole build runs as statements in one engine workspace (DuckDB by default, Spark where it scales out):
fragments are read once into a materialised relation, events are read from their files twice (identities,
then the final sorted write), identities are stitched with :mod:`openseg.profiles.identity`, fragments merged
with :mod:`openseg.profiles.merge`, the engine writes the store's files (DuckDB streams them into this
process's Parquet writer; on Spark the executors write them) and the store is published atomically
(:mod:`openseg.profiles.store`). Only counts come back from the engine. A build is a full rebuild: it is
a pure function of the sources and the policy, which is what makes it safe to re-run when a batch lands
(:mod:`openseg.profiles.refresh` decides when an incremental update can stand in for it).

Beside the documented store files a build keeps ``_state/event_rids.parquet``: the record id of every
row of ``events.parquet``, in the same order. Events are ordered by ``(_profile_id, timestamp, record
id)`` and oversized graphs are replayed in record-id order, so an incremental update needs the ids of
the events it re-sorts; they are not an XDM field, so they stay out of ``events.parquet``.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from openseg import lake_files
from openseg.profiles._sql import col, render, statement
from openseg.profiles.identity import ANCHOR, IDENTITY_LIST, STITCH_WORK, OversizedGraph, records_query, stitch
from openseg.profiles.manifest import source_entry, write_manifest
from openseg.profiles.merge import merge_query, ranked_query
from openseg.profiles.merge_policy import MergePolicySpec
from openseg.profiles.reading import INGEST, PROVENANCE, RID, SOURCES_TABLE, plan_inputs, read_query
from openseg.profiles.sources import IDENTITY_MAP, SourceFile, ingest_order
from openseg.profiles.store import (
    EVENT_RIDS_FILE,
    EVENTS_FILE,
    FRAGMENTS_FILE,
    IDENTITIES_FILE,
    MANIFEST_FILE,
    PROFILES_FILE,
    SCHEMA_FILE,
    keeps_fragments,
    new_staging_dir,
    primary_namespace,
    publish,
    write_schema,
)
from openseg.xdm.schema import PRIMARY_NAMESPACE

if TYPE_CHECKING:
    from openseg.engines.base import Engine, Workspace

_log = logging.getLogger(__name__)

PROFILE = "__profile"
KEYS = "__keys"
#: Where DuckDB spills beyond a build's memory limit: inside the build, removed when it is done.
SPILL_DIR = "_spill"
#: Rows per row group of the store's files.
ROW_GROUP_ROWS = 100_000
#: Rows per row group of the files a lookup reads by key (``profiles.parquet`` by ``_profile_id``,
#: ``identities.parquet`` by ``id``): a lookup decodes the one group whose min/max statistics hold its key
#: (``Engine.read_rows``), so small. Streaming segmentation and the edge look up a profile for every message:
#: at 1M profiles a group of 2,048 rows decodes in 0.6-0.8 ms where one of 8,192 took 2.2-2.7 ms, and a job's
#: scan of the profiles file stays under 0.1 s; the profiles file grows 8 %.
LOOKUP_ROW_GROUP_ROWS = 2_048
#: Rows per row group of ``events.parquet``: streaming segmentation and the edge read a profile's events by
#: ``_profile_id`` (the few columns their definitions read), jobs scan the whole file. At 1M profiles a lookup's
#: group decoded in 11 ms at 100,000 rows and 1.8 ms at 16,384; a job's event aggregate scanned as fast
#: (1.43 s and 1.28 s) and the file grew 3 %.
EVENT_ROW_GROUP_ROWS = 16_384
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
    engine: Engine,
    memory_limit: str | None = None,
) -> BuildStats:
    """Build (or rebuild) the merged profile store of ``policy`` at ``out_dir``.

    Args:
        sources: The successful batches' files, profile fragments and events, in any order.
        policy: The merge policy to apply.
        out_dir: The store path (``{home}/profiles/{sandboxId}/{mergePolicyId}``); replaced atomically.
        engine: Runs the build's statements and writes the files.
        memory_limit: The most memory the build may use, such as ``"3GB"`` (default: the engine's); DuckDB
            spills to a directory inside the build beyond it (:meth:`~openseg.engines.base.Engine.with_limits`).

    Returns:
        The build statistics (also written to ``manifest.json``).

    Raises:
        SchemaConflictError: If two files hold incompatible types for one field.
    """
    started = time.perf_counter()
    ordered = ingest_order(sources)

    def produce(staging: Path) -> tuple[BuildStats, dict[str, pa.Schema]]:
        with engine.with_limits(memory_limit, staging / SPILL_DIR).workspace() as workspace:
            return _build(workspace, ordered, policy, staging)

    return write_build(Path(out_dir), [source_entry(s) for s in ordered], policy, produce, started=started)


#: Writes a store's files into a staging directory: (stats, union schemas).
Producer = Callable[[Path], tuple["BuildStats", dict[str, pa.Schema]]]


def write_build(out_dir: Path, entries: list[dict[str, Any]], policy: MergePolicySpec, produce: Producer, *,
                started: float) -> BuildStats:
    """Run ``produce`` into a fresh staging directory, add the manifest and publish the build atomically.

    Full builds and incremental refreshes both come here; a failure leaves the published store as it was.
    """
    staging = new_staging_dir(out_dir)
    try:
        stats, schemas = produce(staging)
        shutil.rmtree(staging / SPILL_DIR, ignore_errors=True)
        stats = replace(stats, seconds=round(time.perf_counter() - started, 3))
        write_manifest(staging / MANIFEST_FILE, entries, policy, stats.to_dict(), schemas)
        publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return stats


def _build(
    workspace: Workspace,
    sources: list[SourceFile],
    policy: MergePolicySpec,
    staging: Path,
) -> tuple[BuildStats, dict[str, pa.Schema]]:
    inputs, files = plan_inputs(sources)
    register_sources(workspace, files)
    profile_schema, event_schema = inputs["profile"].schema, inputs["event"].schema

    with phase("read fragments"):
        workspace.materialize("__frag", records_query(read_query(workspace, inputs["profile"], "__frag_files")))
    workspace.define("__evt", records_query(read_query(workspace, inputs["event"], "__evt_files")))
    with phase("stitch identities"):
        oversized = stitch(workspace, ["__frag", "__evt"], policy.identity_graph)
    fragments = workspace.count("__frag")
    unlinked_fragments = count(workspace, f"SELECT count(*) FROM __frag WHERE {ANCHOR} IS NULL")
    identities = workspace.count("__ids")
    with phase("merge and write profiles"):
        # Profile by profile the merge needs only its own fragments: cut into slices of profiles (pid ranges, in
        # order) where the engine holds a merge in memory, each merged and written once the one before is.
        slices = pid_slices(workspace, workspace.slices(fragments))
        workspace.write_file([merged_profiles(workspace, "__frag", profile_schema, policy, pids, number)
                              for number, pids in enumerate(slices)], staging / PROFILES_FILE, LOOKUP_ROW_GROUP_ROWS)
    with phase("write identities"):
        workspace.write_file(IDENTITIES_QUERY, staging / IDENTITIES_FILE, LOOKUP_ROW_GROUP_ROWS)
        if keeps_fragments(policy.identity_graph, policy.attribute_merge):
            workspace.write_file(fragments_query("__frag", profile_schema), staging / FRAGMENTS_FILE, ROW_GROUP_ROWS)
    # The events sort is the biggest step: free the memory the earlier steps held first.
    for relation in ("__frag", "__ident", "__profile_keys", "__ids", *STITCH_WORK):
        workspace.drop(relation)
    with phase("write events"):
        workspace.write_file(events_query(event_schema), staging / EVENTS_FILE, EVENT_ROW_GROUP_ROWS,
                             split=(RID, staging / EVENT_RIDS_FILE))
    profiles, events = rows(staging / PROFILES_FILE), rows(staging / EVENTS_FILE)
    write_schema(staging / SCHEMA_FILE, pq.read_schema(staging / PROFILES_FILE), pq.read_schema(staging / EVENTS_FILE))
    workspace.register("__written_profiles", str(staging / PROFILES_FILE))
    event_only = count(workspace, "SELECT count(*) FROM __written_profiles WHERE NOT _hasProfileRecord")
    stats = BuildStats(
        profiles=profiles,
        events=events,
        fragments=fragments,
        identities=identities,
        oversized_graphs=tuple(oversized),
        seconds=0.0,
        event_only_profiles=event_only,
        unlinked_fragments=unlinked_fragments,
        unlinked_events=sum(rows(f.path) for _, f, _ in inputs["event"].files) - events,
    )
    return stats, {kind: source.schema for kind, source in inputs.items()}


def register_sources(workspace: Workspace, files: pa.Table) -> None:
    """Register the table of source files (from :func:`~openseg.profiles.reading.plan_inputs`) the reads join to."""
    workspace.register(SOURCES_TABLE, files)


#: Profiles of a slice: ``pid`` in ``(low, high]``; None: every profile.
PidRange = tuple[int, int] | None


def pid_slices(workspace: Workspace, count: int) -> list[PidRange]:
    """``count`` ranges of ``pid`` (``__profile_keys``) with about as many profiles each, in order."""
    if count <= 1:
        return [None]
    quantiles = ", ".join(f"{i / count!r}" for i in range(1, count))
    bounds = workspace.fetch(statement(
        f"SELECT quantile_disc(pid, [{quantiles}]) AS q, max(pid) AS top FROM __profile_keys")).to_pylist()[0]
    if bounds["top"] is None:
        return [None]
    edges = [-1, *sorted({int(b) for b in bounds["q"]} - {int(bounds["top"])}), int(bounds["top"])]
    return list(itertools.pairwise(edges))


def _in_range(pid: exp.Expr, pids: PidRange) -> exp.Expr | None:
    if pids is None:
        return None
    low, high = pids
    return exp.and_(exp.GT(this=pid, expression=exp.Literal.number(low)),
                    exp.LTE(this=pid, expression=exp.Literal.number(high)))


def define_merged(workspace: Workspace, fragments: str, schema: pa.Schema, policy: MergePolicySpec,
                  pids: PidRange = None, name: str = "__merged") -> None:
    """Define ``name``: one merged row per profile of the fragments in ``fragments`` (of the profiles whose
    ``pid`` is in ``pids``), over views ``{name}_keyed`` and ``{name}_ranked``.

    Needs the ``__key_pid`` relation of :func:`~openseg.profiles.identity.stitch`.
    """
    columns = [col(name, "f") for name in (*schema.names, *PROVENANCE)]
    keyed = (
        exp.select(*columns, exp.alias_(col("_profile_id", "k"), PROFILE, quoted=True))
        .from_(exp.alias_(exp.to_table(fragments), "f", quoted=True))
        .join(exp.alias_(exp.to_table("__key_pid"), "k", quoted=True),
              on=exp.EQ(this=col("key", "k"), expression=col(ANCHOR, "f")))
    )
    in_range = _in_range(col("pid", "k"), pids)
    workspace.define(f"{name}_keyed", keyed if in_range is None else keyed.where(in_range))
    workspace.define(f"{name}_ranked", ranked_query(f"{name}_keyed", schema, policy, window=workspace.global_windows))
    workspace.define(name, merge_query(f"{name}_ranked", schema, PROFILE))


def merged_profiles(workspace: Workspace, fragments: str, schema: pa.Schema, policy: MergePolicySpec,
                    pids: PidRange, number: int = 0) -> exp.Query:
    """The rows of ``profiles.parquet`` for the profiles in ``pids``, over their merge (:func:`define_merged`,
    as views of the slice's own, ``__merged_{number}``)."""
    name = f"__merged_{number}"
    define_merged(workspace, fragments, schema, policy, pids, name)
    return profiles_query(schema, pids, name)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Log how long a build (or refresh) phase took (DEBUG), to see where a slow one spends its time."""
    started = time.perf_counter()
    yield
    _log.debug("profile store: %s took %.2f s", name, time.perf_counter() - started)


def count(workspace: Workspace, query: str) -> int:
    """The single integer a fixed statement yields."""
    return int(workspace.fetch(statement(query)).column(0)[0].as_py() or 0)


def rows(location: str | Path) -> int:
    """The rows of a Parquet file (from its footer), local or in an object store lake."""
    return int(lake_files.parquet_file(str(location)).metadata.num_rows)


def profiles_query(schema: pa.Schema, pids: PidRange = None, merged: str = "__merged") -> exp.Query:
    """One row per profile (of those whose ``pid`` is in ``pids``): merged attributes, the union identityMap,
    provenance columns and the namespace of its primary identity."""
    columns: list[exp.Expr] = [exp.alias_(col("_profile_id", "k"), "_profile_id", quoted=True)]
    for top in schema:
        source = col(IDENTITY_MAP, "i") if top.name == IDENTITY_MAP else col(top.name, "m")
        columns.append(exp.alias_(source, top.name, quoted=True))
    select = render(exp.select(*columns))
    namespace = render(primary_namespace(col(IDENTITY_MAP, "i"), col("_profile_id", "k")))
    identities_in = _in_range(col("pid", "x"), pids)
    profiles_in = _in_range(col("pid", "k"), pids)
    # The rest is fixed text over the store's own relations.
    return statement(f"""
    WITH ids AS (
        SELECT x.pid, n.ns, list_sort(list(struct_pack(id := n.id, "primary" := x.is_primary))) AS ids
        FROM __ident AS x JOIN __ids AS n ON n.iid = x.iid
        {"" if identities_in is None else f"WHERE {render(identities_in)}"}
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
    JOIN "i" ON "i".pid = "k".pid
    LEFT JOIN {render(exp.to_table(merged))} AS "m" ON "m".{PROFILE} = "k"._profile_id
    {"" if profiles_in is None else f"WHERE {render(profiles_in)}"}
    ORDER BY "k".pid
    """)


def events_query(schema: pa.Schema) -> exp.Query:
    """One row per linked event, ordered as ``events.parquet``, with the record id as last column."""
    columns: list[exp.Expr] = [exp.alias_(col("_profile_id", "r"), "_profile_id", quoted=True)]
    columns += [exp.alias_(col(f.name, "e"), f.name, quoted=True) for f in schema]
    columns.append(exp.alias_(col(INGEST, "e"), "_ingestTime", quoted=True))
    columns.append(exp.alias_(col(RID, "e"), RID, quoted=True))
    select = render(exp.select(*columns))
    # Joining on the anchor keeps the hash table narrow (one row per identity, not per event); the
    # integer pid orders like _profile_id and sorts faster.
    return statement(f"""
    {select}
    FROM __evt AS "e" JOIN __key_pid AS "r" ON "r".key = "e".{ANCHOR}
    ORDER BY "r".pid, "e"."timestamp" NULLS LAST, "e".{RID}
    """)


# Under pdg every identity is in one profile. Under none an identity keying a profile maps to that
# profile only; one carried only beside other anchors maps to every profile whose records carry it.
IDENTITIES_QUERY = statement("""
SELECT n.ns AS namespace, n.id, p.key AS _profile_id
FROM __ident AS x JOIN __ids AS n ON n.iid = x.iid JOIN __ids AS p ON p.iid = x.pid
WHERE x.iid = x.pid OR x.iid NOT IN (SELECT DISTINCT pid FROM __ident)
ORDER BY n.id, n.key, p.key
""")


def fragments_query(relation: str, schema: pa.Schema) -> exp.Query:
    """The rows of ``fragments.parquet`` from the fragments in ``relation`` (records with the unified fragment
    ``schema``, their provenance, anchor and identities).

    Under identityGraph none a lookup merges the fragments carrying one identity (see identity.py), so
    the unmerged fragments are kept, each with the keys of its identities; so they are under dataSetPrecedence,
    where the overlay ranks streamed fragments among them (``store.keeps_fragments``).
    """
    columns = ", ".join(render(col(name)) for name in (*schema.names, *PROVENANCE))
    return statement(f"""
    SELECT {columns}, list_sort(list_transform({IDENTITY_LIST}, lambda __i: __i.key)) AS {KEYS}
    FROM {relation}
    WHERE {ANCHOR} IS NOT NULL
    ORDER BY {RID}
    """)
