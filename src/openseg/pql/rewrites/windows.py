"""Rule ``prune_windows``: an events scan reads only the time range its aggregates look at."""

from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from openseg.pql._sql_builders import predicate
from openseg.pql.derived import EVENT_ALIAS, EVENTS, DerivedColumn, bounds_condition
from openseg.pql.rewrites.scans import Options, Scan, ScanTree, conjuncts, same


def prune_windows(tree: ScanTree, options: Options) -> ScanTree:
    """Bound each events scan's WHERE by the hull of its aggregates' time windows.

    When every aggregate of a scan reads a bounded window, the scan's WHERE keeps only rows in the smallest
    range covering them all (engines skip the rest in the Parquet scan). When they all read the very same
    window, that WHERE enforces it exactly, so each aggregate's FILTER (and row filter) drops its own
    copy of the window test: a conjunct equal, as a tree, to the test the compiler writes for that window.
    A scan with an unbounded aggregate is left alone.

    Args:
        tree: The scan tree.
        options: Not read.

    Returns:
        The tree with its events scans pruned.
    """
    return replace(tree, scans=tuple(_pruned(scan) if scan.relation == EVENTS else scan for scan in tree.scans))


def _pruned(scan: Scan) -> Scan:
    bounds = [column.bounds for column in scan.columns]
    first = bounds[0] if bounds else None
    if first is None or any(b is None for b in bounds):
        return scan
    hull = first
    for other in bounds[1:]:
        assert other is not None
        hull = hull.hull(other)
    exact = all(b == first for b in bounds)
    if exact:
        hull = first  # not the hull, which closes open ends: the WHERE must be exactly the shared window
    where = scan.where
    if hull.low is not None or hull.high is not None:
        window = bounds_condition(exp.column("timestamp", table=EVENT_ALIAS, quoted=True), hull)
        if not any(same(window, condition) for condition in where):
            where = (*where, window)
    columns = scan.columns
    if exact and (first.low is not None or first.high is not None):
        test = predicate(bounds_condition(_event_timestamp(), first))
        columns = tuple(_without_window(column, test) for column in columns)
    return replace(scan, where=where, columns=columns)


def _event_timestamp() -> exp.Expr:
    """``e."timestamp"`` exactly as the compiler spells an event's ``timestamp`` (so the trees compare equal)."""
    return exp.Dot(this=exp.Column(this=exp.to_identifier(EVENT_ALIAS)),
                   expression=exp.to_identifier("timestamp", quoted=True))


def _without_window(column: DerivedColumn, test: exp.Expr) -> DerivedColumn:
    """``column`` with the conjunct ``test`` dropped from its FILTERs and its row filter."""
    aggregate = column.aggregate.copy() if column.aggregate is not None else None
    if aggregate is not None:
        for node in list(aggregate.find_all(exp.Filter)):
            condition = _without(node.expression.this, test)
            if condition is None:  # the scan reads only rows the FILTER would keep
                if node is aggregate:
                    aggregate = node.this
                else:
                    node.replace(node.this)
            elif condition is not node.expression.this:
                node.expression.set("this", condition)
    row_filter = _without(column.row_filter, test) if column.row_filter is not None else None
    return replace(column, aggregate=aggregate, row_filter=row_filter)


def _without(condition: exp.Expr, test: exp.Expr) -> exp.Expr | None:
    """``condition`` without its top-level conjuncts equal to ``test`` (None when nothing is left; itself
    when none is)."""
    parts = conjuncts(condition)
    kept = [c for c in parts if not same(c, test)]
    if len(kept) == len(parts):
        return condition
    if not kept:
        return None
    return exp.and_(*(c.copy() for c in kept)) if len(kept) > 1 else kept[0].copy()
