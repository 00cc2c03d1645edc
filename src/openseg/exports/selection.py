"""What an export writes: the merged profiles it selects, projected, with ``segmentMembership`` (and
``eventList``), as one sqlglot query that the engine's workspace renders and writes.

The query reads relations it registers in the workspace (the store's profiles and events, and the
membership store's long form), so it runs where the engine runs; values (segment ids, statuses, times)
are literals. sqlglot transpiles almost all of it; the two pieces the dialects spell differently are
chosen per dialect below (:data:`ORDERED_LISTS`, :data:`AEP_TIMES`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from openseg.exports.projection import project
from openseg.exports.request import ExportRequest, SegmentFilter
from openseg.profiles.store import EVENTS_FILE, PROFILES_FILE, events_source
from openseg.segmentation import membership

if TYPE_CHECKING:
    from openseg.engines.base import Workspace

#: Relations an export registers or defines in its workspace.
PROFILES, EVENTS, MEMBERSHIP, CHOSEN = "export_profiles", "export_events", "export_membership", "export_chosen"
#: The query's own names: selected profiles, membership maps, event lists.
SELECTED, MAPS, EVENT_LISTS = "sel", "mm", "ev"


def select_members(workspace: Workspace, store: Path, members: membership.MembershipStore,
                   state: membership.State | None, request: ExportRequest,
                   segments: tuple[SegmentFilter, ...]) -> exp.Query:
    """Register what an export of ``segments`` reads in ``workspace`` and return the query of its rows.

    Membership comes from the membership store as AEP's ``segmentMembership.ups`` rows (every segment for
    the maps; the filtered segments for the selection).

    Returns:
        The query: the projected profiles, ``segmentMembership`` and (when asked for) ``eventList``.
    """
    profiles_path = store / PROFILES_FILE
    workspace.register(PROFILES, str(profiles_path))
    members.define_long_form(workspace, state, MEMBERSHIP)
    if segments:
        members.define_long_form(workspace, state, CHOSEN, [s.segment_id for s in segments if s.is_ups])
    event_schema = None
    if request.event_fields is not None:
        workspace.register(EVENTS, events_source(store))
        event_schema = pq.read_schema(store / EVENTS_FILE)
    return export_query(workspace.dialect, pq.read_schema(profiles_path), event_schema, request, segments)


def export_query(dialect: str, profile_schema: pa.Schema, event_schema: pa.Schema | None, request: ExportRequest,
                 segments: tuple[SegmentFilter, ...]) -> exp.Query:
    """The export's query over :data:`PROFILES`, :data:`MEMBERSHIP`, :data:`CHOSEN` and :data:`EVENTS`, in
    ``dialect``'s spelling where the dialects differ.

    Args:
        dialect: The sqlglot dialect the workspace renders in.
        profile_schema: The store's profiles (what ``request.fields`` projects from).
        event_schema: The store's events, when ``request`` asks for an ``eventList``.
        request: The export request.
        segments: The segments whose members it selects (none: every profile).
    """
    profile_id = exp.column("_profile_id", table="p")
    query = exp.select(*project(profile_schema, request.fields, "p", always=("identityMap",))).from_(
        exp.to_table(PROFILES).as_("p"))
    selected = None
    if segments:
        selected = exp.select("_profile_id").from_(SELECTED)
        query = query.with_(SELECTED, as_=_selection(request, segments)).join(
            SELECTED, on=exp.column("_profile_id", table=SELECTED).eq(profile_id))
    # Membership maps are built only for the profiles that are exported.
    maps = exp.select("_profile_id", _ups(dialect).as_("ups")).from_(MEMBERSHIP).where(
        exp.column("_profile_id").isin(query=selected.copy()) if selected else None).group_by("_profile_id")
    ups = exp.column("ups", table=MAPS)
    query = query.with_(MAPS, as_=maps).join(
        MAPS, on=exp.column("_profile_id", table=MAPS).eq(profile_id), join_type="left").select(
        exp.case().when(ups.is_(exp.null()), exp.null()).else_(
            exp.VarMap(keys=exp.Array(expressions=[exp.Literal.string("ups")]),
                       values=exp.Array(expressions=[ups.copy()]))).as_("segmentMembership"))
    if request.event_fields is not None:
        assert event_schema is not None
        query = query.join(_event_lists(dialect, event_schema, request, selected).subquery(EVENT_LISTS),
                           on=exp.column("_profile_id", table=EVENT_LISTS).eq(profile_id), join_type="left").select(
            exp.func("coalesce", exp.column("eventList", table=EVENT_LISTS), exp.Array(expressions=[])
                     ).as_("eventList"))
    conditions: list[exp.Expr] = []
    if not request.empty_profiles:
        conditions.append(exp.column("_hasProfileRecord", table="p"))
    if request.from_ingest is not None:
        conditions.append(exp.column("_lastModifiedAt", table="p") > _naive_time(request.from_ingest))
    return query.where(exp.and_(*conditions)) if conditions else query


def _selection(request: ExportRequest, segments: Sequence[SegmentFilter]) -> exp.Query:
    """The profiles in one of ``segments`` with one of its statuses (and qualified in the request's window)."""
    alternatives: list[exp.Expr] = []
    for segment in segments:
        if not segment.is_ups:
            continue  # imported audiences (AAM...) are not held by openseg: they select nobody
        condition = [exp.column("segment_id", table="m").eq(exp.Literal.string(segment.segment_id)),
                     exp.column("status", table="m").isin(*(exp.Literal.string(s) for s in segment.statuses))]
        qualified = exp.column("lastQualificationTime", table="m")
        if request.qualified_from is not None:
            condition.append(qualified >= _time(request.qualified_from))
        if request.qualified_to is not None:
            condition.append(qualified.copy() <= _time(request.qualified_to))
        alternatives.append(exp.paren(exp.and_(*condition)))
    return exp.select(exp.column("_profile_id", table="m")).distinct().from_(exp.to_table(CHOSEN).as_("m")).where(
        exp.or_(*alternatives) if alternatives else exp.false())


def _ups(dialect: str) -> exp.Expr:
    """A profile's ``segmentMembership.ups`` map: segment id -> ``{status, lastQualificationTime}``, by
    segment id."""
    entry = _struct(key=exp.column("segment_id"), value=_struct(
        status=exp.column("status"),
        lastQualificationTime=AEP_TIMES.get(dialect, _aep_time)(exp.column("lastQualificationTime"))))
    if dialect == "spark":
        return exp.func("map_from_entries", _sorted_collection(entry, [exp.column("segment_id")]))
    # A profile has one entry per segment: sorting the collected {key, value} structs orders them by key,
    # which DuckDB does far faster than an ordered aggregate (3.4 s of CPU at 300k profiles, measured).
    return exp.func("map_from_entries", exp.func("list_sort", exp.ArrayAgg(this=entry)))


def _event_lists(dialect: str, event_schema: pa.Schema, request: ExportRequest,
                 selected: exp.Query | None) -> exp.Query:
    """Each selected profile's events, projected, in time order (``_id`` breaks ties)."""
    items = project(event_schema, request.event_fields or (), "e", always=("_id", "timestamp"))
    packed = _struct(**{item.alias_or_name: item.unalias() if isinstance(item, exp.Alias) else item
                        for item in items})
    keys = [exp.column("timestamp", table="e"), exp.column("_id", table="e")]
    conditions: list[exp.Expr] = []
    if selected is not None:
        conditions.append(exp.column("_profile_id", table="e").isin(query=selected.copy()))
    if request.events_from_ingest is not None:
        conditions.append(exp.column("_ingestTime", table="e") > _naive_time(request.events_from_ingest))
    return exp.select(exp.column("_profile_id", table="e"),
                      ORDERED_LISTS.get(dialect, _ordered_aggregate)(packed, keys).as_("eventList")).from_(
        exp.to_table(EVENTS).as_("e")).where(exp.and_(*conditions) if conditions else None).group_by(
        exp.column("_profile_id", table="e"))


def _struct(**fields: exp.Expr) -> exp.Struct:
    return exp.Struct(expressions=[exp.PropertyEQ(this=exp.to_identifier(name, quoted=True), expression=value)
                                   for name, value in fields.items()])


def _time(value: datetime) -> exp.Expr:
    """An instant (a timestamp with time zone) as a literal."""
    return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("TIMESTAMPTZ"))


