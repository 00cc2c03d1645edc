"""The baseline: the benchmark segments as hand-written DuckDB SQL over the plain Parquet files.

This is what a competent engineer writes without openseg: per template, a SQL condition over the
profile row ``p`` and the event aggregates it needs, written by hand below and filled with the
template's parameters as SQL literals built by sqlglot's constructors (quoted and escaped there, never
formatted by hand). Two ways to run:

- ``count_one_pass``: one query for all segments: one events scan per window length computing each distinct
  (event filter, window) aggregate once, one boolean per segment over the profiles, and
  segment-of-segments combined in an outer query;
- ``count_per_segment``: one such query per segment (with the segments it refers to inlined);
- ``members_one_pass``: the one-pass query's members per segment, for member-by-member cross-checks.

Counts are per segment key. Conventions from engine-pitfalls.md: money is
summed as DECIMAL (the files store it as ``decimal(12, 2)``); PQL is two-valued, so every segment's
condition is wrapped in ``COALESCE(..., FALSE)`` and every negated comparison is coalesced before
``NOT``; windows end at the manifest's ``as_of`` and start ``N`` days before it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from sqlglot import exp

from benchmarks.generate import Manifest
from benchmarks.segments import Segment, Template, evaluation_layers, with_dependencies
from openseg.engines.duckdb import connection_config

#: The profile attributes null checks may name, as SQL over the profile row.
_COLUMNS = {
    "person.birthDate": "p.person.birthDate",
    "person.gender": "p.person.gender",
    "homeAddress.postalCode": "p.homeAddress.postalCode",
    "homeAddress.state": "p.homeAddress.state",
    "loyalty.tier": "p.loyalty.tier",
    "personalEmail.address": "p.personalEmail.address",
}


#: Up to this many aggregates, the events scan also keeps only rows some aggregate counts (as one
#: would write it by hand); beyond, the OR costs more per row than it saves.
_PUSHED_CONDITIONS = 8


@dataclass(frozen=True)
class Aggregate:
    """A per-profile event aggregate over the events meeting ``condition``, computed once per ``key``.

    It counts those events, or sums ``summed`` over them; ``condition`` includes the window
    (``e.timestamp >= {since}``).
    """

    key: tuple[Any, ...]
    condition: str
    params: dict[str, Any]
    summed: str | None = None

    def sql(self, condition: str) -> str:
        """The aggregate expression, given the bound condition."""
        if self.summed is None:
            return f"count_if({condition})"
        return f"sum({self.summed}) FILTER (WHERE {condition})"


@dataclass(frozen=True)
class EventSequence:
    """Profiles having an event of type ``first`` in the window followed within ``within`` by ``then``."""

    key: tuple[Any, ...]
    params: dict[str, Any]


@dataclass(frozen=True)
class SegmentSql:
    """One segment's hand-written condition.

    ``predicate`` is SQL text over ``p`` with ``{name}`` placeholders for its own ``params``,
    ``{agg0}``... for its ``aggregates``, ``{seq0}``... for its ``sequences`` and ``{ref0}``... for
    the segments it refers to.
    """

    predicate: str
    params: dict[str, Any] = field(default_factory=dict)
    aggregates: tuple[Aggregate, ...] = ()
    sequences: tuple[EventSequence, ...] = ()


_SEQUENCE_SQL = """
    SELECT DISTINCT c0._profile_id
    FROM events AS c0
    JOIN events AS c1
      ON c1._profile_id = c0._profile_id
     AND c1.timestamp > c0.timestamp
     AND c1.timestamp <= c0.timestamp + {within}
    WHERE c0.eventType = {first} AND c0.timestamp >= {since} AND c0.timestamp <= {as_of}
      AND c1.eventType = {then} AND c1.timestamp >= {since} AND c1.timestamp <= {as_of}"""


def _count(event_type: str, days: int) -> Aggregate:
    return _count_where("count", "e.eventType = {value}", event_type, days)


def _count_where(kind: str, condition: str, value: Any, days: int) -> Aggregate:
    return Aggregate(
        (kind, value, days), f"{condition} AND e.timestamp >= {{since}}", {"value": value, "since": days}
    )


def _sql_for(segment: Segment) -> SegmentSql:
    """The hand-written SQL of a segment's template, with its parameters."""
    p = segment.params
    match segment.template:
        case Template.COUNTRY_IS:
            return SegmentSql("p.homeAddress.country = {country}", {"country": p["country"]})
        case Template.TIER_IN_BORN_BETWEEN:
            return SegmentSql(
                "list_contains({tiers}, p.loyalty.tier) AND p.person.birthDate >= {born_from} "
                "AND p.person.birthDate < {born_before}",
                {"tiers": list(p["tiers"]), "born_from": p["born_from"], "born_before": p["born_before"]},
            )
        case Template.POINTS_BETWEEN:
            return SegmentSql(
                "p.loyalty.points >= {low} AND p.loyalty.points <= {high}",
                {"low": p["low"], "high": p["high"]},
            )
        case Template.NAME_OR_EMAIL:
            return SegmentSql(
                "starts_with(p.person.name.lastName, {prefix}) "
                "OR contains(p.personalEmail.address, {fragment})",
                {"prefix": p["prefix"], "fragment": p["fragment"]},
            )
        case Template.NESTED:
            return SegmentSql(
                "(p.homeAddress.country = {country} AND (p.loyalty.tier = {tier} OR p.loyalty.points > {points})) "
                "OR (list_contains({countries}, p.homeAddress.country) "
                "AND NOT COALESCE(p.person.gender = {gender}, FALSE))",
                {
                    "country": p["country"],
                    "tier": p["tier"],
                    "points": p["points"],
                    "countries": list(p["countries"]),
                    "gender": p["gender"],
                },
            )
        case Template.MISSING_FIELDS:
            first, second = (_COLUMNS[path] for path in p["missing"])
            return SegmentSql(
                f"({first} IS NULL OR {second} IS NULL) AND {_COLUMNS[p['present']]} IS NOT NULL"
            )
        case Template.EVENT_COUNT:
            return SegmentSql(
                "COALESCE({agg0}, 0) >= {at_least}",
                {"at_least": p["at_least"]},
                (_count(p["event_type"], p["days"]),),
            )
        case Template.SPEND_OVER:
            spend = Aggregate(
                ("spend", p["days"]),
                "e.eventType = 'commerce.purchases' AND e.timestamp >= {since}",
                {"since": p["days"]},
                summed='e.commerce."order".priceTotal',
            )
            return SegmentSql("COALESCE({agg0}, 0) > {amount}", {"amount": p["amount"]}, (spend,))
        case Template.DID_NOT:
            return SegmentSql(
                "COALESCE({agg0}, 0) > 0 AND COALESCE({agg1}, 0) = 0",
                {},
                (_count(p["did"], p["days"]), _count(p["did_not"], p["days"])),
            )
        case Template.SEQUENCE:
            sequence = EventSequence(
                ("sequence", p["first"], p["then"], p["days"], p["hours"]),
                {
                    "first": p["first"],
                    "then": p["then"],
                    "since": p["days"],
                    "within": dt.timedelta(hours=p["hours"]),
                },
            )
            return SegmentSql("{seq0}", sequences=(sequence,))
        case Template.PAGE_VISITS:
            visits = _count_where("page", 'e.web.webPageDetails."name" = {value}', p["page"], p["days"])
            return SegmentSql("COALESCE({agg0}, 0) >= {at_least}", {"at_least": p["at_least"]}, (visits,))
        case Template.BOUGHT_PRODUCT:
            bought = _count_where(
                "bought",
                "e.eventType = 'commerce.purchases' AND "
                'list_contains(list_transform(e.productListItems, lambda i: lower(i."name")), {value})',
                p["product"].lower(),
                p["days"],
            )
            return SegmentSql("COALESCE({agg0}, 0) > 0", {}, (bought,))
        case Template.BROWSER_VISITS:
            visits = _count_where(
                "browser", 'e.environment.browserDetails."name" = {value}', p["browser"], p["days"]
            )
            return SegmentSql("COALESCE({agg0}, 0) >= {at_least}", {"at_least": p["at_least"]}, (visits,))
        case Template.IN_SEGMENTS:
            refs = len(p["all_of"])
            parts = [f"{{ref{i}}}" for i in range(refs)]
            parts += [f"NOT {{ref{refs + i}}}" for i in range(len(p["none_of"]))]
            return SegmentSql(" AND ".join(parts))
    raise ValueError(f"no hand-written SQL for template {segment.template}")


