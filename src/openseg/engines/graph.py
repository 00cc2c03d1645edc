"""Connected components of a graph given as a relation of edges: in this process (numpy), or in statements.

:meth:`Workspace.components <openseg.engines.base.Workspace.components>` labels every node with the smallest
node of its component. An engine that holds its relations in this process (DuckDB) fetches the edges and runs
:func:`connected_components`; the default, :func:`label_components`, runs rounds of statements, so that a
graph spread over executors (Spark) stays there and only one number per round comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import sqlglot
from sqlglot import exp

if TYPE_CHECKING:
    from openseg.engines.base import Workspace

IntArray = npt.NDArray[np.int64]


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


def _statement(sql: str) -> exp.Query:
    # Fixed text over the relation names this module makes; rendered in the workspace's dialect.
    parsed = sqlglot.parse_one(sql, read="duckdb")
    assert isinstance(parsed, exp.Query), sql
    return parsed


def label_components(workspace: Workspace, name: str, edges: exp.Query,
                     keep: Callable[[str, exp.Query], None] | None = None) -> None:
    """Create ``name(node, root)`` in ``workspace`` by rounds of statements: min-label propagation with
    pointer jumping. Each round gives every node the smallest of its label's label and its neighbours'
    labels; labels only decrease and stay inside the component, so when a round changes none (their sum
    stays the same) every component carries its smallest node.

    Args:
        workspace: Where ``edges`` can be read.
        name: The relation to create: one row per node on an edge.
        edges: ``a`` and ``b``: BIGINT node numbers (≥ 0) joined by an edge.
        keep: Keeps one round's result under a name (default: ``workspace.materialize``); an engine that
            would otherwise plan over every earlier round passes one that cuts the lineage.
    """
    keep = keep or workspace.materialize
    both = f"{name}_edges"
    keep(both, exp.union(
        exp.select("a", "b").from_(edges.subquery("forward")),
        exp.select(exp.alias_("b", "a"), exp.alias_("a", "b")).from_(edges.subquery("backward")),
        distinct=True))
    labels = f"{name}_0"
    keep(labels, _statement(f"SELECT a AS node, least(a, min(b)) AS root FROM {both} GROUP BY a"))
    total = _sum(workspace, labels)
    for round_number in range(1, 1_000_000):
        following = f"{name}_{round_number}"
        keep(following, _statement(f"""
            WITH hop AS (SELECT e.a AS node, min(l.root) AS root FROM {both} e JOIN {labels} l ON l.node = e.b
                         GROUP BY e.a)
            SELECT l.node, least(j.root, h.root) AS root
            FROM {labels} l JOIN {labels} j ON j.node = l.root JOIN hop h ON h.node = l.node
        """))
        following_total = _sum(workspace, following)
        workspace.drop(labels)
        labels = following
        if following_total == total:
            break
        total = following_total
    workspace.define(name, _statement(f"SELECT node, root FROM {labels}"))


def _sum(workspace: Workspace, relation: str) -> int:
    result = workspace.fetch(_statement(f"SELECT coalesce(sum(CAST(root AS DECIMAL(38, 0))), 0) AS s FROM {relation}"))
    return int(result.column(0)[0].as_py())
