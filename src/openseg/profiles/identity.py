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

_CREATE_OCCURRENCES = (
    "CREATE OR REPLACE TEMP TABLE __occ (rid BIGINT, ns VARCHAR, ns_l VARCHAR, id VARCHAR, is_primary BOOLEAN)"
)
_OCCURRENCES = """
INSERT INTO __occ
WITH entries AS (
    SELECT __rid, unnest(map_entries(identityMap)) AS entry FROM {relation}
), items AS (
    SELECT __rid, struct_extract(entry, 'key') AS ns, unnest(struct_extract(entry, 'value')) AS item
    FROM entries
)
SELECT __rid AS rid, ns, lower(ns) AS ns_l, struct_extract(item, 'id') AS id,
       coalesce(struct_extract(item, 'primary'), false) AS is_primary
FROM items
WHERE struct_extract(item, 'id') IS NOT NULL AND struct_extract(item, 'id') <> '' AND ns <> ''
"""

_STATEMENTS = (
    # One display spelling per namespace (the smallest, so "ECID" beats "ecid").
    """
    CREATE OR REPLACE TEMP TABLE __ns AS SELECT ns_l, min(ns) AS ns FROM __occ GROUP BY ns_l
    """,
    # Identity ids in key order, so the smallest id of a component is its smallest key.
    """
    CREATE OR REPLACE TEMP TABLE __ids AS
    SELECT (row_number() OVER (ORDER BY k.key, k.ns_l, k.id) - 1)::BIGINT AS iid, k.key, k.ns_l, k.id,
           n.ns, k.is_primary
    FROM (
        SELECT ns_l, id, ns_l || ':' || id AS key, bool_or(is_primary) AS is_primary
        FROM __occ GROUP BY ns_l, id
    ) AS k JOIN __ns AS n USING (ns_l)
    """,
    """
    CREATE OR REPLACE TEMP TABLE __occ_i AS
    SELECT o.rid, i.iid, o.is_primary FROM __occ AS o JOIN __ids AS i USING (ns_l, id)
    """,
    "DROP TABLE __occ",
    """
    CREATE OR REPLACE TEMP TABLE __rec AS
    SELECT rid, coalesce(min(iid) FILTER (WHERE is_primary), min(iid)) AS anchor, min(iid) AS smallest,
           count(*) AS n
    FROM __occ_i GROUP BY rid
    """,
)

_EDGES = """
SELECT DISTINCT r.smallest AS a, o.iid AS b
FROM __occ_i AS o JOIN __rec AS r USING (rid)
WHERE r.n > 1 AND o.iid <> r.smallest
"""

_OVERSIZED_RECORDS = """
SELECT r.rid, r.anchor, list(o.iid ORDER BY o.iid) AS iids
FROM __rec AS r JOIN __occ_i AS o USING (rid)
WHERE r.anchor IN (SELECT iid FROM __oversized_nodes)
GROUP BY r.rid, r.anchor
ORDER BY r.rid
"""


