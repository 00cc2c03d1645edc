"""The scan tree: the derived relations of a plan, which the rewrite rules transform.

A job's segments compile to conditions over the profile row plus derived columns (``pql.derived``). Each
derived column is computed by a *scan*: a grouped query over ``events`` or ``membership`` computing one or
more columns per profile, or a chain's own query. The planner joins every scan to the profiles.

Why the rules rewrite this tree and not the PQL AST or the final SQL: what they decide — which columns
share a scan, which rows a scan may skip — exists in neither. A PQL tree is one segment and has no scans;
the final SQL has lost what the decisions rest on (each column's time window, which segments read it and
their profile-only conditions), and reading it back out of the SQL is the text matching these rules
replace. So a :class:`ScanTree` keeps exactly that, typed and immutable; its leaves are sqlglot trees,
which the rules rewrite structurally (never by comparing their rendered text), and :meth:`Scan.query`
renders a scan to SQL the same way whatever rules ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlglot import exp

from openseg.pql._sql_builders import filter_form
from openseg.pql.derived import CHAIN, ID, DerivedColumn, alias_of, join_profiles


@dataclass(frozen=True)
class Scan:
    """One derived relation: a grouped scan of ``events`` or ``membership``, or one chain query.

    Attributes:
        relation: ``events``, ``membership`` or ``chain``.
        columns: The derived columns it computes, as it computes them (a rule may have simplified their
            aggregates for this scan's WHERE); a chain scan has exactly one.
        where: Conditions every row it reads satisfies (ANDed; empty: it reads every row).
        profiles: A query of the profile ids it reads the rows of (None: every profile's).
    """

    relation: str
    columns: tuple[DerivedColumn, ...]
    where: tuple[exp.Expr, ...] = ()
    profiles: exp.Select | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys of its columns."""
        return tuple(column.key for column in self.columns)

    def query(self) -> exp.Select:
        """The scan as SQL: ``_profile_id`` and each column named by its key (a chain's named ``value``).

        WHERE and FILTER conditions are written in filter form (see ``filter_form``). Rendering never
        modifies the scan's own trees (a grouped scan is built from copies).
        """
        if self.relation == CHAIN:
            (column,) = self.columns
            return column.query()
        alias = alias_of(self.relation)
        aggregates = [exp.alias_(_filter_form_filters(c.aggregate.copy()), c.key)
                      for c in self.columns if c.aggregate is not None]
        select = exp.select(exp.column(ID, table=alias), *aggregates, copy=False).from_(
            exp.alias_(exp.to_table(self.relation), alias, table=True), copy=False)
        if any(column.reads_profile for column in self.columns):
            join_profiles(select, alias)
        select.group_by(exp.column(ID, table=alias), copy=False)
        if self.where:
            select.where(filter_form(exp.and_(*self.where)), copy=False)
        if self.profiles is not None:
            among = exp.In(this=exp.column(ID, table=alias), query=exp.Subquery(this=self.profiles.copy()))
            select.where(among, append=True, copy=False)
        return select


@dataclass(frozen=True)
class ScanTree:
    """The derived relations of a plan and who reads them.

    Attributes:
        scans: The scans, in the order the plan computes (and joins) them.
        readers: Segment id -> keys of the derived columns its condition reads.
        gates: Segment id -> its profile-only condition over the profile row (alias ``p``): the segment is
            false wherever it is false (None: it has none).
    """

    scans: tuple[Scan, ...]
    readers: Mapping[str, tuple[str, ...]]
    gates: Mapping[str, exp.Expr | None]


@dataclass(frozen=True)
class Options:
    """What a rule cannot decide from the tree: the engine's preferences.

    Attributes:
        split_windows: Whether each distinct event time window gets its own grouped scan.
        pushed_filters: Up to this many distinct row filters are ORed into a scan's WHERE.
    """

    split_windows: bool
    pushed_filters: int


def scan_tree(derived: Iterable[DerivedColumn], readers: Mapping[str, tuple[str, ...]],
              gates: Mapping[str, exp.Expr | None]) -> ScanTree:
    """The tree before any rule: one scan per derived column, reading every row of its relation.

    Args:
        derived: The plan's derived columns, each once (by key), in the order the segments use them.
        readers: Segment id -> keys of the derived columns it reads.
        gates: Segment id -> its profile-only condition (None: none).

    Returns:
        The tree.
    """
    return ScanTree(tuple(Scan(column.relation, (column,)) for column in derived), readers, gates)


def conjuncts(condition: exp.Expr) -> list[exp.Expr]:
    """The top-level AND operands of ``condition`` (parentheses around it or them looked through)."""
    while isinstance(condition, exp.Paren):
        condition = condition.this
    if isinstance(condition, exp.And):
        return conjuncts(condition.this) + conjuncts(condition.expression)
    return [condition]


def same(a: object, b: object) -> bool:
    """Whether two sqlglot trees (or argument values) are the same: node types, arguments and strings.

    sqlglot's ``==`` compares 64-bit hashes; the rules drop a condition when it equals another, so they
    ask for the exact answer (unset, None and empty-list arguments count as absent).
    """
    if isinstance(a, exp.Expr):
        if type(a) is not type(b):
            return False
        assert isinstance(b, exp.Expr)
        mine, theirs = _set_args(a), _set_args(b)
        return mine.keys() == theirs.keys() and all(same(value, theirs[key]) for key, value in mine.items())
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def distinct(conditions: Iterable[exp.Expr]) -> list[exp.Expr]:
    """``conditions`` without repeats (see :func:`same`), in first-seen order."""
    buckets: dict[int, list[exp.Expr]] = {}
    kept: list[exp.Expr] = []
    for condition in conditions:
        bucket = buckets.setdefault(hash(condition), [])
        if not any(same(condition, seen) for seen in bucket):
            bucket.append(condition)
            kept.append(condition)
    return kept


def _set_args(node: exp.Expr) -> dict[str, object]:
    return {key: value for key, value in node.args.items()
            if value is not None and not (isinstance(value, list) and not value)}


def _filter_form_filters(aggregate: exp.Expr) -> exp.Expr:
    """``aggregate`` (a copy the caller owns) with each FILTER condition in filter form."""
    for node in list(aggregate.find_all(exp.Filter)):
        node.expression.set("this", filter_form(node.expression.this))
    return aggregate


__all__ = ["Options", "Scan", "ScanTree", "conjuncts", "distinct", "same", "scan_tree"]
