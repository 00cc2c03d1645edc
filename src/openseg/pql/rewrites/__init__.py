"""The plan rewrites: pure functions over the scan tree, run in order from :data:`RULES`.

Like ``sqlglot.optimizer.RULES``, each rule is a named function that takes a tree and returns a new one
without modifying its input, and :func:`rewrite` runs them in order. Rules only make plans cheaper: a
plan gives the same result with any subset of them, in their order, or none (then every derived column
gets its own scan of every row), which ``tests/pql/test_rules.py`` checks on the corpus and on generated
data.

1. :func:`hoist_aggregates` — the aggregates of all segments move into shared grouped scans, each once.
2. :func:`prune_windows` — an events scan reads only the time range its aggregates look at; a window
   they all share leaves their FILTERs.
3. :func:`push_row_filters` — a scan skips the rows none of its aggregates reads.
4. :func:`push_profile_predicates` — an events scan reads only the profiles some reader's profile-only
   condition admits.

Hoisting runs first because the others prune a scan by what all its columns need. Why the rules rewrite
a scan tree rather than the PQL AST or the SQL: see ``scans``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from openseg.pql.rewrites.hoist import hoist_aggregates
from openseg.pql.rewrites.pushdown import profile_conjuncts, push_profile_predicates, push_row_filters
from openseg.pql.rewrites.scans import Options, Scan, ScanTree, scan_tree
from openseg.pql.rewrites.windows import prune_windows

#: A rewrite rule: a scan tree and the engine's options -> the rewritten tree.
Rule = Callable[[ScanTree, Options], ScanTree]

RULES: tuple[Rule, ...] = (
    hoist_aggregates,
    prune_windows,
    push_row_filters,
    push_profile_predicates,
)


def rewrite(tree: ScanTree, options: Options, rules: Sequence[Rule] = RULES) -> ScanTree:
    """Apply ``rules`` to ``tree`` in order.

    Args:
        tree: The scan tree (``scan_tree`` builds the one before any rule).
        options: The engine's preferences the rules read.
        rules: The rules to run (default: all of them, in their order).

    Returns:
        The rewritten tree.
    """
    for rule in rules:
        tree = rule(tree, options)
    return tree


__all__ = [
    "RULES",
    "Options",
    "Rule",
    "Scan",
    "ScanTree",
    "hoist_aggregates",
    "profile_conjuncts",
    "prune_windows",
    "push_profile_predicates",
    "push_row_filters",
    "rewrite",
    "scan_tree",
]
