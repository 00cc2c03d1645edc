"""Evaluating a job's segments over a built profile store: one plan, then the membership diff, counts
and membership files, all inside one DuckDB connection.

With the DuckDB engine the plan's result never leaves DuckDB: it becomes a temporary table that the
diff, the counts and the Parquet writes read in place. Another engine (Spark) runs the same plan and
hands its Arrow result to that connection. engine-pitfalls.md and the benchmarks measured the Arrow
round trips this replaces (wide result → Python pairs → new connection → Arrow tables → pyarrow
writes, plus a second read of ``profiles.parquet``) at as much time as the evaluation itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlglot import exp

from openseg.engines.duckdb import DuckDBEngine
from openseg.pql import ast
from openseg.profiles.store import EVENTS_FILE, PROFILES_FILE, primary_namespace
from openseg.segmentation import membership
from openseg.segmentation.cost import FINAL, segment_costs
from openseg.segmentation.planner import Plan, arrow_paths, plan_segments
from openseg.xdm.schema import PRIMARY_NAMESPACE

if TYPE_CHECKING:
    from openseg.engines.base import Engine, StageCallback, StageRun, TableSource
    from openseg.services import Services

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
    """

    columns: dict[str, str]
    total_profiles: int
    seconds: float
    qualified: dict[str, int]
    by_namespace: dict[str, dict[str, int]]
    counts: dict[str, dict[str, int]]
    staged: membership.StagedMembership
    cost: dict[str, Any] = field(default_factory=dict)


def evaluate_segments(services: Services, store: Path, segments: Sequence[tuple[str, ast.Expr]], as_of: datetime,
                      members: membership.MembershipStore, previous: membership.State | None, job_id: str,
                      progress: Progress | None = None) -> Evaluation:
    """Run every segment of one merge policy in one plan over ``store`` (a resolved build directory) and
    diff the result against the ``previous`` membership; see :func:`evaluate_store`."""
    return evaluate_store(services.engine(), store, segments, as_of, members, previous, job_id, progress)