def _naive_time(value: datetime) -> exp.Expr:
    """A UTC instant as a literal of the store's timestamps, which are UTC without a zone."""
    return exp.cast(exp.Literal.string(value.replace(tzinfo=None).isoformat(sep=" ")),
                    exp.DataType.build("TIMESTAMPNTZ"))


# ------------------------------------------------------------------------- per-dialect spellings


def _ordered_aggregate(value: exp.Expr, keys: Sequence[exp.Expr]) -> exp.Expr:
    """The list of a group's ``value``s in ``keys`` order (nulls last), as an ordered aggregate."""
    return exp.ArrayAgg(this=exp.Order(this=value, expressions=[exp.Ordered(this=key, nulls_first=False)
                                                                 for key in keys]))


def _sorted_collection(value: exp.Expr, keys: Sequence[exp.Expr]) -> exp.Expr:
    """:func:`_ordered_aggregate` for Spark, which has no ``ORDER BY`` inside an aggregate: collect
    ``{k0, k1, ..., v}`` structs, sort them with a comparator on the keys (sorting the structs themselves
    would compare values too, and maps, such as an event's ``identityMap``, have no order), keep ``v``."""
    names = [f"k{index}" for index in range(len(keys))]
    collected = exp.ArrayAgg(this=_struct(**dict(zip(names, keys, strict=True)), v=value))
    left, right = exp.to_identifier("l"), exp.to_identifier("r")
    case = exp.case()
    for name in names:
        a, b = exp.column(name, table="l"), exp.column(name, table="r")
        case = (case.when(a < b, exp.Literal.number(-1)).when(a.copy() > b.copy(), exp.Literal.number(1))
                .when(exp.and_(a.copy().is_(exp.null()), exp.not_(b.copy().is_(exp.null()))), exp.Literal.number(1))
                .when(exp.and_(exp.not_(a.copy().is_(exp.null())), b.copy().is_(exp.null())), exp.Literal.number(-1)))
    compare = exp.Lambda(this=case.else_(exp.Literal.number(0)), expressions=[left, right])
    element = exp.to_identifier("x")
    return exp.Transform(this=exp.ArraySort(this=collected, expression=compare),
                         expression=exp.Lambda(this=exp.column("v", table="x"), expressions=[element]))


def _aep_time(value: exp.Expr) -> exp.Expr:
    """AEP's text of an instant, UTC to the millisecond (``2026-01-31T10:00:00.000Z``), on DuckDB."""
    return exp.Anonymous(this="strftime", expressions=[
        exp.AtTimeZone(this=value, zone=exp.Literal.string("UTC")), exp.Literal.string("%Y-%m-%dT%H:%M:%S.%gZ")])


def _aep_time_spark(value: exp.Expr) -> exp.Expr:
    """:func:`_aep_time` on Spark, whose session time zone is UTC (``engines.spark.SESSION_CONFIG``)."""
    return exp.Anonymous(this="date_format", expressions=[
        value, exp.Literal.string("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")])


#: How each dialect lists a group's values in order (default: an ordered aggregate, as DuckDB has).
ORDERED_LISTS: dict[str, Callable[[exp.Expr, Sequence[exp.Expr]], exp.Expr]] = {"spark": _sorted_collection}
#: How each dialect writes an instant as AEP's text (default: DuckDB's ``strftime``).
AEP_TIMES: dict[str, Callable[[exp.Expr], exp.Expr]] = {"spark": _aep_time_spark}
