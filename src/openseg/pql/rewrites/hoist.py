"""Rule ``hoist_aggregates``: every segment's aggregates over a relation move into shared grouped scans."""

from __future__ import annotations

from dataclasses import replace

from openseg.pql.derived import CHAIN, EVENTS, MEMBERSHIP, DerivedColumn
from openseg.pql.rewrites.scans import Options, Scan, ScanTree

_ORDER = {EVENTS: 0, MEMBERSHIP: 1, CHAIN: 2}


def hoist_aggregates(tree: ScanTree, options: Options) -> ScanTree:
    """Compute each distinct aggregate once, in one grouped scan per relation (per window when split).

    Out of one scan per derived column, it makes one scan of ``events`` and one of ``membership`` computing
    all their columns, each column once (equal keys, equal values), so the one-pass plan reads each
    relation once for every segment (aggregates reading the profile row beside each event share a scan of
    their own, joined with the profiles, so the others scan events alone). With ``options.split_windows``
    the events columns are grouped by their exact time window instead: engine-pitfalls.md measured one scan
    per window as a large win on DuckDB (each scan then prunes to its window) and a loss on Spark. Chains keep their own queries. The scans
    come out in the order events, membership, chains, each group where its first column was.

    Run it first: a scan that another rule has already pruned (WHERE or profiles set) is kept as it is,
    since its columns may rely on that WHERE.

    Args:
        tree: The scan tree.
        options: ``split_windows`` is read.

    Returns:
        The tree with the grouped scans.
    """
    groups: dict[tuple[str, object, bool], list[DerivedColumn]] = {}
    slots: list[Scan | tuple[str, object, bool]] = []  # kept scans and groups, where each first appears
    seen: set[str] = set()
    for scan in tree.scans:
        if scan.relation == CHAIN or scan.where or scan.profiles is not None:
            slots.append(scan)
            continue
        for column in scan.columns:
            if column.key in seen:
                continue
            seen.add(column.key)
            window = _window_of(column) if options.split_windows and scan.relation == EVENTS else None
            # Aggregates that read the profile row beside each event share a scan joined with the profiles;
            # the others keep scanning events alone.
            group = (scan.relation, window, column.reads_profile)
            if group not in groups:
                groups[group] = []
                slots.append(group)
            groups[group].append(column)
    scans = [slot if isinstance(slot, Scan) else Scan(slot[0], tuple(groups[slot])) for slot in slots]
    scans.sort(key=lambda scan: _ORDER.get(scan.relation, len(_ORDER)))  # stable: first-seen order within each
    return replace(tree, scans=tuple(scans))


def _window_of(column: DerivedColumn) -> object:
    """The scan an event aggregate belongs to when windows are split: its exact time range."""
    bounds = column.bounds
    return None if bounds is None else (bounds.low, bounds.high, bounds.low_inclusive, bounds.high_inclusive)
