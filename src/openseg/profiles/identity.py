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

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from openseg.profiles.reading import INGEST, RID

MAX_GRAPH_IDENTITIES = 50

IntArray = npt.NDArray[np.int64]


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
# These statements use only the store's own relation and column names; no value is pasted in.

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

_PAIR_ROWS = """
SELECT anchor, struct_extract(item, 'key') AS key, struct_extract(item, 'ns') AS ns,
       struct_extract(item, 'id') AS id, struct_extract(item, 'is_primary') AS is_primary, ingest
FROM (
    SELECT {anchor} AS anchor, {ingest} AS ingest, unnest({identities}) AS item FROM {relation}
)
"""

# Each (anchor, identity) once: the links records make, plus every anchor with itself. Aggregated
# straight from the scans so the ~1.5 rows per record are never materialised.
_PAIRS = """
CREATE OR REPLACE TEMP TABLE __pairs AS
SELECT anchor, key, min(ns) AS ns, any_value(id) AS id, bool_or(is_primary) AS is_primary,
       max(ingest) AS last_ingest
FROM ({rows}) GROUP BY anchor, key
"""

# One display spelling per namespace (the smallest, so "ECID" beats "ecid"), also among the spellings
# of earlier records when only some records are stitched (an incremental update).
_NAMESPACES = """
CREATE OR REPLACE TEMP TABLE __ns AS SELECT lower(ns) AS ns_l, min(ns) AS ns FROM ({spellings}) GROUP BY 1
"""

_STATEMENTS = (
    # Identity numbers in key order, so the smallest number of a component is its smallest key.
    """
    CREATE OR REPLACE TEMP TABLE __ids AS
    SELECT (row_number() OVER (ORDER BY p.key) - 1)::BIGINT AS iid, p.key, n.ns, p.id, p.is_primary
    FROM (SELECT key, any_value(ns) AS ns, any_value(id) AS id, bool_or(is_primary) AS is_primary
          FROM __pairs GROUP BY key) AS p
    JOIN __ns AS n ON n.ns_l = lower(p.ns)
    """,
)

_EDGES = """
SELECT a.iid AS a, b.iid AS b
FROM __pairs AS p JOIN __ids AS a ON a.key = p.anchor JOIN __ids AS b ON b.key = p.key
WHERE p.anchor <> p.key
"""

_OVERSIZED_RECORDS = """
SELECT rid, anchor, keys FROM (
    {records}
) WHERE anchor IN (SELECT key FROM __oversized_keys)
ORDER BY rid
"""
_RECORD_KEYS = (
    "SELECT {rid} AS rid, {anchor} AS anchor, list_transform({identities}, lambda __i: __i.key) AS keys FROM {relation}"
)


