"""Identity stitching: which profile every record belongs to.

An *identity* is a namespace and an id from a record's ``identityMap``. Namespaces compare
case-insensitively, as AEP's identity namespace codes do; ids compare exactly. An identity's *key* is
``lower(namespace) + ":" + id``; keys order bytewise. A record's *anchor* is its identity flagged
``primary`` (the smallest key if several are), else its smallest key. Records without any identity
cannot be linked to a profile and are counted as unlinked.

``identityGraph: pdg``
    Every identity in a record links the record's identities, so the profiles are the connected
    components of the graph whose nodes are identities and whose edges come from records (fragments
    and events alike). A profile's id is the smallest key among its identities, which is stable as
    long as that identity stays in the profile.

    Guardrail (AEP: identity graphs above 50 identities): a component holding more than
    :data:`MAX_GRAPH_IDENTITIES` identities is *oversized* and is not merged past that size. Its
    records are replayed in ingest order (file ingest order, then row order); each record links its
    other identities, in ascending key order, into its anchor's graph, and a link is made only when the
    two graphs together hold at most 50 identities. A refused link leaves the identity in its own
    graph. A record belongs to its anchor's final graph; a graph that ends up with no record of its
    own is no profile (a lookup of its identities finds nothing). Every oversized component is
    reported with all its identities and the profiles it was split into.

``identityGraph: none``
    No stitching: a record belongs to the profile keyed by its anchor (its primary identity), so each
    fragment and each event is in exactly one profile and segmentation counts nobody twice. A lookup
    by an identity merges the fragments that carry exactly that identity (see
    :mod:`openseg.profiles.lookup`), as the contract's "Decisions" section fixes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from openseg.profiles._sql import expression, statement
from openseg.profiles.keys import MAX_GRAPH_IDENTITIES
from openseg.profiles.reading import INGEST, RID

if TYPE_CHECKING:
    from openseg.engines.base import Workspace


@dataclass(frozen=True)
class OversizedGraph:
    """A connected component over the guardrail, reported rather than merged.

    Attributes:
        identities: Every ``(namespace, id)`` of the component, by key.
        profile_ids: The profiles the component was split into, ascending.
    """

    identities: tuple[tuple[str, str], ...]
    profile_ids: tuple[str, ...]


# --- SQL over the record relations ------------------------------------------------------------
# These statements use only the store's own relation and column names; no value is pasted in. They are
# DuckDB-dialect text parsed once (``_sql.statement``); the workspace renders them in its engine's dialect.

IDENTITY_LIST = "__identities"
"""Column holding a record's identities: ``STRUCT(key, ns, id, is_primary)[]``."""
ANCHOR = "__anchor"
"""Column holding a record's anchor key (NULL for a record without identities)."""

# Lambda parameters are named like internal columns: DuckDB binds a same-named column first.
_ENTRIES = "list_filter(map_entries(identityMap), lambda __e: __e.key <> '')"
_KEY = "lower(__e.key) || ':' || __v.id"

IDENTITY_LIST_SQL = f"""flatten(list_transform({_ENTRIES}, lambda __e: list_transform(
    list_filter(__e.value, lambda __v: __v.id <> ''),
    lambda __v: struct_pack(key := {_KEY}, ns := __e.key, id := __v.id,
                            is_primary := coalesce(__v."primary", false)))))"""
"""A record's identities (ids null or empty and namespaces empty are not identities)."""

ANCHOR_SQL = f"""coalesce(
    list_min(flatten(list_transform({_ENTRIES}, lambda __e: list_transform(
        list_filter(__e.value, lambda __v: __v."primary" AND __v.id <> ''), lambda __v: {_KEY})))),
    list_min(flatten(list_transform({_ENTRIES}, lambda __e: list_transform(
        list_filter(__e.value, lambda __v: __v.id <> ''), lambda __v: {_KEY})))))"""
"""A record's anchor: its smallest primary key, else its smallest key (cheaper than sorting structs)."""


def records_query(read: exp.Query) -> exp.Select:
    """The records ``read`` yields, with their anchor (:data:`ANCHOR`) and identities (:data:`IDENTITY_LIST`)."""
    return exp.select(
        exp.Star(),
        exp.alias_(expression(ANCHOR_SQL), ANCHOR),
        exp.alias_(expression(IDENTITY_LIST_SQL), IDENTITY_LIST),
    ).from_(read.subquery("records"))


_PAIR_ROWS = """
SELECT anchor, struct_extract(item, 'key') AS key, struct_extract(item, 'ns') AS ns,
       struct_extract(item, 'id') AS id, struct_extract(item, 'is_primary') AS is_primary, ingest
FROM (
    SELECT {anchor} AS anchor, {ingest} AS ingest, unnest({identities}) AS item FROM {relation}
) AS {relation}_items
"""

# Each (anchor, identity) once: the links records make, plus every anchor with itself. Aggregated
# straight from the scans so the ~1.5 rows per record are never materialised.
_PAIRS = """
SELECT anchor, key, min(ns) AS ns, any_value(id) AS id, bool_or(is_primary) AS is_primary,
       max(ingest) AS last_ingest
FROM ({rows}) AS pair_rows GROUP BY anchor, key
"""