def evaluate_store(engine: Engine, store: Path, segments: Sequence[tuple[str, ast.Expr]], as_of: datetime,
                   members: membership.MembershipStore, previous: membership.State | None, job_id: str,
                   progress: Progress | None = None) -> Evaluation:
    """One plan for all ``segments`` over the store's ``profiles.parquet`` and ``events.parquet``, then the
    membership diff against ``previous``, the counts, and the new membership staged in ``members``.

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
    """
    profile_schema = pq.read_schema(store / PROFILES_FILE)
    has_path = arrow_paths(profile_schema, pq.read_schema(store / EVENTS_FILE))
    # Members are counted by the namespace the build stored; the plan carries it to the result.
    carry = (PRIMARY_NAMESPACE,) if PRIMARY_NAMESPACE in profile_schema.names else ()
    steps, done = 0, 0

    def step(name: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(name, done, steps)

    workspace = engine.connect() if isinstance(engine, DuckDBEngine) else duckdb.connect()
    with workspace as connection:
        differ = membership.MembershipDiffer(connection, members, previous, [s for s, _ in segments], job_id)
        relation, previous_bits = differ.plan_inputs()
        plan = plan_segments(list(segments), as_of=as_of, dialect=engine.dialect,
                             membership=relation if previous_bits is not None else None, has_path=has_path,
                             carry=carry)
        tables: dict[str, TableSource] = {"profiles": str(store / PROFILES_FILE), "events": str(store / EVENTS_FILE)}
        if previous_bits is not None:
            tables["membership"] = previous_bits
        steps = len(plan.stages) + 3
        started = time.perf_counter()
        runs = _materialize(engine, connection, plan, tables, lambda run: step(run.name or FINAL))
        seconds = time.perf_counter() - started
        qualified, by_namespace = _qualified_counts(connection, store, plan.columns, carried=bool(carry))
        query = membership.qualified_from_columns(RESULT, plan.columns, differ.bits, differ.words)
        connection.execute(f"CREATE OR REPLACE TEMP VIEW {membership.QUALIFIED} AS {query.sql('duckdb')}")
        counts = differ.diff(as_of, qualified)
        step(DIFF_STEP)
        staged = differ.stage(job_id)
        step(FILES_STEP)
    total = pq.ParquetFile(store / PROFILES_FILE).metadata.num_rows
    return Evaluation(columns=dict(plan.columns), total_profiles=total, seconds=seconds, qualified=qualified,
                      by_namespace=by_namespace, counts=counts, staged=staged, cost=segment_costs(plan, runs))


def _materialize(engine: Engine, connection: duckdb.DuckDBPyConnection, plan: Plan,
                 tables: Mapping[str, TableSource], on_stage: StageCallback) -> list[StageRun]:
    """The plan's result as the temporary table ``RESULT`` of ``connection``, run stage by stage so that
    each stage's cost is measured (``segment_costs``)."""
    stages = [(stage.name, stage.query) for stage in plan.stages]
    if isinstance(engine, DuckDBEngine):
        return engine.materialize_staged(connection, stages, plan.final, tables, RESULT, on_stage)
    result, runs = engine.run_staged(stages, plan.final, tables, on_stage)
    connection.register("segment_result_arrow", result)
    connection.execute(f"CREATE OR REPLACE TEMP TABLE {RESULT} AS SELECT * FROM segment_result_arrow")
    connection.unregister("segment_result_arrow")
    return runs


def _qualified_counts(connection: duckdb.DuckDBPyConnection, store: Path, columns: Mapping[str, str],
                      carried: bool = False) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Per segment, the qualifying profiles, in total and by primary-identity namespace, in one grouped
    pass over the result (which carries each profile's namespace, or is joined with it)."""
    counted = [exp.alias_(exp.func("count_if", exp.column(column, table="r", quoted=True)), f"n{index}")
               for index, column in enumerate(columns.values())]
    if carried:
        namespace = exp.column(PRIMARY_NAMESPACE, table="r", quoted=True)
        query = (exp.select(namespace, *counted).from_(exp.alias_(exp.to_table(RESULT), "r", table=True))
                 .group_by(namespace.copy()))
    else:
        query = (exp.select(exp.column("namespace", table="ns"), *counted)
                 .from_(exp.alias_(exp.to_table(RESULT), "r", table=True))
                 .join(_namespaces(store).subquery("ns"), using=["_profile_id"], join_type="left")
                 .group_by(exp.column("namespace", table="ns")))
    qualified = dict.fromkeys(columns, 0)
    by_namespace: dict[str, dict[str, int]] = {segment_id: {} for segment_id in columns}
    for namespace, *numbers in connection.execute(query.sql("duckdb")).fetchall():
        for segment_id, number in zip(columns, numbers, strict=True):
            qualified[segment_id] += int(number)
            if number and namespace is not None:
                by_namespace[segment_id][namespace] = int(number)
    return qualified, {s: dict(sorted(counts.items())) for s, counts in by_namespace.items()}


def _namespaces(store: Path) -> exp.Select:
    """``_profile_id, namespace`` of every profile of ``store``: the primary-identity namespace the build
    stored, or, for a store without that column, worked out from ``identityMap``."""
    profiles = store / PROFILES_FILE
    stored = PRIMARY_NAMESPACE in pq.read_schema(profiles).names
    namespace = exp.column(PRIMARY_NAMESPACE, quoted=True) if stored else primary_namespace()
    return exp.select(exp.column("_profile_id"), exp.alias_(namespace, "namespace")).from_(
        exp.func("read_parquet", exp.Literal.string(str(profiles))))


def primary_namespaces(store: Path, qualified: pa.Table) -> dict[str, dict[str, int]]:
    """Per segment, qualifying profiles (``segment_id, _profile_id`` pairs) counted by the namespace of
    their primary identity (see ``_namespaces``)."""
    if qualified.num_rows == 0:
        return {}
    namespaces = _namespaces(store)
    with duckdb.connect() as con:
        con.register("qualified", qualified)
        rows = con.sql(
            f"SELECT q.segment_id, ns.namespace, count(*) AS n FROM qualified q "
            f"JOIN ({namespaces.sql('duckdb')}) ns USING (_profile_id) GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    counts: dict[str, dict[str, int]] = {}
    for segment_id, namespace, n in rows:
        counts.setdefault(segment_id, {})[namespace] = int(n)
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
