"""Bringing a built profile store up to date with new sources, recomputing only what they touch.

New sources sort after every source of the previous build (:mod:`openseg.profiles.refresh` checks that),
so every earlier record keeps its record id and every new record sorts after it. The update then
recomputes exactly the profiles a full build would change, from exactly the records that full build
would use for them:

``pdg``
    A new record can only join components holding one of its identities. The *touched* units are the
    previous profiles holding an identity of a new record, widened to the whole original component when
    that component was over the 50-identity guardrail (its split is a replay of all its records, so all
    its profiles are replayed again). Components that share no identity with a new record are
    untouched: no edge reaches them, so their profiles, ids and rows stay as they are.
``none``
    A record belongs to the profile keyed by its anchor, so the touched profiles are the anchors of the
    new records.

The records of the touched profiles (earlier fragments re-read from their source files, earlier events
from ``events.parquet`` with their record ids from ``_state/event_rids.parquet``) plus the new records
go through the same stitching, merge and queries as a full build (:mod:`openseg.profiles.build`); the
store files are then rewritten with the touched profiles' rows replaced (:mod:`openseg.profiles.splice`).
What only depends on every record (the display spelling of a namespace, the unified schema) is checked
instead: when a new source would change it, :class:`FullRebuildRequired` is raised.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from openseg.engines.parquet import matching_rows, row_count
from openseg.profiles._sql import col, render, statement
from openseg.profiles.build import (
    EVENT_ROW_GROUP_ROWS,
    IDENTITIES_QUERY,
    LOOKUP_ROW_GROUP_ROWS,
    BuildStats,
    count,
    define_merged,
    events_query,
    fragments_query,
    phase,
    profiles_query,
    register_sources,
)
from openseg.profiles.identity import (
    ANCHOR,
    IDENTITY_LIST,
    IDENTITY_LIST_SQL,
    OversizedGraph,
    records_query,
    stitch,
)
from openseg.profiles.keys import identity_key
from openseg.profiles.merge_policy import MergePolicySpec
from openseg.profiles.reading import DATASET, INGEST, RID, plan_inputs, read_query
from openseg.profiles.sources import SourceFile
from openseg.profiles.splice import append_rows, splice_or_link, splice_sorted, write_rows
from openseg.profiles.store import (
    EVENT_RIDS_FILE,
    EVENTS_FILE,
    FRAGMENTS_FILE,
    IDENTITIES_FILE,
    PROFILES_FILE,
    SCHEMA_FILE,
    appended_event_part,
    event_parts,
    keeps_fragments,
    schema_to_json,
)

if TYPE_CHECKING:
    from openseg.engines.base import Workspace

_log = logging.getLogger(__name__)

#: Columns numbering the rows of the previous build's events file and its record-id file.
_FILE, _ROW = "__file", "__row"


class FullRebuildRequired(Exception):
    """The new sources cannot be applied incrementally; the message says why."""


@dataclass(frozen=True)
class _NewRecords:
    fragments: int
    unlinked_fragments: int
    events: int
    unlinked_events: int


def update_store(
    workspace: Workspace,
    previous: Path,
    manifest: dict[str, Any],
    sources: list[SourceFile],
    old_count: int,
    policy: MergePolicySpec,
    staging: Path,
    max_touched_share: float,
) -> tuple[BuildStats, dict[str, pa.Schema]]:
    """Write into ``staging`` the store a full build over ``sources`` would write.

    The touched profiles' rows are recomputed in ``workspace`` and fetched into this process, which splices
    them into the previous files.

    Args:
        workspace: Where the statements run.
        previous: The build directory of the store built from ``sources[:old_count]``.
        manifest: Its manifest.
        sources: Every source, in ingest order; the first ``old_count`` are the previous build's.
        old_count: How many sources the previous build read.
        policy: The merge policy (the previous build's).
        staging: An empty build directory.
        max_touched_share: The largest share of the previous profiles an update may recompute; past
            it a full build is as cheap.

    Returns:
        The build statistics (``seconds`` left at 0) and the unified input schemas.

    Raises:
        FullRebuildRequired: If the new sources change the unified schema or a namespace's display
            spelling, or touch more than ``max_touched_share`` of the profiles.
    """
    inputs, files = plan_inputs(sources)
    for kind, source in inputs.items():
        if schema_to_json(source.schema) != manifest["inputSchemas"][kind]:
            raise FullRebuildRequired(f"the new sources change the unified {kind} schema")
    register_sources(workspace, files)
    old = {kind: replace(i, files=tuple(f for f in i.files if f[0] < old_count)) for kind, i in inputs.items()}
    new = {kind: replace(i, files=tuple(f for f in i.files if f[0] >= old_count)) for kind, i in inputs.items()}
    with phase("read new records"):
        workspace.materialize("__new_frag", records_query(read_query(workspace, new["profile"], "__new_frag_files")))
        workspace.materialize("__new_evt", records_query(read_query(workspace, new["event"], "__new_evt_files")))
    counts = _NewRecords(
        fragments=workspace.count("__new_frag"),
        unlinked_fragments=count(workspace, f"SELECT count(*) FROM __new_frag WHERE {ANCHOR} IS NULL"),
        events=workspace.count("__new_evt"),
        unlinked_events=count(workspace, f"SELECT count(*) FROM __new_evt WHERE {ANCHOR} IS NULL"),
    )
    previous_stats = BuildStats.from_dict(manifest["stats"])
    schemas = {kind: source.schema for kind, source in inputs.items()}
    if not counts.fragments and policy.identity_graph == "pdg":
        with phase("append events of known profiles"):
            appended = _append_known_events(workspace, previous, staging, policy, inputs["event"].schema,
                                             previous_stats, counts)
        if appended is not None:
            return appended, schemas
    with phase("find touched profiles"):
        _load_previous_identities(workspace, previous, previous_stats.oversized_graphs)
        _check_namespaces(workspace)
        touched_graphs = _touch(workspace, policy, previous_stats.oversized_graphs)
    touched = workspace.fetch(statement("SELECT pid FROM __touched ORDER BY pid")).column(0).combine_chunks()
    if len(touched) > max_touched_share * max(previous_stats.profiles, 1):
        raise FullRebuildRequired(f"the new sources touch {len(touched)} of {previous_stats.profiles} profiles")

    with phase("read touched profiles' fragments"):
        old_fragments = records_query(read_query(workspace, old["profile"], "__old_frag_files"))
        workspace.materialize("__old_frag", statement(
            f"SELECT * FROM ({render(old_fragments)}) AS records WHERE {ANCHOR} IN (SELECT key FROM __touched_keys)"
        ))
    with phase("read touched profiles' events"):
        _load_previous_events(workspace, previous, inputs["event"].schema)
    with phase("recompute touched profiles"):
        workspace.define("__frag", statement("SELECT * FROM __old_frag UNION ALL SELECT * FROM __new_frag"))
        workspace.define("__evt", statement("SELECT * FROM __new_evt UNION ALL SELECT * FROM __old_evt"))
        oversized = stitch(workspace, ["__frag", "__evt"], policy.identity_graph, known_namespaces="__known_ns")
        define_merged(workspace, "__frag", inputs["profile"].schema, policy)
        profile_rows = workspace.fetch(profiles_query(inputs["profile"].schema))
        event_rows = workspace.fetch(events_query(inputs["event"].schema))

    with phase("rewrite profiles"):
        profiles = splice_or_link(
            previous / PROFILES_FILE, staging / PROFILES_FILE, "_profile_id", touched, profile_rows,
            row_group_rows=LOOKUP_ROW_GROUP_ROWS,
        )
    with phase("write events"):
        events = _write_events(workspace, previous, staging, touched, event_rows, inputs["event"].schema,
                               previous_stats.events, counts.events > counts.unlinked_events)
    with phase("rewrite identities"):
        _write_identities(workspace, previous, policy, staging)
    kept = keeps_fragments(policy.identity_graph, policy.attribute_merge)
    if kept and counts.fragments > counts.unlinked_fragments:
        with phase("rewrite fragments"):
            new_fragments = workspace.fetch(fragments_query("__new_frag", inputs["profile"].schema))
            append_rows(previous / FRAGMENTS_FILE, staging / FRAGMENTS_FILE, new_fragments)
    elif kept:
        _link(previous, staging, FRAGMENTS_FILE)
    # The unified schemas did not change, so neither did the written ones.
    _link(previous, staging, SCHEMA_FILE)

    kept_graphs = [g for index, g in enumerate(previous_stats.oversized_graphs) if index not in touched_graphs]
    stats = replace(
        previous_stats,
        profiles=profiles,
        events=events,
        fragments=previous_stats.fragments + counts.fragments,
        identities=previous_stats.identities + _count_new_identities(workspace),
        oversized_graphs=tuple(sorted([*kept_graphs, *oversized], key=lambda g: identity_key(*g.identities[0]))),
        seconds=0.0,
        event_only_profiles=_count_event_only(staging / PROFILES_FILE),
        unlinked_fragments=previous_stats.unlinked_fragments + counts.unlinked_fragments,
        unlinked_events=previous_stats.unlinked_events + counts.unlinked_events,
        refresh="incremental",
    )
    return stats, schemas


def _append_known_events(workspace: Workspace, previous: Path, staging: Path, policy: MergePolicySpec,
                         schema: pa.Schema, stats: BuildStats, counts: _NewRecords) -> BuildStats | None:
    """The store when the new records are only events that change no profile row (under ``pdg``), or None.

    An event changes no profile row when each of its identities is one the store holds, all in one profile, a
    profile with a profile record (else the event's ingest time would be its ``_lastModifiedAt``), and each
    identity it marks primary is primary in that profile already (in an oversized graph too: replayed last, its
    links join identities of one graph, so the split stays as it was). Then a full build differs from the previous
    one only by these events: they are appended beside the events files as the general path appends them, and
    every other file is kept. This reads the identities of the new events and the rows of their profiles, not the
    whole store: a stream's refreshes (events of known profiles, every few seconds) cost what they add."""
    linked = counts.events - counts.unlinked_events
    parts = event_parts(previous)
    if not linked or not _appends(previous, parts, linked):
        return None
    workspace.materialize("__new_pairs", statement(f"""
        SELECT {RID} AS rid, struct_extract(item, 'key') AS key, struct_extract(item, 'id') AS id,
               struct_extract(item, 'is_primary') AS is_primary
        FROM (SELECT {RID}, unnest({IDENTITY_LIST}) AS item FROM __new_evt WHERE {ANCHOR} IS NOT NULL) AS items
    """))
    # The previous build's identities and profiles of the new events, read by key where the files lie sorted by
    # it (a point read: a stream's refresh at 1M profiles scanned both whole files for ~7,500 events' profiles,
    # 45 % of the refresh's CPU, every refresh a burst beside the requests whose latency streaming promises); the
    # relations hold only those ids and profiles.
    new_ids = workspace.fetch(statement("SELECT DISTINCT id FROM __new_pairs")).column("id").to_pylist()
    workspace.register("__hit_identities", matching_rows(previous / IDENTITIES_FILE, "id", sorted(new_ids),
                                                         columns=["id", "namespace", "_profile_id"]))
    workspace.register("__previous_identities", str(previous / IDENTITIES_FILE))  # its namespaces, below
    workspace.materialize("__known", statement("""
        SELECT key, _profile_id FROM (
            SELECT lower(namespace) || ':' || id AS key, _profile_id FROM __hit_identities
        ) AS identities WHERE key IN (SELECT key FROM __new_pairs)
    """))
    if count(workspace, """
        SELECT count(*) FROM (
            SELECT p.rid FROM __new_pairs AS p LEFT JOIN __known AS k ON k.key = p.key
            GROUP BY p.rid HAVING count(k._profile_id) < count(*) OR count(DISTINCT k._profile_id) > 1
        ) AS straying
    """):
        return None  # a new identity, or one event joining two profiles
    hits = workspace.fetch(statement("SELECT DISTINCT _profile_id FROM __known")).column("_profile_id").to_pylist()
    workspace.register("__hit_rows", matching_rows(previous / PROFILES_FILE, "_profile_id", sorted(hits)))
    workspace.materialize("__hit_profiles", statement(f"""
        SELECT _profile_id, _hasProfileRecord, {IDENTITY_LIST_SQL} AS {IDENTITY_LIST}
        FROM __hit_rows
    """))
    if count(workspace, "SELECT count(*) FROM __hit_profiles WHERE NOT _hasProfileRecord"):
        return None
    if count(workspace, f"""
        SELECT count(*) FROM __new_pairs AS p JOIN __known AS k ON k.key = p.key
        WHERE p.is_primary AND NOT EXISTS (
            SELECT 1 FROM (SELECT _profile_id, unnest({IDENTITY_LIST}) AS item FROM __hit_profiles) AS marked
            WHERE marked._profile_id = k._profile_id AND struct_extract(marked.item, 'key') = p.key
              AND struct_extract(marked.item, 'is_primary'))
    """):
        return None  # an identity becomes primary
    _load_known_namespaces(workspace, stats.oversized_graphs)
    _check_namespaces(workspace)
    workspace.define("__evt", statement("SELECT * FROM __new_evt"))
    workspace.materialize("__key_pid", statement(
        "SELECT key, dense_rank() OVER (ORDER BY _profile_id) AS pid, _profile_id FROM __known"))
    rows = workspace.fetch(events_query(schema))
    if not _append_events(previous, staging, parts, rows):
        return None
    _link(previous, staging, PROFILES_FILE, IDENTITIES_FILE, SCHEMA_FILE)
    if keeps_fragments(policy.identity_graph, policy.attribute_merge):
        _link(previous, staging, FRAGMENTS_FILE)
    return replace(stats, events=stats.events + rows.num_rows, seconds=0.0, refresh="incremental",
                   unlinked_events=stats.unlinked_events + counts.unlinked_events)


def _write_events(workspace: Workspace, previous: Path, staging: Path, touched: pa.Array, event_rows: pa.Table,
                  schema: pa.Schema, previous_events: int, added: bool) -> int:
    """Write the build's events (:func:`openseg.profiles.store.event_files`); return how many it holds.

    ``event_rows`` are the touched profiles' events recomputed, sorted as the files are, the record id last.
    When no earlier event changed profile they are the earlier events plus the new ones, so the new ones alone
    are appended, as a file beside the previous build's files (which are linked, not rewritten: a refresh
    then writes what it adds, not the whole store's events, and every process keeps the row groups it has read
    of them). Once the appended files would hold more than :data:`APPENDED_EVENTS_SHARE` of the events (and
    more than :data:`APPENDED_EVENTS_ROWS`) or number more than :data:`MAX_APPENDED_EVENT_FILES`, or an event
    changed profile (identities merged), the events are written whole again into one ``events.parquet``, sorted
    as a full build sorts them."""
    parts = event_parts(previous)
    workspace.register("__recomputed_rows", event_rows)
    moved = count(workspace, f"""
        SELECT count(*) FROM __old_evt_rows AS o LEFT JOIN __recomputed_rows AS n ON n.{RID} = o.{RID}
        WHERE n._profile_id IS DISTINCT FROM o._profile_id""")
    if not moved and not added:
        _link(previous, staging, *(str(path.relative_to(previous)) for part in parts for path in part))
        return previous_events
    if not moved:
        new = event_rows.filter(pc.invert(pc.is_in(event_rows.column(RID), value_set=workspace.fetch(
            statement(f"SELECT {RID} FROM __old_evt_rows")).column(0))))
        if _append_events(previous, staging, parts, new):
            return previous_events + int(new.num_rows)
    # Written whole: the profiles with appended events are recomputed too (their rows in events.parquet and in
    # the appended files, read back in order), so that each profile's rows come from one side of the splice.
    columns = ", ".join(render(col(name, "e")) for name in ("_profile_id", *schema.names, "_ingestTime"))
    redrawn = workspace.fetch(statement(f"""
        SELECT * FROM (
            SELECT * FROM __recomputed_rows
            UNION ALL
            SELECT {columns}, r.{RID} AS {RID}
            FROM __previous_events AS e JOIN __previous_rids AS r ON r.{_FILE} = e.{_FILE} AND r.{_ROW} = e.{_ROW}
            WHERE e._profile_id IN (SELECT _profile_id FROM __previous_events WHERE {_FILE} > 0)
              AND e._profile_id NOT IN (SELECT pid FROM __touched)
        ) AS events
        ORDER BY _profile_id, "timestamp" NULLS LAST, {RID}
    """))
    dropped = pc.unique(pa.concat_arrays([touched, redrawn.column("_profile_id").combine_chunks()]))
    return splice_sorted(previous / EVENTS_FILE, staging / EVENTS_FILE, "_profile_id", dropped, redrawn,
                         (previous / EVENT_RIDS_FILE, staging / EVENT_RIDS_FILE), row_group_rows=EVENT_ROW_GROUP_ROWS)


#: How many events the files refreshes append beside ``events.parquet`` may hold before the events are written
#: whole again: this share of the store's events, or this many when that is more (writing a small store's events
#: whole costs little, but a stream's refreshes come every few seconds); and how many such files there may be (a
#: point read reads each) before they are merged into one.
APPENDED_EVENTS_SHARE = 0.1
APPENDED_EVENTS_ROWS = 50_000
MAX_APPENDED_EVENT_FILES = 8


def _appends(previous: Path, parts: list[tuple[Path, Path]], rows: int) -> bool:
    """Whether ``rows`` more events may be appended beside the previous build's events (not written whole)."""
    appended = sum(row_count(path) for path, _ in parts[1:]) + rows
    return appended <= max(APPENDED_EVENTS_SHARE * row_count(previous / EVENTS_FILE), APPENDED_EVENTS_ROWS)


def _append_events(previous: Path, staging: Path, parts: list[tuple[Path, Path]], new: pa.Table) -> bool:
    """Append ``new`` (events sorted as the events files are, the record id last) beside the previous build's
    ``events.parquet``, which is linked, not rewritten; False, writing nothing, when the appended files would hold
    too many events (the caller writes them whole). Past :data:`MAX_APPENDED_EVENT_FILES` files, the appended ones
    and ``new`` are merged into one: that costs what they hold, where writing every event whole (every few minutes
    of a stream at 1M profiles) cost what the store holds."""
    if not _appends(previous, parts, new.num_rows):
        return False
    _link(previous, staging, EVENTS_FILE, EVENT_RIDS_FILE)
    if len(parts) <= MAX_APPENDED_EVENT_FILES:
        _link(previous, staging, *(str(path.relative_to(previous)) for part in parts[1:] for path in part))
        rows, rids = appended_event_part(staging, len(parts))
        write_rows(rows, previous / EVENTS_FILE, new, rids, row_group_rows=EVENT_ROW_GROUP_ROWS)
        return True
    like = pq.read_schema(previous / EVENTS_FILE)
    rid = new.schema.field(len(new.schema) - 1)
    tables = [pq.read_table(rows).append_column(rid, pq.read_table(rids).column(0).cast(rid.type))
              for rows, rids in parts[1:]]
    tables.append(new.select([*like.names, rid.name]).cast(like.append(rid)))
    merged = pa.concat_tables([table.cast(like.append(rid)) for table in tables])
    # As a build orders them: by profile, time (missing last) and record id.
    order = pa.table({"p": merged.column("_profile_id"), "late": pc.is_null(merged.column("timestamp")),
                      "t": merged.column("timestamp"), "r": merged.column(rid.name)})
    merged = merged.take(pc.sort_indices(order, sort_keys=[(name, "ascending") for name in order.column_names]))
    rows, rids = appended_event_part(staging, 1)
    write_rows(rows, previous / EVENTS_FILE, merged, rids, row_group_rows=EVENT_ROW_GROUP_ROWS)
    return True


def _count_new_identities(workspace: Workspace) -> int:
    """How many identities of the new records no earlier record carried."""
    return count(
        workspace,
        "SELECT count(*) FROM __new_keys "
        "WHERE key NOT IN (SELECT key FROM __old_ids) AND key NOT IN (SELECT key FROM __old_graph_keys)",
    )


def _count_event_only(profiles: Path) -> int:
    """How many profiles of a written ``profiles.parquet`` have no profile record."""
    has_record = pq.read_table(profiles, columns=["_hasProfileRecord"]).column(0)
    return len(has_record) - int(pc.sum(has_record.cast(pa.int64())).as_py() or 0)


def _load_previous_identities(workspace: Workspace, previous: Path, graphs: tuple[OversizedGraph, ...]) -> None:
    """Load the previous identities (``__old_ids``), oversized graphs and known namespace spellings."""
    workspace.register("__previous_identities", str(previous / IDENTITIES_FILE))
    workspace.materialize("__old_ids", statement(
        "SELECT lower(namespace) || ':' || id AS key, namespace, id, _profile_id FROM __previous_identities"
    ))
    # Identities of an oversized graph that no record anchors are in no profile, so only the build
    # statistics list them.
    graph_keys = [(identity_key(ns, i), ns, index) for index, g in enumerate(graphs) for ns, i in g.identities]
    graph_profiles = [(pid, index) for index, g in enumerate(graphs) for pid in g.profile_ids]
    workspace.register("__old_graph_keys", pa.table({
        "key": pa.array([k for k, _, _ in graph_keys], pa.string()),
        "ns": pa.array([ns for _, ns, _ in graph_keys], pa.string()),
        "graph": pa.array([g for _, _, g in graph_keys], pa.int64()),
    }))
    workspace.register("__old_graph_profiles", pa.table({
        "pid": pa.array([p for p, _ in graph_profiles], pa.string()),
        "graph": pa.array([g for _, g in graph_profiles], pa.int64()),
    }))
    _load_known_namespaces(workspace, graphs)
    workspace.materialize("__new_keys", statement(f"""
        SELECT DISTINCT key FROM (
            SELECT unnest(list_transform({IDENTITY_LIST}, lambda __i: __i.key)) AS key
            FROM (SELECT {IDENTITY_LIST} FROM __new_frag UNION ALL SELECT {IDENTITY_LIST} FROM __new_evt) AS records
        ) AS keys
    """))


def _load_known_namespaces(workspace: Workspace, graphs: tuple[OversizedGraph, ...]) -> None:
    """Load ``__known_ns``: the spellings of the previous build's namespaces, its identities' (``__previous_identities``)
    and its oversized graphs' (whose identities no record anchors are in no profile)."""
    workspace.register("__graph_ns", pa.table({"ns": pa.array(
        sorted({ns for graph in graphs for ns, _ in graph.identities}), pa.string())}))
    workspace.materialize("__known_ns", statement(
        "SELECT DISTINCT namespace AS ns FROM __previous_identities UNION SELECT ns FROM __graph_ns"))


def _check_namespaces(workspace: Workspace) -> None:
    """Refuse new records whose spelling of a known namespace would become its display spelling."""
    respelled = workspace.fetch(statement(f"""
        SELECT n.ns AS new, k.ns AS known FROM (
            SELECT lower(struct_extract(i, 'ns')) AS ns_l, min(struct_extract(i, 'ns')) AS ns FROM (
                SELECT unnest({IDENTITY_LIST}) AS i FROM __new_frag
                UNION ALL SELECT unnest({IDENTITY_LIST}) AS i FROM __new_evt
            ) AS identities GROUP BY lower(struct_extract(i, 'ns'))
        ) AS n JOIN __known_ns AS k ON lower(k.ns) = n.ns_l
        WHERE n.ns < k.ns
        ORDER BY n.ns LIMIT 1
    """)).to_pylist()
    if respelled:
        raise FullRebuildRequired(f"namespace {respelled[0]['known']!r} is now displayed as {respelled[0]['new']!r}")


def _touch(workspace: Workspace, policy: MergePolicySpec, graphs: tuple[OversizedGraph, ...]) -> set[int]:
    """Create ``__touched(pid)`` and ``__touched_keys(key)``; return the touched oversized graphs.

    ``__touched`` holds the previous profiles to recompute (under ``none`` also new anchors);
    ``__touched_keys`` the anchors their records may have.
    """
    if policy.identity_graph == "none":
        workspace.materialize("__touched", statement(
            f"SELECT DISTINCT {ANCHOR} AS pid FROM "
            f"(SELECT {ANCHOR} FROM __new_frag UNION ALL SELECT {ANCHOR} FROM __new_evt) AS anchors "
            f"WHERE {ANCHOR} IS NOT NULL"
        ))
        workspace.materialize("__touched_keys", statement("SELECT pid AS key FROM __touched"))
        return set()
    workspace.materialize("__hit", statement(
        "SELECT DISTINCT _profile_id AS pid FROM __old_ids WHERE key IN (SELECT key FROM __new_keys)"
    ))
    touched_graphs = {
        int(graph)
        for graph in workspace.fetch(statement(
            "SELECT graph FROM __old_graph_keys WHERE key IN (SELECT key FROM __new_keys) "
            "UNION SELECT graph FROM __old_graph_profiles WHERE pid IN (SELECT pid FROM __hit)"
        )).column(0).to_pylist()
    }
    workspace.register("__touched_graphs", pa.table({"graph": pa.array(sorted(touched_graphs), pa.int64())}))
    workspace.materialize("__touched", statement(
        "SELECT pid FROM __hit UNION "
        "SELECT pid FROM __old_graph_profiles WHERE graph IN (SELECT graph FROM __touched_graphs)"
    ))
    workspace.materialize("__touched_keys", statement(
        "SELECT key FROM __old_ids WHERE _profile_id IN (SELECT pid FROM __touched) "
        "UNION SELECT key FROM __old_graph_keys WHERE graph IN (SELECT graph FROM __touched_graphs)"
    ))
    return touched_graphs


def _load_previous_events(workspace: Workspace, previous: Path, schema: pa.Schema) -> None:
    """Load the touched profiles' events as records (``__old_evt``), each with its record id from the row of
    its ids file beside it (``_state/event_rids.parquet`` for ``events.parquet``); ``__old_evt_rows`` keeps
    them as rows of the store (with their record ids)."""
    parts = event_parts(previous)
    workspace.register_numbered("__previous_events", [(n, str(rows)) for n, (rows, _) in enumerate(parts)],
                                _FILE, _ROW)
    workspace.register_numbered("__previous_rids", [(n, str(rids)) for n, (_, rids) in enumerate(parts)],
                                _FILE, _ROW)
    workspace.materialize("__old_evt_rows", statement(f"""
        SELECT e.*, r.{RID} AS {RID}
        FROM __previous_events AS e JOIN __previous_rids AS r ON r.{_FILE} = e.{_FILE} AND r.{_ROW} = e.{_ROW}
        WHERE e._profile_id IN (SELECT pid FROM __touched)
    """))
    columns = ", ".join(render(col(f.name, "e")) for f in schema)
    workspace.materialize("__old_evt", records_query(statement(f"""
        SELECT {columns}, e.{RID} AS {RID}, CAST(NULL AS VARCHAR) AS {DATASET}, e._ingestTime AS {INGEST}
        FROM __old_evt_rows AS e
    """)))


def _write_identities(workspace: Workspace, previous: Path, policy: MergePolicySpec, staging: Path) -> None:
    """Rewrite ``identities.parquet`` with the touched profiles' identities recomputed."""
    if policy.identity_graph == "pdg":
        workspace.materialize("__new_ident", IDENTITIES_QUERY)
        dropped = "_profile_id IN (SELECT pid FROM __touched)"
    else:
        # Under none an identity that anchors a profile anywhere maps to that profile only, so both the
        # recomputed rows and the kept ones must look at every anchor, not only the touched ones.
        workspace.register("__previous_profiles", str(previous / PROFILES_FILE))
        workspace.materialize("__new_ident", statement("""
            SELECT n.ns AS namespace, n.id, p.key AS _profile_id
            FROM __ident AS x JOIN __ids AS n ON n.iid = x.iid JOIN __ids AS p ON p.iid = x.pid
            WHERE x.iid = x.pid OR (
                x.iid NOT IN (SELECT DISTINCT pid FROM __ident)
                AND n.key NOT IN (SELECT _profile_id FROM __previous_profiles)
            )
        """))
        dropped = (
            "_profile_id IN (SELECT pid FROM __touched) OR (key IN (SELECT pid FROM __touched) AND _profile_id <> key)"
        )
    # The touched profiles' identities as they were, against as they are now: the same rows (events added, no
    # identity moved) keep the file itself, whose row groups every process has decoded (``splice_or_link``).
    was = f"SELECT namespace, id, _profile_id FROM __old_ids WHERE {dropped}"
    now = "SELECT namespace, id, _profile_id FROM __new_ident"
    if not count(workspace, f"SELECT count(*) FROM (({was} EXCEPT ALL {now}) UNION ALL ({now} EXCEPT ALL {was}))"):
        _link(previous, staging, IDENTITIES_FILE)
        return
    workspace.write_file(statement(f"""
        SELECT namespace, id, _profile_id FROM (
            SELECT key, namespace, id, _profile_id FROM __old_ids WHERE NOT ({dropped})
            UNION ALL
            SELECT lower(namespace) || ':' || id AS key, namespace, id, _profile_id FROM __new_ident
        ) AS identities ORDER BY id, key, _profile_id
    """), staging / IDENTITIES_FILE, LOOKUP_ROW_GROUP_ROWS)


def _link(previous: Path, staging: Path, *names: str) -> None:
    """Carry unchanged files over to the new build (hard links: builds share one file system)."""
    for name in names:
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(previous / name, target)
        except OSError:
            shutil.copy2(previous / name, target)
        _log.debug("profile refresh: kept %s", name)