# One display spelling per namespace (the smallest, so "ECID" beats "ecid"), also among the spellings
# of earlier records when only some records are stitched (an incremental update).
_NAMESPACES = """
SELECT lower(ns) AS ns_l, min(ns) AS ns FROM ({spellings}) AS spellings GROUP BY lower(ns)
"""

# Every identity, numbered (iid) in key order by the workspace, so the smallest number of a component is its
# smallest key.
_IDS = """
SELECT p.key, n.ns, p.id, p.is_primary
FROM (SELECT key, any_value(ns) AS ns, any_value(id) AS id, bool_or(is_primary) AS is_primary
      FROM __pairs GROUP BY key) AS p
JOIN __ns AS n ON n.ns_l = lower(p.ns)
"""

_EDGES = """
SELECT a.iid AS a, b.iid AS b
FROM __pairs AS p JOIN __ids AS a ON a.key = p.anchor JOIN __ids AS b ON b.key = p.key
WHERE p.anchor <> p.key
"""

_OVERSIZED_RECORDS = """
SELECT rid, anchor, keys FROM (
    {records}
) AS records WHERE anchor IN (SELECT key FROM __oversized_keys)
ORDER BY rid
"""
_RECORD_KEYS = (
    "SELECT {rid} AS rid, {anchor} AS anchor, list_transform({identities}, lambda __i: __i.key) AS keys FROM {relation}"
)

#: Relations :func:`stitch` creates (besides its result relations), which a caller may drop once done.
STITCH_WORK = ("__pairs", "__ns", "__graph", "__roots", "__oversized", "__oversized_keys", "__split")


def stitch(
    workspace: Workspace,
    relations: Sequence[str],
    identity_graph: str,
    known_namespaces: str | None = None,
) -> list[OversizedGraph]:
    """Decide which profile every identity anchors, for all records of ``relations``.

    Creates the relations
    ``__ids(iid, key, ns, id, is_primary)`` (every identity, ``ns`` in its display spelling),
    ``__key_pid(key, pid, _profile_id)`` (the profile of every anchor, and under ``pdg`` of every
    identity of a profile), ``__ident(pid, iid, is_primary)`` (the identities of each profile) and
    ``__profile_keys(pid, _profile_id, last_ingest)`` (one row per profile). A record belongs to the
    profile its anchor (column :data:`ANCHOR`) maps to in ``__key_pid``; ``pid`` orders like ``_profile_id``.

    Args:
        workspace: The workspace holding the relations.
        relations: The record relations (fragments, events), each with ``identityMap``, the
            provenance columns of :mod:`openseg.profiles.reading`, :data:`ANCHOR` and :data:`IDENTITY_LIST`.
        identity_graph: ``"pdg"`` or ``"none"`` (see the module docstring).
        known_namespaces: A relation with a column ``ns`` of namespace spellings seen outside
            ``relations``, taken into account when choosing each namespace's display spelling.

    Returns:
        The oversized graphs (none under ``identityGraph: none``, which never links records).
    """
    rows = " UNION ALL ".join(
        _PAIR_ROWS.format(anchor=ANCHOR, identities=IDENTITY_LIST, ingest=INGEST, relation=relation)
        for relation in relations
    )
    workspace.materialize("__pairs", statement(_PAIRS.format(rows=rows)))
    spellings = "SELECT ns FROM __pairs"
    if known_namespaces is not None:
        spellings += f" UNION ALL SELECT ns FROM {known_namespaces}"
    workspace.materialize("__ns", statement(_NAMESPACES.format(spellings=spellings)))
    workspace.materialize_numbered("__ids", statement(_IDS), "key", "iid")
    if identity_graph == "none":
        workspace.materialize("__key_pid", statement(
            "SELECT DISTINCT i.key, i.iid AS pid, i.key AS _profile_id "
            "FROM __ids AS i JOIN (SELECT DISTINCT anchor FROM __pairs) AS a ON a.anchor = i.key"
        ))
        workspace.materialize("__ident", statement(
            "SELECT k.pid, i.iid, p.is_primary FROM __pairs AS p "
            "JOIN __key_pid AS k ON k.key = p.anchor JOIN __ids AS i ON i.key = p.key"
        ))
        oversized: list[OversizedGraph] = []
    else:
        oversized = _stitch_graph(workspace, relations)
    workspace.materialize("__profile_keys", statement(
        "SELECT k.pid, any_value(k._profile_id) AS _profile_id, max(p.last_ingest) AS last_ingest "
        "FROM __pairs AS p JOIN __key_pid AS k ON k.key = p.anchor GROUP BY k.pid"
    ))
    return oversized


