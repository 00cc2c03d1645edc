"""Evaluating a job's segments over a built profile store: one plan, then the membership diff, counts
and membership files, all as statements in one engine workspace.

The plan's result never leaves the engine: it becomes a relation of the workspace (a DuckDB temporary
table, a cached Spark view) that the diff, the counts and the Parquet writes read in place, and the
engine writes the files (Spark's executors, DuckDB's COPY); only counts come back to this process.
engine-pitfalls.md and the benchmarks measured the Arrow round trips this replaces (wide result →
Python pairs → new connection → Arrow tables → pyarrow writes) at as much time as the evaluation itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlglot import exp

from openseg.pql import ast
from openseg.profiles.store import EVENTS_FILE, PROFILES_FILE, events_source, primary_namespace
from openseg.segmentation import membership
from openseg.segmentation.cost import FINAL, segment_costs
from openseg.segmentation.planner import arrow_paths, plan_segments
from openseg.xdm.schema import PRIMARY_NAMESPACE

if TYPE_CHECKING:
    from openseg.engines.base import Engine, Workspace


class EngineSource(Protocol):
    """Where a job's engine comes from (``openseg.container.Services`` is one): the engine of the deployment."""

    def engine(self) -> Engine: ...


#: The temporary table holding the plan's result in the job's connection.
RESULT = "segment_result"


#: Told where an evaluation is: (step, steps done, steps in all). The steps are the plan's stages by name,
#: then ``segments`` (every segment's condition), ``membership`` (the diff) and ``files`` (membership and
#: history written). An exception it raises stops the evaluation (a cancelled job).
Progress = Callable[[str, int, int], None]
#: The steps after the plan's stages.
DIFF_STEP, FILES_STEP = "membership", "files"


@dataclass(frozen=True)
class Evaluation:
    """One job's evaluation of the segments of one merge policy, with its membership diff.

    Attributes:
        columns: Segment id -> its boolean column in the plan.
        total_profiles: Profiles in the store.
        seconds: Time the plan took to run.
        qualified: Segment id -> profiles qualifying now.
        by_namespace: Segment id -> qualifying profiles by primary-identity namespace.
        counts: Segment id -> ``realized`` / ``existing`` / ``exited`` counts of this run.
        staged: The new membership, written beside its places (publish with ``membership.publish``).
        cost: Per segment, the openseg extension ``openseg:segmentCost``.
        failures: Segments left out because they could not be evaluated: segment id -> why.
    """

    columns: dict[str, str]
    total_profiles: int
    seconds: float
    qualified: dict[str, int]
    by_namespace: dict[str, dict[str, int]]
    counts: dict[str, dict[str, int]]
    staged: membership.StagedMembership
    cost: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def evaluate_segments(services: EngineSource, store: Path, segments: Sequence[tuple[str, ast.Expr]], as_of: datetime,
                      members: membership.MembershipStore, previous: membership.State | None, job_id: str,
                      progress: Progress | None = None) -> Evaluation:
    """Run every segment of one merge policy in one plan over ``store`` (a resolved build directory) and
    diff the result against the ``previous`` membership; see :func:`evaluate_store`."""
    return evaluate_store(services.engine(), store, segments, as_of, members, previous, job_id, progress)