def stitch(
    connection: duckdb.DuckDBPyConnection,
    relations: Sequence[str],
    identity_graph: str,
    known_namespaces: str | None = None,
) -> list[OversizedGraph]:
    """Decide which profile every identity anchors, for all records of ``relations``.

    Creates the temp tables
    ``__ids(iid, key, ns, id, is_primary)`` (every identity, ``ns`` in its display spelling),
    ``__key_pid(key, pid, _profile_id)`` (the profile of every anchor, and under ``pdg`` of every
    identity of a profile), ``__ident(pid, iid, is_primary)`` (the identities of each profile) and
    ``__profile_keys(pid, _profile_id, last_ingest)`` (one row per profile). A record belongs to the
    profile its anchor (column :data:`ANCHOR`) maps to in ``__key_pid``; ``pid`` orders like ``_profile_id``.

    Args:
        connection: A DuckDB connection holding the relations.
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
    connection.execute(_PAIRS.format(rows=rows))
    spellings = "SELECT ns FROM __pairs"
    if known_namespaces is not None:
        spellings += f" UNION ALL SELECT ns FROM {known_namespaces}"
    connection.execute(_NAMESPACES.format(spellings=spellings))
    for statement in _STATEMENTS:
        connection.execute(statement)
    if identity_graph == "none":
        connection.execute(
            "CREATE OR REPLACE TEMP TABLE __key_pid AS "
            "SELECT DISTINCT i.key, i.iid AS pid, i.key AS _profile_id "
            "FROM __ids AS i JOIN (SELECT DISTINCT anchor FROM __pairs) AS a ON a.anchor = i.key"
        )
        connection.execute(
            "CREATE OR REPLACE TEMP TABLE __ident AS "
            "SELECT k.pid, i.iid, p.is_primary FROM __pairs AS p "
            "JOIN __key_pid AS k ON k.key = p.anchor JOIN __ids AS i ON i.key = p.key"
        )
        oversized: list[OversizedGraph] = []
    else:
        oversized = _stitch_graph(connection, relations)
    connection.execute(
        "CREATE OR REPLACE TEMP TABLE __profile_keys AS "
        "SELECT k.pid, any_value(k._profile_id) AS _profile_id, max(p.last_ingest) AS last_ingest "
        "FROM __pairs AS p JOIN __key_pid AS k ON k.key = p.anchor GROUP BY k.pid"
    )
    return oversized


def _stitch_graph(connection: duckdb.DuckDBPyConnection, relations: Sequence[str]) -> list[OversizedGraph]:
    nodes = int(connection.execute("SELECT count(*) FROM __ids").fetchall()[0][0])
    edges = connection.sql(_EDGES).fetchnumpy()
    roots = connected_components(nodes, np.asarray(edges["a"], np.int64), np.asarray(edges["b"], np.int64))
    sizes = np.bincount(roots, minlength=nodes)
    over_nodes = np.flatnonzero(sizes[roots] > MAX_GRAPH_IDENTITIES)
    original = roots[over_nodes].copy()
    if over_nodes.size:
        connection.register("__oversized_arrow", pa.table({"iid": over_nodes}))
        connection.execute(
            "CREATE OR REPLACE TEMP TABLE __oversized_keys AS SELECT i.key, i.iid FROM __ids AS i JOIN __oversized_arrow AS o USING (iid)"
        )
        connection.unregister("__oversized_arrow")
        records = " UNION ALL ".join(
            _RECORD_KEYS.format(rid=RID, anchor=ANCHOR, identities=IDENTITY_LIST, relation=relation)
            for relation in relations
        )
        rows = connection.sql(_OVERSIZED_RECORDS.format(records=records)).to_arrow_table()
        numbers = dict(connection.execute("SELECT key, iid FROM __oversized_keys").fetchall())
        anchors = [numbers[key] for key in rows.column("anchor").to_pylist()]
        identity_lists = [sorted(numbers[k] for k in keys) for keys in rows.column("keys").to_pylist()]
        split = split_oversized(anchors, identity_lists)
        roots[over_nodes] = [split.get(int(node), int(node)) for node in over_nodes]
    connection.register("__roots_arrow", pa.table({"iid": np.arange(nodes, dtype=np.int64), "root": roots}))
    # A graph is a profile only if some record is anchored in it (guardrail splits can leave bare ones).
    connection.execute(
        "CREATE OR REPLACE TEMP TABLE __key_pid AS "
        "WITH live AS (SELECT DISTINCT g.root FROM __roots_arrow AS g JOIN __ids AS i USING (iid) "
        "              JOIN (SELECT DISTINCT anchor FROM __pairs) AS a ON a.anchor = i.key) "
        "SELECT i.key, g.root AS pid, r.key AS _profile_id "
        "FROM __roots_arrow AS g JOIN live USING (root) JOIN __ids AS i USING (iid) "
        "JOIN __ids AS r ON r.iid = g.root"
    )
    connection.execute(
        "CREATE OR REPLACE TEMP TABLE __ident AS SELECT k.pid, i.iid, i.is_primary FROM __key_pid AS k JOIN __ids AS i USING (key)"
    )
    connection.unregister("__roots_arrow")
    return _report_oversized(connection, over_nodes, original, roots[over_nodes])


def _report_oversized(
    connection: duckdb.DuckDBPyConnection, nodes: IntArray, original: IntArray, split: IntArray
) -> list[OversizedGraph]:
    if not nodes.size:
        return []
    connection.register("__oversized_arrow", pa.table({"iid": nodes, "component": original, "root": split}))
    rows = connection.execute(
        """
        SELECT o.component, list({'ns': i.ns, 'id': i.id} ORDER BY i.iid) AS identities,
               list(k._profile_id) FILTER (WHERE k._profile_id IS NOT NULL) AS profiles
        FROM __oversized_arrow AS o
        JOIN __ids AS i ON i.iid = o.iid
        LEFT JOIN __key_pid AS k ON k.key = i.key
        GROUP BY o.component ORDER BY o.component
        """
    ).fetchall()
    connection.unregister("__oversized_arrow")
    return [
        OversizedGraph(
            identities=tuple((item["ns"], item["id"]) for item in identities),
            profile_ids=tuple(sorted(set(profiles or ()))),
        )
        for _, identities, profiles in rows
    ]


def connected_components(nodes: int, left: IntArray, right: IntArray) -> IntArray:
    """Label every node with the smallest node of its connected component.

    Vectorised hook-and-compress (Shiloach–Vishkin style): each round hooks the larger root of every
    edge that still joins two trees onto the smaller one, then compresses paths by pointer jumping.
    Labels only ever decrease, so the final root of a component is its smallest node.

    Args:
        nodes: The number of nodes, numbered ``0 .. nodes - 1``.
        left: Edge ends.
        right: The other edge ends, aligned with ``left``.

    Returns:
        An array mapping each node to its component's smallest node.
    """
    parent: IntArray = np.arange(nodes, dtype=np.int64)
    while left.size:
        low = np.minimum(parent[left], parent[right])
        high = np.maximum(parent[left], parent[right])
        joining = low != high
        if not joining.any():
            break
        left, right, low, high = left[joining], right[joining], low[joining], high[joining]
        np.minimum.at(parent, high, low)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    return parent


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
