"""What the SQL backend hands the planner: derived columns and the relations they are computed from.

A compiled expression (``to_sql.compile_expression``) is a condition over the profile row plus the
*derived columns* it reads: per-profile values computed from another relation (event aggregates and
quantifiers, ``inSegment`` of earlier results, sequences). This module holds those columns, the names of
the relations and aliases both sides spell, and the two things the planner supplies to the compiler (how
to read membership, which fields the data holds). It imports no backend, so the planner and the rewrite
rules (``pql.rewrites``) depend on it rather than on the compiler's internals.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa
from sqlglot import exp

from openseg.pql import _time
from openseg.pql._sql_builders import not_null, timestamp_literal
from openseg.xdm.schema import Schema

#: Relation names a compiled expression reads, and their aliases.
PROFILES, EVENTS, MEMBERSHIP, CHAIN = "profiles", "events", "membership", "chain"
PROFILE_ALIAS, EVENT_ALIAS, MEMBERSHIP_ALIAS = "p", "e", "m"
ID = "_profile_id"
#: Map-typed profile paths (a following path segment is a map key, not a struct field).
DEFAULT_MAP_PATHS: frozenset[tuple[str, ...]] = frozenset({("identityMap",), ("segmentMembership", "ups")})


class MembershipRelation(Protocol):
    """What ``inSegment`` of a segment outside the plan reads: the ``membership`` relation (one or more
    rows per profile, ``_profile_id`` among its columns) as its owner lays it out. The segmentation
    package's membership store implements it; the compiler never names its other columns."""

    def member(self, segment_id: str, alias: str) -> exp.Expr | None:
        """The condition over a row (alias ``alias``) that its profile is in the segment; None when
        nobody is."""
        ...


#: ``has_path(row, path)``: whether the data of ``row`` ("profile" or "event") holds ``path``.
PathCheck = Callable[[str, tuple[str, ...]], bool]


@dataclass(frozen=True)
class ArrowPaths:
    """A ``has_path`` over the stores' Arrow schemas that also knows their types.

    Called, it says whether the data holds a path (structs are walked; below a map or a list anything goes).
    ``schema()`` is the union schema the data implies, which tells the compiler where a path reads through
    an array (``_acme.orders.storeId``: the storeId of each order) for fields the XDM standard does not define.
    """

    profile: pa.Schema
    event: pa.Schema
    #: ``schema()`` once computed (a plan compiles every segment against it).
    _schema: list[Schema] = field(default_factory=list, compare=False, repr=False)

    def __call__(self, row: str, path: tuple[str, ...]) -> bool:
        schema = self.profile if row == "profile" else self.event
        if path[0] not in schema.names:
            return False
        data_type = schema.field(path[0]).type
        for part in path[1:]:
            if not pa.types.is_struct(data_type):
                return True  # map keys and list items are not checked here
            index = data_type.get_field_index(part)
            if index < 0:
                return False
            data_type = data_type.field(index).type
        return True

    def schema(self) -> Schema:
        """The standard XDM schema with the fields of this data."""
        if not self._schema:
            self._schema.append(Schema.from_arrow(self.profile, self.event))
        return self._schema[0]


@dataclass(frozen=True)
class DerivedColumn:
    """A per-profile value computed from another relation than the profile row.

    Attributes:
        key: Deterministic column name (equal keys mean equal values).
        relation: ``events``, ``membership`` (grouped scans) or ``chain`` (its own query).
        aggregate: For grouped scans, the aggregate over the relation's rows (alias ``e``/``m``).
        row_filter: The rows the aggregate reads (None: all rows), OR-ed into the scan's WHERE.
        bounds: Event time range the aggregate reads (None: unbounded), for pruning the scan.
        default: The value for a profile without rows.
        standalone: For ``chain``, the query yielding ``(_profile_id, value)``.
        reads_profile: For ``events``, whether the aggregate also reads the event's profile row (alias ``p``,
            a profile field compared with an event field): its scan joins the profiles.
    """

    key: str
    relation: str
    aggregate: exp.Expr | None = None
    row_filter: exp.Expr | None = None
    bounds: _time.Bounds | None = None
    default: exp.Expr = field(default_factory=exp.null)
    standalone: exp.Select | None = None
    reads_profile: bool = False

    def query(self) -> exp.Select:
        """The query yielding ``(_profile_id, value)`` for the profiles with rows."""
        if self.standalone is not None:
            return self.standalone
        assert self.aggregate is not None
        alias = alias_of(self.relation)
        select = (
            exp.select(exp.column(ID, table=alias), exp.alias_(self.aggregate.copy(), "value"))
            .from_(exp.alias_(exp.to_table(self.relation), alias, table=True))
            .group_by(exp.column(ID, table=alias))
        )
        if self.reads_profile:
            join_profiles(select, alias)
        return select.where(self.row_filter.copy()) if self.row_filter is not None else select

    def reference(self) -> exp.Expr:
        """The column as the profile-level condition reads it (the default filled in)."""
        column = exp.column(self.key)
        return column if isinstance(self.default, exp.Null) else exp.Coalesce(this=column, expressions=[self.default])


def alias_of(relation: str) -> str:
    """The alias a grouped scan of ``relation`` (``events`` or ``membership``) reads its rows under."""
    return EVENT_ALIAS if relation == EVENTS else MEMBERSHIP_ALIAS


def join_profiles(select: exp.Select, alias: str) -> exp.Select:
    """``select`` joined, in place, with the profile row (alias ``p``) of the rows it reads under ``alias``.

    An event condition that compares an event field with a profile field reads both rows; every event
    belongs to a profile of the store, so the join keeps every event.
    """
    on = exp.EQ(this=exp.column(ID, table=PROFILE_ALIAS), expression=exp.column(ID, table=alias))
    return select.join(exp.alias_(exp.to_table(PROFILES), PROFILE_ALIAS, table=True), on=on, join_type="inner",
                       copy=False)


def column_key(relation: str, value: exp.Expr) -> str:
    """The deterministic name of a derived column: a digest of its relation and its value's SQL.

    This names a column, it compares nothing: equal values get equal names in every plan and process, so
    the column can be looked up, deduplicated and pinned in golden SQL by name.
    """
    digest = hashlib.sha256(f"{relation}|{value.sql()}".encode()).hexdigest()[:16]
    return f"__d_{digest}"


def bounds_condition(value: exp.Expr, bounds: _time.Bounds) -> exp.Expr:
    """``value`` within ``bounds`` as SQL (``value IS NOT NULL`` when unbounded)."""
    parts: list[exp.Expr] = []
    if bounds.low is not None:
        low = exp.GTE if bounds.low_inclusive else exp.GT
        parts.append(low(this=value.copy(), expression=timestamp_literal(bounds.low)))
    if bounds.high is not None:
        high = exp.LTE if bounds.high_inclusive else exp.LT
        parts.append(high(this=value.copy(), expression=timestamp_literal(bounds.high)))
    return exp.and_(*parts) if parts else not_null(value)


__all__ = [
    "CHAIN",
    "DEFAULT_MAP_PATHS",
    "EVENTS",
    "EVENT_ALIAS",
    "ID",
    "MEMBERSHIP",
    "MEMBERSHIP_ALIAS",
    "PROFILES",
    "PROFILE_ALIAS",
    "ArrowPaths",
    "DerivedColumn",
    "MembershipRelation",
    "PathCheck",
    "alias_of",
    "bounds_condition",
    "column_key",
    "join_profiles",
]