class SegmentsFailed(Exception):
    """Every segment of an evaluation failed; ``failures``: segment id -> why."""

    def __init__(self, failures: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{s}: {m}" for s, m in failures.items()))
        self.failures = dict(failures)


class _Stopped(Exception):
    """The progress callback raised (a cancelled job): passed through, never blamed on a segment."""


def evaluate_store(engine: Engine, store: Path, segments: Sequence[tuple[str, ast.Expr]], as_of: datetime,
                   members: membership.MembershipStore, previous: membership.State | None, job_id: str,
                   progress: Progress | None = None) -> Evaluation:
    """One plan for all ``segments`` over the store's ``profiles.parquet`` and ``events.parquet``, then the
    membership diff against ``previous``, the counts, and the new membership staged in ``members``.

    A segment that cannot be evaluated (the engine refuses or fails on its condition) fails alone: when
    the plan fails, each segment is tried by itself to find the ones to blame, and the job runs again
    without them. They are left out of the diff, so their previous membership stays; the evaluation lists
    them in ``failures``.

    Args:
        engine: Runs the plan.
        store: The profile store directory.
        segments: (segment id, parsed PQL) pairs.
        as_of: Evaluation time (relative windows, ``lastQualificationTime``, history times).
        members: The membership store of the merge policy.
        previous: Its current state (None: no membership yet).
        job_id: Names the new state and the history rows.
        progress: Told after each step (see ``Progress``).

    Returns:
        The evaluation; its membership is staged, not yet published.

    Raises:
        SegmentsFailed: Every segment failed.
    """
    try:
        return _evaluate(engine, store, segments, as_of, members, previous, job_id, progress)
    except _Stopped as stopped:
        raise _cause(stopped) from None
    except Exception:
        failures = failing_segments(engine, store, segments, as_of, members, previous)
        if not failures:
            raise  # the plan failed, but no segment fails alone: nothing to blame on one
    remaining = [(segment_id, expr) for segment_id, expr in segments if segment_id not in failures]
    if not remaining:
        raise SegmentsFailed(failures)
    try:
        evaluation = _evaluate(engine, store, remaining, as_of, members, previous, job_id, progress)
    except _Stopped as stopped:
        raise _cause(stopped) from None
    return replace(evaluation, failures=failures)


def failing_segments(engine: Engine, store: Path, segments: Sequence[tuple[str, ast.Expr]], as_of: datetime,
                     members: membership.MembershipStore, previous: membership.State | None) -> dict[str, str]:
    """The segments whose condition the engine cannot evaluate, each by itself, with why: first those it
    refuses to compile or bind (cheap: nothing is read), else those whose evaluation fails when run."""
    has_path = arrow_paths(pq.read_schema(store / PROFILES_FILE), pq.read_schema(store / EVENTS_FILE))
    failures: dict[str, str] = {}
    with engine.workspace() as workspace:
        _register_store(workspace, store)
        plans: dict[str, tuple[exp.Query, str]] = {}
        for segment_id, expr in segments:
            try:
                differ = membership.MembershipDiffer(workspace, members, previous, [segment_id], "check")
                plan = plan_segments([(segment_id, expr)], as_of=as_of, dialect=engine.dialect,
                                     membership=differ.plan_relation(), has_path=has_path)
                workspace.fetch(plan.query.limit(0))
                plans[segment_id] = (plan.query, plan.columns[segment_id])
            except Exception as error:  # noqa: BLE001 - whatever the engine or compiler raised is the reason
                failures[segment_id] = _reason(error)
        if failures:
            return failures
        for segment_id, (query, column) in plans.items():
            # Counting the segment's column makes the engine evaluate it on every profile.
            counted = exp.select(exp.func("count_if", exp.column(column, quoted=True))).from_(query.subquery("q"))
            try:
                workspace.fetch(counted)
            except Exception as error:  # noqa: BLE001 - as above
                failures[segment_id] = _reason(error)
    return failures


def _register_store(workspace: Workspace, store: Path) -> None:
    """The profile store's files as the relations plans read (``profiles``, ``events``)."""
    workspace.register("profiles", str(store / PROFILES_FILE))
    workspace.register("events", events_source(store))


def _cause(stopped: _Stopped) -> BaseException:
    assert stopped.__cause__ is not None
    return stopped.__cause__


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:500]


