"""What each segment's part of a one-pass plan cost: the openseg extension ``openseg:segmentCost``.

A job's segments share one plan, and its stages are shared too: a grouped scan of events computes the
aggregates of every segment reading that window. Each stage's measured time and rows scanned are split
evenly among the segments reading it; the final stage (joining the stages and evaluating every segment's
condition over all profiles) is split evenly among all of them. So the segments' shares add up to the
plan's measured time and rows, and a segment's share falls as more segments share its scans.

For each segment the extension reports::

    {"seconds": its share of the plan's time,
     "rowsScanned": its share of the rows the plan's stages read (null where the engine does not say),
     "stages": [{"name", "relation", "seconds", "rows", "rowsScanned", "sharedBy"}, ...],   # in full
     "derivedColumns": ..., "sharedDerivedColumns": ...}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from openseg.engines.base import StageRun
from openseg.segmentation.planner import Plan

#: The name and relation of the final stage in the report.
FINAL = "segments"
FINAL_RELATION = "profiles"


def segment_costs(plan: Plan, runs: Sequence[StageRun]) -> dict[str, dict[str, Any]]:
    """Per segment of ``plan``, its share of the measured ``runs`` (see the module docstring).

    Args:
        plan: The plan that ran.
        runs: One measurement per stage of ``plan.stages`` (by name), plus the final stage (name ``""``).

    Returns:
        Segment id -> its ``openseg:segmentCost`` entry, in the plan's segment order.
    """
    by_name = {run.name: run for run in runs}
    segments = list(plan.columns)
    consumers: dict[str, tuple[str, ...]] = {stage.name: stage.consumers for stage in plan.stages}
    consumers[""] = tuple(segments)
    relations = {stage.name: stage.relation for stage in plan.stages}
    relations[""] = FINAL_RELATION

    seconds = dict.fromkeys(segments, 0.0)
    scanned_known = all(run.rows_scanned is not None for run in runs)
    scanned = dict.fromkeys(segments, 0)
    stages: dict[str, list[dict[str, Any]]] = {s: [] for s in segments}
    for name in [stage.name for stage in plan.stages] + [""]:
        run, readers = by_name[name], consumers[name]
        if not readers:
            continue
        entry = {"name": name or FINAL, "relation": relations[name], "seconds": round(run.seconds, 6),
                 "rows": run.rows, "rowsScanned": run.rows_scanned, "sharedBy": len(readers)}
        shares = _split(run.rows_scanned or 0, readers)
        for segment_id in readers:
            seconds[segment_id] += run.seconds / len(readers)
            scanned[segment_id] += shares[segment_id]
            stages[segment_id].append(entry)

    usage: dict[str, int] = {}
    for keys in plan.derived.values():
        for key in keys:
            usage[key] = usage.get(key, 0) + 1
    return {
        segment_id: {
            "seconds": round(seconds[segment_id], 6),
            "rowsScanned": scanned[segment_id] if scanned_known else None,
            "stages": stages[segment_id],
            "derivedColumns": len(plan.derived[segment_id]),
            "sharedDerivedColumns": sum(1 for key in plan.derived[segment_id] if usage[key] > 1),
        }
        for segment_id in segments
    }


def _split(total: int, readers: Sequence[str]) -> Mapping[str, int]:
    """``total`` split into whole shares among ``readers`` that add up to it (the first get the remainder)."""
    share, remainder = divmod(total, len(readers))
    return {reader: share + (1 if index < remainder else 0) for index, reader in enumerate(readers)}