def _stitch_graph(workspace: Workspace, relations: Sequence[str]) -> list[OversizedGraph]:
    workspace.components("__roots", statement(_EDGES))
    # Components over the guardrail are rare and small (a few hundred identities): they are replayed here.
    over = workspace.fetch(statement(
        f"SELECT node, root FROM __roots WHERE root IN "
        f"(SELECT root FROM __roots GROUP BY root HAVING count(*) > {MAX_GRAPH_IDENTITIES}) ORDER BY node"
    ))
    over_nodes = over.column("node").to_pylist()
    original = over.column("root").to_pylist()
    split_roots: list[int] = []
    if over_nodes:
        workspace.register("__oversized", pa.table({"iid": pa.array(over_nodes, pa.int64())}))
        workspace.materialize("__oversized_keys", statement(
            "SELECT i.key, i.iid FROM __ids AS i JOIN __oversized AS o ON o.iid = i.iid"
        ))
        records = " UNION ALL ".join(
            _RECORD_KEYS.format(rid=RID, anchor=ANCHOR, identities=IDENTITY_LIST, relation=relation)
            for relation in relations
        )
        rows = workspace.fetch(statement(_OVERSIZED_RECORDS.format(records=records)))
        keys = workspace.fetch(statement("SELECT key, iid FROM __oversized_keys"))
        numbers: dict[str, int] = dict(zip(keys.column("key").to_pylist(), keys.column("iid").to_pylist(), strict=True))
        anchors = [numbers[key] for key in rows.column("anchor").to_pylist()]
        identity_lists = [sorted(numbers[k] for k in keys) for keys in rows.column("keys").to_pylist()]
        split = split_oversized(anchors, identity_lists)
        split_roots = [split.get(node, node) for node in over_nodes]
        workspace.register("__split", pa.table({"iid": pa.array(over_nodes, pa.int64()),
                                                "root": pa.array(split_roots, pa.int64())}))
        root = "coalesce(s.root, g.root, i.iid)"
        split_join = "LEFT JOIN __split AS s ON s.iid = i.iid"
    else:
        root, split_join = "coalesce(g.root, i.iid)", ""
    workspace.materialize("__graph", statement(
        f"SELECT i.iid, i.key, {root} AS root FROM __ids AS i LEFT JOIN __roots AS g ON g.node = i.iid {split_join}"
    ))
    # A graph is a profile only if some record is anchored in it (guardrail splits can leave bare ones).
    workspace.materialize("__key_pid", statement(
        "WITH live AS (SELECT DISTINCT g.root FROM __graph AS g "
        "              JOIN (SELECT DISTINCT anchor FROM __pairs) AS a ON a.anchor = g.key) "
        "SELECT g.key, g.root AS pid, r.key AS _profile_id "
        "FROM __graph AS g JOIN live ON live.root = g.root JOIN __ids AS r ON r.iid = g.root"
    ))
    workspace.materialize("__ident", statement(
        "SELECT k.pid, i.iid, i.is_primary FROM __key_pid AS k JOIN __ids AS i ON i.key = k.key"
    ))
    return _report_oversized(workspace, over_nodes, original, split_roots)


def _report_oversized(
    workspace: Workspace, nodes: list[int], original: list[int], split: list[int]
) -> list[OversizedGraph]:
    if not nodes:
        return []
    rows = workspace.fetch(statement(
        "SELECT o.iid, i.ns, i.id, k._profile_id FROM __oversized AS o JOIN __ids AS i ON i.iid = o.iid "
        "LEFT JOIN __key_pid AS k ON k.key = i.key ORDER BY o.iid"
    )).to_pylist()
    component = dict(zip(nodes, original, strict=True))
    graphs: dict[int, tuple[list[tuple[str, str]], set[str]]] = {}
    for row in rows:
        identities, profiles = graphs.setdefault(component[row["iid"]], ([], set()))
        identities.append((row["ns"], row["id"]))
        if row["_profile_id"] is not None:
            profiles.add(row["_profile_id"])
    return [
        OversizedGraph(identities=tuple(identities), profile_ids=tuple(sorted(profiles)))
        for _, (identities, profiles) in sorted(graphs.items())
    ]


def split_oversized(anchors: Sequence[int], identity_lists: Sequence[Sequence[int]]) -> dict[int, int]:
    """Replay an oversized component's records with the 50-identity cap (see the module docstring).

    Args:
        anchors: Each record's anchor identity, records in ingest order.
        identity_lists: Each record's identities, ascending.

    Returns:
        The final graph (its smallest identity) of every identity the records carry.
    """
    parent: dict[int, int] = {}
    size: dict[int, int] = {}

    def find(node: int) -> int:
        if node not in parent:
            parent[node] = node
            size[node] = 1
            return node
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:
            parent[node], node = root, parent[node]
        return root

    for anchor, identities in zip(anchors, identity_lists, strict=True):
        find(anchor)
        for identity in identities:
            a, b = find(anchor), find(identity)
            if a != b and size[a] + size[b] <= MAX_GRAPH_IDENTITIES:
                low, high = min(a, b), max(a, b)
                parent[high] = low
                size[low] += size[high]
    return {node: find(node) for node in list(parent)}