def _evaluate(engine: Engine, store: Path, segments: Sequence[tuple[str, ast.Expr]], as_of: datetime,
              members: membership.MembershipStore, previous: membership.State | None, job_id: str,
              progress: Progress | None = None) -> Evaluation:
    profile_schema = pq.read_schema(store / PROFILES_FILE)
    has_path = arrow_paths(profile_schema, pq.read_schema(store / EVENTS_FILE))
    # Members are counted by the namespace the build stored; the plan carries it to the result.
    carry = (PRIMARY_NAMESPACE,) if PRIMARY_NAMESPACE in profile_schema.names else ()
    steps, done = 0, 0

    def step(name: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            try:
                progress(name, done, steps)
            except Exception as stop:
                raise _Stopped() from stop

    with engine.workspace() as workspace:
        _register_store(workspace, store)
        differ = membership.MembershipDiffer(workspace, members, previous, [s for s, _ in segments], job_id)
        plan = plan_segments(list(segments), as_of=as_of, dialect=engine.dialect,
                             membership=differ.plan_relation(), has_path=has_path, carry=carry)
        steps = len(plan.stages) + 3
        started = time.perf_counter()
        stages = [(stage.name, stage.query) for stage in plan.stages]
        runs = workspace.materialize_staged(stages, plan.final, RESULT, lambda run: step(run.name or FINAL))
        seconds = time.perf_counter() - started
        qualified, by_namespace = _qualified_counts(workspace, plan.columns, carried=bool(carry))
        workspace.define(membership.QUALIFIED,
                         membership.qualified_from_columns(RESULT, plan.columns, differ.bits, differ.words))
        counts = differ.diff(as_of, qualified)
        step(DIFF_STEP)
        staged = differ.stage(job_id)
        step(FILES_STEP)
    total = pq.ParquetFile(store / PROFILES_FILE).metadata.num_rows
    return Evaluation(columns=dict(plan.columns), total_profiles=total, seconds=seconds, qualified=qualified,
                      by_namespace=by_namespace, counts=counts, staged=staged, cost=segment_costs(plan, runs))


def _qualified_counts(workspace: Workspace, columns: Mapping[str, str], carried: bool = False
                      ) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Per segment, the qualifying profiles, in total and by primary-identity namespace, in one grouped
    pass over the result (which carries each profile's namespace, or is joined with the profiles for it)."""
    counted = [exp.alias_(exp.func("count_if", exp.column(column, table="r", quoted=True)), f"n{index}")
               for index, column in enumerate(columns.values())]
    if carried:
        namespace: exp.Expr = exp.column(PRIMARY_NAMESPACE, table="r", quoted=True)
        query = (exp.select(exp.alias_(namespace, "namespace"), *counted)
                 .from_(exp.alias_(exp.to_table(RESULT), "r", table=True)).group_by(namespace.copy()))
    else:
        namespaces = exp.select(exp.column("_profile_id"), exp.alias_(primary_namespace(), "namespace")).from_("profiles")
        query = (exp.select(exp.column("namespace", table="ns"), *counted)
                 .from_(exp.alias_(exp.to_table(RESULT), "r", table=True))
                 .join(namespaces.subquery("ns"), on=exp.column("_profile_id", table="r").eq(
                     exp.column("_profile_id", table="ns")), join_type="left")
                 .group_by(exp.column("namespace", table="ns")))
    qualified = dict.fromkeys(columns, 0)
    by_namespace: dict[str, dict[str, int]] = {segment_id: {} for segment_id in columns}
    for row in workspace.fetch(query).to_pylist():
        namespace_value, numbers = row["namespace"], [row[f"n{index}"] for index in range(len(columns))]
        for segment_id, number in zip(columns, numbers, strict=True):
            qualified[segment_id] += int(number)
            if number and namespace_value is not None:
                by_namespace[segment_id][namespace_value] = int(number)
    return qualified, {s: dict(sorted(counts.items())) for s, counts in by_namespace.items()}


def primary_namespaces(engine: Engine, store: Path, qualified: pa.Table) -> dict[str, dict[str, int]]:
    """Per segment, qualifying profiles (``segment_id, _profile_id`` pairs) counted by the namespace of
    their primary identity: the one the build stored, or, for a store without that column, worked out
    from ``identityMap``."""
    if qualified.num_rows == 0:
        return {}
    profiles = store / PROFILES_FILE
    stored = PRIMARY_NAMESPACE in pq.read_schema(profiles).names
    namespace = exp.column(PRIMARY_NAMESPACE, table="p", quoted=True) if stored else primary_namespace(
        exp.column("identityMap", table="p"), exp.column("_profile_id", table="p"))
    segment, count = exp.column("segment_id", table="q"), exp.func("count", exp.Star())
    query = (exp.select(segment, exp.alias_(namespace, "namespace"), exp.alias_(count, "n"))
             .from_(exp.alias_(exp.to_table("qualified"), "q", table=True))
             .join(exp.alias_(exp.to_table("profiles"), "p", table=True),
                   on=exp.column("_profile_id", table="q").eq(exp.column("_profile_id", table="p")))
             .group_by(segment.copy(), namespace.copy()).order_by(exp.column("segment_id"), exp.column("namespace")))
    counts: dict[str, dict[str, int]] = {}
    for row in engine.run(query, {"qualified": qualified, "profiles": str(profiles)}).to_pylist():
        counts.setdefault(row["segment_id"], {})[row["namespace"]] = int(row["n"])
    return counts


def qualified_pairs(result: pa.Table, columns: Mapping[str, str]) -> pa.Table:
    """Long form ``(segment_id, _profile_id)`` of an evaluation result with one boolean column per segment."""
    ids = result["_profile_id"]
    parts = []
    for segment_id, column in columns.items():
        chosen = pc.filter(ids, pc.fill_null(result[column], False))
        parts.append(pa.table({"segment_id": pa.array([segment_id] * len(chosen), pa.string()),
                               "_profile_id": chosen.cast(pa.string())}))
    if not parts:
        return pa.table({"segment_id": pa.array([], pa.string()), "_profile_id": pa.array([], pa.string())})
    return pa.concat_tables(parts)