def literal(value: Any) -> str:
    """A value as a DuckDB SQL literal, built with sqlglot's constructors (quoted and escaped there)."""
    match value:
        case bool():
            return exp.Boolean(this=value).sql("duckdb")
        case str():
            return exp.Literal.string(value).sql("duckdb")
        case int() | Decimal():
            return exp.Literal.number(str(value)).sql("duckdb")
        case dt.datetime():
            return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), exp.DataType.Type.TIMESTAMP).sql(
                "duckdb"
            )
        case dt.date():
            return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.Type.DATE).sql("duckdb")
        case dt.timedelta():
            seconds = exp.Literal.string(str(int(value.total_seconds())))
            return exp.Interval(this=seconds, unit=exp.var("SECOND")).sql("duckdb")
        case list() | tuple():
            return exp.Array(expressions=[exp.maybe_parse(literal(v), dialect="duckdb") for v in value]).sql(
                "duckdb"
            )
    raise TypeError(f"no SQL literal for {value!r}")


class _Values:
    """Renders a fragment's ``{name}`` placeholders as literals; ``since`` (days) becomes a time."""

    def __init__(self, as_of: dt.datetime) -> None:
        self.as_of = as_of

    def bind(self, text: str, params: dict[str, Any], **extra: str) -> str:
        values = {}
        for name, value in params.items():
            if name == "since":
                value = self.as_of - dt.timedelta(days=value)
            values[name] = literal(value)
        return text.format(**values, **extra)


