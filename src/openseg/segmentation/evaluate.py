"""Evaluating segments over a built profile store with the configured engine."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from openseg.pql import ast
from openseg.profiles.store import EVENTS_FILE, PROFILES_FILE
from openseg.segmentation.planner import Plan, arrow_paths, plan_segments

if TYPE_CHECKING:
    from openseg.engines.base import Engine
    from openseg.services import Services


@dataclass(frozen=True)
class Evaluation:
    """One plan's result: ``_profile_id`` plus a boolean column per segment (``columns`` maps ids)."""

    result: pa.Table
    columns: dict[str, str]
    total_profiles: int
    seconds: float
    cost: dict[str, Any] = field(default_factory=dict)


def evaluate_segments(services: Services, store: Path, segments: Sequence[tuple[str, ast.Expr]], as_of: datetime,
                      previous: pa.Table | None) -> Evaluation:
    """Run every segment of one merge policy in one plan over ``store`` (a resolved build directory)."""
    return evaluate_store(services.engine(), store, segments, as_of, previous)


def evaluate_store(engine: Engine, store: Path, segments: Sequence[tuple[str, ast.Expr]], as_of: datetime,
                   previous: pa.Table | None) -> Evaluation:
    """One plan for all ``segments`` over the store's ``profiles.parquet`` and ``events.parquet``."""
    has_path = arrow_paths(pq.read_schema(store / PROFILES_FILE), pq.read_schema(store / EVENTS_FILE))
    plan = plan_segments(list(segments), as_of=as_of, dialect=engine.dialect, membership_available=previous is not None,
                         has_path=has_path)
    tables: dict[str, Any] = {"profiles": str(store / PROFILES_FILE), "events": str(store / EVENTS_FILE)}
    if previous is not None:
        tables["membership"] = previous
    started = time.perf_counter()
    result = engine.run(plan.query, tables)
    seconds = time.perf_counter() - started
    total = pq.ParquetFile(store / PROFILES_FILE).metadata.num_rows
    return Evaluation(result=result, columns=dict(plan.columns), total_profiles=total, seconds=seconds,
                      cost=plan_cost(plan, seconds))


def plan_cost(plan: Plan, seconds: float) -> dict[str, Any]:
    """Per segment: the derived columns (event scans, sequences, lookups) its part of the plan reads and
    whether they are shared with other segments — the openseg extension ``openseg:segmentCost``."""
    usage: dict[str, int] = {}
    for keys in plan.derived.values():
        for key in keys:
            usage[key] = usage.get(key, 0) + 1
    return {
        segment_id: {
            "derivedColumns": len(keys),
            "sharedDerivedColumns": sum(1 for k in keys if usage[k] > 1),
            "planSeconds": round(seconds, 4),
        }
        for segment_id, keys in plan.derived.items()
    }


def primary_namespaces(store: Path, qualified: pa.Table) -> dict[str, dict[str, int]]:
    """Per segment, qualifying profiles counted by the namespace of their primary identity: the one
    flagged ``primary`` in ``identityMap``, else the namespace of ``_profile_id`` as the map spells it."""
    if qualified.num_rows == 0:
        return {}
    with duckdb.connect() as con:
        con.register("qualified", qualified)
        rows = con.sql(
            """
            WITH ns AS (
                SELECT _profile_id,
                       coalesce(list_filter(map_entries(identityMap), lambda e: list_bool_or(
                                    list_transform(e.value, lambda i: coalesce(i."primary", false))))[1].key,
                                list_filter(map_keys(identityMap),
                                            lambda k: lower(k) = split_part(_profile_id, ':', 1))[1],
                                split_part(_profile_id, ':', 1)) AS namespace
                FROM read_parquet($path)
            )
            SELECT q.segment_id, ns.namespace, count(*) AS n
            FROM qualified q JOIN ns USING (_profile_id)
            GROUP BY ALL ORDER BY ALL
            """,
            params={"path": str(store / PROFILES_FILE)},
        ).fetchall()
    counts: dict[str, dict[str, int]] = {}
    for segment_id, namespace, n in rows:
        counts.setdefault(segment_id, {})[namespace] = int(n)
    return counts