def stitch(
    connection: duckdb.DuckDBPyConnection, relations: Sequence[str], identity_graph: str
) -> list[OversizedGraph]:
    """Assign every record of ``relations`` to a profile.

    Creates the temp tables ``__rec_pid(rid BIGINT, pid BIGINT, _profile_id VARCHAR)`` (one row per
    record with at least one identity) and ``__ident(pid BIGINT, iid BIGINT, is_primary BOOLEAN)`` (the identities
    of each profile), beside ``__ids(iid, key, ns_l, id, ns, is_primary)``.

    Args:
        connection: A DuckDB connection where each relation has ``__rid`` and ``identityMap``.
        relations: The record relations (fragments, events).
        identity_graph: ``"pdg"`` or ``"none"`` (see the module docstring).

    Returns:
        The oversized graphs (empty under ``none``, which never stitches).
    """
    connection.execute(_CREATE_OCCURRENCES)
    for relation in relations:
        connection.execute(_OCCURRENCES.format(relation=relation))
    for statement in _STATEMENTS:
        connection.execute(statement)
    if identity_graph == "none":
        connection.execute("CREATE OR REPLACE TEMP TABLE __rec_root AS SELECT rid, anchor AS pid FROM __rec")
        connection.execute(
            "CREATE OR REPLACE TEMP TABLE __ident AS "
            "SELECT r.pid, o.iid, bool_or(o.is_primary) AS is_primary "
            "FROM __occ_i AS o JOIN __rec_root AS r USING (rid) GROUP BY r.pid, o.iid"
        )
        oversized: list[OversizedGraph] = []
    else:
        oversized = _stitch_graph(connection)
    connection.execute(
        "CREATE OR REPLACE TEMP TABLE __rec_pid AS "
        "SELECT r.rid, r.pid, i.key AS _profile_id FROM __rec_root AS r JOIN __ids AS i ON i.iid = r.pid"
    )
    connection.execute("DROP TABLE __rec_root")
    return oversized


def _stitch_graph(connection: duckdb.DuckDBPyConnection) -> list[OversizedGraph]:
    nodes = int(connection.execute("SELECT count(*) FROM __ids").fetchall()[0][0])
    edges = connection.sql(_EDGES).fetchnumpy()
    roots = connected_components(nodes, np.asarray(edges["a"], np.int64), np.asarray(edges["b"], np.int64))
    sizes = np.bincount(roots, minlength=nodes)
    over_nodes = np.flatnonzero(sizes[roots] > MAX_GRAPH_IDENTITIES)
    original = roots[over_nodes].copy()
    if over_nodes.size:
        connection.register("__oversized_nodes_arrow", pa.table({"iid": over_nodes}))
        connection.execute("CREATE OR REPLACE TEMP TABLE __oversized_nodes AS SELECT * FROM __oversized_nodes_arrow")
        connection.unregister("__oversized_nodes_arrow")
        records = connection.sql(_OVERSIZED_RECORDS).to_arrow_table().to_pydict()
        split = split_oversized(records["anchor"], records["iids"])
        roots[over_nodes] = [split.get(int(node), int(node)) for node in over_nodes]
    connection.register("__roots_arrow", pa.table({"iid": np.arange(nodes, dtype=np.int64), "root": roots}))
    connection.execute(
        "CREATE OR REPLACE TEMP TABLE __rec_root AS "
        "SELECT r.rid, g.root AS pid FROM __rec AS r JOIN __roots_arrow AS g ON g.iid = r.anchor"
    )
    # A graph is a profile only if some record belongs to it (guardrail splits can leave bare ones).
    connection.execute(
        "CREATE OR REPLACE TEMP TABLE __ident AS "
        "SELECT g.root AS pid, g.iid, i.is_primary FROM __roots_arrow AS g JOIN __ids AS i USING (iid) "
        "WHERE g.root IN (SELECT DISTINCT pid FROM __rec_root)"
    )
    connection.unregister("__roots_arrow")
    return _report_oversized(connection, over_nodes, original, roots[over_nodes])


def _report_oversized(
    connection: duckdb.DuckDBPyConnection, nodes: IntArray, original: IntArray, split: IntArray
) -> list[OversizedGraph]:
    if not nodes.size:
        return []
    connection.register(
        "__oversized_arrow", pa.table({"iid": nodes, "component": original, "root": split})
    )
    rows = connection.execute(
        """
        SELECT o.component, list({'ns': i.ns, 'id': i.id} ORDER BY i.iid) AS identities,
               list(p.key) FILTER (WHERE live.pid IS NOT NULL) AS profiles
        FROM __oversized_arrow AS o
        JOIN __ids AS i ON i.iid = o.iid
        JOIN __ids AS p ON p.iid = o.root
        LEFT JOIN (SELECT DISTINCT pid FROM __ident) AS live ON live.pid = o.root
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