def one_pass_sql(
    segments: Sequence[Segment],
    as_of: dt.datetime,
    count_only: Sequence[str] | None = None,
    per_profile: bool = False,
) -> tuple[str, list[str]]:
    """The one-pass query counting the members of ``segments``.

    Args:
        segments: The segments, including every segment they refer to.
        as_of: The evaluation time (naive UTC) windows end at.
        count_only: Keys to count (default: all); the others are computed only as dependencies.
        per_profile: Return ``_profile_id`` and one boolean per segment for every profile instead of counts.

    Returns:
        The SQL text and the segment keys in the order of its result columns (after ``_profile_id``).
    """
    values = _Values(as_of)
    as_of_literal = literal(as_of)
    aggregates: dict[tuple[Any, ...], str] = {}
    # One events scan per window length: each reads only its window's rows and computes only its
    # aggregates (engine-pitfalls.md: splitting per window roughly halved DuckDB's time at 100 segments).
    window_sql: dict[int, list[str]] = {}
    window_conditions: dict[int, list[str]] = {}
    sequences: dict[tuple[Any, ...], str] = {}
    sequence_sql: list[str] = []
    flags: dict[str, str] = {}
    layers_sql: list[list[str]] = []
    for layer in evaluation_layers(segments):
        columns = []
        for segment in layer:
            spec = _sql_for(segment)
            names: dict[str, str] = {}
            for i, aggregate in enumerate(spec.aggregates):
                if aggregate.key not in aggregates:
                    days = aggregate.params["since"]
                    alias = f"a{len(aggregates)}"
                    aggregates[aggregate.key] = f"w{days}.{alias}"
                    condition = values.bind(aggregate.condition, aggregate.params)
                    window_conditions.setdefault(days, []).append(f"({condition})")
                    window_sql.setdefault(days, []).append(f"{aggregate.sql(condition)} AS {alias}")
                names[f"agg{i}"] = aggregates[aggregate.key]
            for i, sequence in enumerate(spec.sequences):
                if sequence.key not in sequences:
                    sequences[sequence.key] = f"q{len(sequences)}"
                    body = values.bind(_SEQUENCE_SQL, sequence.params, as_of=as_of_literal)
                    sequence_sql.append(f"{sequences[sequence.key]} AS ({body})")
                names[f"seq{i}"] = f"({sequences[sequence.key]}._profile_id IS NOT NULL)"
            for i, ref in enumerate(segment.references):
                names[f"ref{i}"] = flags[ref]
            flag = f"s{len(flags)}"
            columns.append(
                f"COALESCE(({values.bind(spec.predicate, spec.params, **names)}), FALSE) AS {flag}"
            )
            flags[segment.key] = flag
        layers_sql.append(columns)

    ctes: list[str] = []
    joins = ""
    for days, columns in window_sql.items():
        since = literal(as_of - dt.timedelta(days=days))
        conditions = window_conditions[days]
        ctes.append(
            f"w{days} AS (SELECT e._profile_id, "
            + ", ".join(columns)
            + f" FROM events AS e WHERE e.timestamp >= {since} AND e.timestamp <= {as_of_literal}"
            + (f" AND ({' OR '.join(conditions)})" if len(conditions) <= _PUSHED_CONDITIONS else "")
            + " GROUP BY e._profile_id)"
        )
        joins += f" LEFT JOIN w{days} ON w{days}._profile_id = p._profile_id"
    ctes.extend(sequence_sql)
    for name in sequences.values():
        joins += f" LEFT JOIN {name} ON {name}._profile_id = p._profile_id"
    ctes.append(f"layer0 AS (SELECT p._profile_id, {', '.join(layers_sql[0])} FROM profiles AS p{joins})")
    for level, columns in enumerate(layers_sql[1:], start=1):
        ctes.append(f"layer{level} AS (SELECT *, {', '.join(columns)} FROM layer{level - 1})")
    keys = list(count_only) if count_only is not None else [s.key for s in segments]
    if per_profile:
        selected = "_profile_id, " + ", ".join(flags[key] for key in keys)
    else:
        selected = ", ".join(f"count_if({flags[key]}) AS {flags[key]}" for key in keys)
    sql = f"WITH {', '.join(ctes)} SELECT {selected} FROM layer{len(layers_sql) - 1}"
    return sql, keys


