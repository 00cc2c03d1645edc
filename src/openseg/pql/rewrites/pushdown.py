"""Rules ``push_row_filters`` and ``push_profile_predicates``: a scan skips rows no aggregate reads.

Also ``profile_conjuncts``, the PQL AST -> AST half of the profile push-down: which part of a segment's
condition reads the profile alone (the planner compiles it into the tree's ``gates``).
"""

from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from openseg.pql import ast
from openseg.pql.derived import EVENTS, ID, MEMBERSHIP, PROFILE_ALIAS, PROFILES
from openseg.pql.rewrites.scans import Options, Scan, ScanTree, conjuncts, distinct, same


def push_row_filters(tree: ScanTree, options: Options) -> ScanTree:
    """AND a grouped scan's WHERE with the OR of its aggregates' row filters, when there are few.

    Each aggregate reads only the rows of its FILTER; when every aggregate of a scan has one, a row none
    of them reads can be skipped in the scan itself. Equal filters (as trees) are ORed once, and a filter
    that implies another (all of the other's conjuncts among its own) not at all. Beyond
    ``options.pushed_filters`` distinct filters, testing the OR on every row costs more than the rows it
    drops save, so the scan is left as it is; likewise when some aggregate reads every row.

    Args:
        tree: The scan tree.
        options: ``pushed_filters`` is read.

    Returns:
        The tree with the row filters pushed.
    """
    return replace(tree, scans=tuple(_filtered(scan, options.pushed_filters) for scan in tree.scans))


def _filtered(scan: Scan, limit: int) -> Scan:
    if scan.relation not in (EVENTS, MEMBERSHIP) or not scan.columns:
        return scan
    row_filters = [column.row_filter for column in scan.columns]
    if any(f is None for f in row_filters):
        return scan
    filters = [f.copy() for f in _absorbed(distinct(f for f in row_filters if f is not None))]
    if len(filters) > limit:
        return scan
    pushed = exp.or_(*filters, wrap=True) if len(filters) > 1 else filters[0]
    if any(same(pushed, condition) for condition in scan.where):
        return scan
    return replace(scan, where=(*scan.where, pushed))


def _absorbed(filters: list[exp.Expr]) -> list[exp.Expr]:
    """``filters`` without those that imply another (absorption: ``A OR (A AND B)`` is ``A``): a filter whose
    conjuncts include all of another's adds no row to their OR, only its cost on every row (a purchase's
    product-name test over its list of items, ORed beside the purchase test itself)."""
    parts = [conjuncts(f) for f in filters]

    def implies(mine: list[exp.Expr], theirs: list[exp.Expr]) -> bool:
        return all(any(same(condition, own) for own in mine) for condition in theirs)

    return [f for i, f in enumerate(filters)
            if not any(j != i and len(parts[j]) < len(parts[i]) and implies(parts[i], parts[j])
                       for j in range(len(filters)))]


def push_profile_predicates(tree: ScanTree, options: Options) -> ScanTree:
    """Restrict an events scan to the profiles where some reader's profile-only condition holds.

    A segment ``G and R`` whose conjunct ``G`` reads only profile attributes is false wherever ``G`` is,
    whatever its event part says. So when every segment reading a scan's columns has such a gate, the
    scan needs the events of the profiles where at least one gate holds, and reads only those
    (``_profile_id IN (SELECT ... FROM profiles WHERE G1 OR G2 ...)``; equal gates, as trees, once). The
    other profiles get the columns' defaults, which no reader can tell apart: its gate is false there.

    Args:
        tree: The scan tree.
        options: Not read.

    Returns:
        The tree with its gated events scans restricted.
    """
    return replace(tree, scans=tuple(_gated(scan, tree) if scan.relation == EVENTS else scan for scan in tree.scans))


def _gated(scan: Scan, tree: ScanTree) -> Scan:
    keys = set(scan.keys)
    readers = [segment for segment, used in tree.readers.items() if keys & set(used)]
    gates = [tree.gates.get(segment) for segment in readers]
    if not readers or any(gate is None for gate in gates):
        return scan
    chosen = [gate.copy() for gate in distinct(g for g in gates if g is not None)]
    profiles = exp.select(exp.column(ID, table=PROFILE_ALIAS), copy=False).from_(
        exp.alias_(exp.to_table(PROFILES), PROFILE_ALIAS, table=True), copy=False).where(
        exp.or_(*chosen, wrap=True) if len(chosen) > 1 else chosen[0], copy=False)
    return replace(scan, profiles=profiles)


def profile_conjuncts(node: ast.Node) -> ast.Expr | None:
    """The top-level conjuncts of a segment's condition that read only profile attributes, ANDed.

    They read no events, no variables bound to events, no sequence steps and no other segment, so the
    segment is false wherever they are false. None when there are none.

    Args:
        node: A segment's expression (a top-level lambda is looked through).

    Returns:
        Those conjuncts as one expression, or None.
    """
    body = node.body if isinstance(node, ast.Lambda) else node
    if not isinstance(body, ast.Expr):
        return None
    operands: tuple[ast.Expr, ...] = body.operands if isinstance(body, ast.And) else (body,)
    profile_only = [o for o in operands if _profile_only(o)]
    if not profile_only:
        return None
    return profile_only[0] if len(profile_only) == 1 else ast.And(tuple(profile_only))


def _profile_only(node: ast.Node) -> bool:
    for child in node.walk():
        if isinstance(child, ast.InSegment | ast.Chain | ast.StepRef):
            return False
        if isinstance(child, ast.FieldPath) and child.root in (ast.Root.EVENTS, ast.Root.VARIABLE):
            return False
    return True