def connect(data_dir: Path, threads: int | None = None) -> tuple[duckdb.DuckDBPyConnection, Manifest]:
    """A DuckDB connection with views ``profiles`` and ``events`` over the plain Parquet files.

    It turns off the DuckDB optimizers openseg's connections turn off (``DISABLED_OPTIMIZERS``): with DuckDB's
    ``partitioned_execution`` the baseline's filtered event scans re-read every row group once per key range
    at 10M profiles, and a baseline slowed by that would flatter openseg.
    """
    manifest = Manifest.load(data_dir)
    connection = duckdb.connect(config=connection_config(**({"threads": threads} if threads else {})))
    connection.execute("SET enable_progress_bar = false")  # keeps the benchmark's output readable
    connection.read_parquet(str(data_dir / manifest.plain_profiles)).create_view("profiles")
    connection.read_parquet(str(data_dir / manifest.plain_events)).create_view("events")
    return connection, manifest


def _run(
    connection: duckdb.DuckDBPyConnection,
    segments: Sequence[Segment],
    as_of: dt.datetime,
    count_only: Sequence[str] | None = None,
) -> dict[str, int]:
    sql, keys = one_pass_sql(segments, as_of, count_only)
    row = connection.execute(sql).fetchone()
    assert row is not None  # an aggregate query always returns a row
    return dict(zip(keys, (int(v) for v in row), strict=True))


def count_one_pass(data_dir: Path, segments: Sequence[Segment], threads: int | None = None) -> dict[str, int]:
    """Member counts of ``segments`` from one query (the hand-written one-pass baseline)."""
    connection, manifest = connect(data_dir, threads)
    with connection:
        return _run(connection, segments, manifest.as_of_time)


def members_one_pass(
    data_dir: Path, segments: Sequence[Segment], threads: int | None = None
) -> dict[str, set[str]]:
    """The ``_profile_id`` of every member of each segment, from the one-pass query (for cross-checks)."""
    connection, manifest = connect(data_dir, threads)
    with connection:
        sql, keys = one_pass_sql(segments, manifest.as_of_time, per_profile=True)
        members: dict[str, set[str]] = {key: set() for key in keys}
        for profile_id, *flags in connection.execute(sql).fetchall():
            for key, member in zip(keys, flags, strict=True):
                if member:
                    members[key].add(profile_id)
    return members


def count_per_segment(
    data_dir: Path, segments: Sequence[Segment], threads: int | None = None
) -> dict[str, int]:
    """Member counts of ``segments`` from one query per segment, run one after another on one connection."""
    connection, manifest = connect(data_dir, threads)
    counts: dict[str, int] = {}
    with connection:
        for segment in segments:
            needed = with_dependencies(segment, segments)
            counts.update(_run(connection, needed, manifest.as_of_time, count_only=[segment.key]))
    return counts
