"""What a changed expression would do to a segment's membership, computed without writing anything.

The proposed expression runs as the one-pass plan of a job of that segment alone, over the same profile
store, and its result is compared, in the engine, with the membership the job's diff would compare it with:
the membership store's current bits with per-profile changes folded in (``MembershipDiffer``'s previous
membership). So a job run right after the change is saved reports as ``realized`` and ``exited`` the
numbers a dry run reports as ``wouldEnter`` and ``wouldExit`` (the data and the evaluation time aside).
Only counts and a few profile ids leave the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
from sqlglot import exp

from openseg.pql import ast
from openseg.profiles.store import EVENTS_FILE, PROFILES_FILE, events_source
from openseg.segmentation import membership
from openseg.segmentation.planner import arrow_paths, plan_segments

if TYPE_CHECKING:
    from openseg.engines.base import Engine, Workspace

#: Profile ids listed per direction.
SAMPLES = 10
#: Relations the dry run creates in its workspace.
RESULT, MOVES = "dry_run_result", "dry_run_moves"
#: The relation ``inSegment`` reads (docs/architecture.md, "PQL evaluation contract"), which
#: ``MembershipDiffer.plan_relation`` defines: the current membership with per-profile changes folded in.
MEMBERSHIP = "membership"
_ID = "_profile_id"


@dataclass(frozen=True)
class DryRun:
    """The effect of a proposed expression on a segment's current membership.

    Attributes:
        current: Profiles in the segment now.
        proposed: Profiles the proposed expression qualifies.
        would_enter: Profiles it qualifies that are not in the segment.
        would_exit: Profiles in the segment it does not qualify.
        would_stay: Profiles in the segment it still qualifies.
        enter: Some of those who would enter (the smallest profile ids).
        exit: Some of those who would exit.
    """

    current: int
    proposed: int
    would_enter: int
    would_exit: int
    would_stay: int
    enter: tuple[str, ...]
    exit: tuple[str, ...]


def dry_run(engine: Engine, store: Path, segment_id: str, expr: ast.Expr, as_of: datetime,
            members: membership.MembershipStore, state: membership.State | None, samples: int = SAMPLES) -> DryRun:
    """Evaluate ``expr`` as segment ``segment_id`` over ``store`` and compare it with the current membership.

    Args:
        engine: Runs the plan and the comparison.
        store: The profile store directory (a resolved build).
        segment_id: The segment whose membership the expression would change.
        expr: The proposed expression (checked).
        as_of: Evaluation time.
        members: The membership store of the segment's merge policy.
        state: Its current state (None: no membership yet).
        samples: Profile ids listed per direction.

    Returns:
        The counts and samples; nothing is written.
    """
    has_path = arrow_paths(pq.read_schema(store / PROFILES_FILE), pq.read_schema(store / EVENTS_FILE))
    # Inside reading(): no job lock is held, and the membership change files the differ lists must stay.
    with members.reading(), engine.workspace() as workspace:
        workspace.register("profiles", str(store / PROFILES_FILE))
        workspace.register("events", events_source(store))
        # The differ registers the previous membership exactly as a job's diff reads it; it is never staged.
        differ = membership.MembershipDiffer(workspace, members, state, [segment_id], "dry-run")
        relation = differ.plan_relation()
        plan = plan_segments([(segment_id, expr)], as_of=as_of, dialect=engine.dialect, membership=relation,
                             has_path=has_path)
        workspace.materialize(RESULT, plan.query)
        qualified = (exp.select(exp.column(_ID)).from_(RESULT)
                     .where(exp.column(plan.columns[segment_id], quoted=True)))
        member = relation.member(segment_id, "m") if relation is not None else None
        current = (exp.select(exp.column(_ID, table="m")).from_(exp.alias_(exp.to_table(MEMBERSHIP), "m", table=True))
                   .where(member) if member is not None else None)
        return _compare(workspace, qualified, current, samples)


def _compare(workspace: Workspace, qualified: exp.Select, current: exp.Select | None, samples: int) -> DryRun:
    """Counts and samples of the profiles in ``qualified`` (the proposal) and ``current`` (the members)."""
    if current is None:  # nobody is in the segment yet
        current = exp.select(exp.column(_ID)).from_(qualified.subquery("q")).where(exp.false())
    q, c = exp.column(_ID, table="q"), exp.column(_ID, table="c")
    workspace.materialize(MOVES, exp.select(
        exp.alias_(exp.func("coalesce", q, c), _ID),
        exp.alias_(q.is_(exp.null()).not_(), "qualifies"),
        exp.alias_(c.is_(exp.null()).not_(), "is_member"),
    ).from_(qualified.subquery("q")).join(current.subquery("c"), on=q.eq(c), join_type="full outer"))
    qualifies, member = exp.column("qualifies"), exp.column("is_member")
    enter, leave = exp.and_(qualifies, exp.not_(member)), exp.and_(member, exp.not_(qualifies))
    counts = workspace.fetch(exp.select(*(exp.alias_(exp.func("count_if", condition), name) for name, condition in (
        ("current", member), ("proposed", qualifies), ("enter", enter), ("exit", leave),
        ("stay", exp.and_(qualifies, member))))).from_(MOVES)).to_pylist()[0]

    def sample(condition: exp.Expr) -> tuple[str, ...]:
        ids = workspace.fetch(exp.select(exp.column(_ID)).from_(MOVES).where(condition)
                              .order_by(exp.column(_ID)).limit(samples))
        return tuple(str(value) for value in ids.column(0).to_pylist())

    number = {name: int(value or 0) for name, value in counts.items()}
    return DryRun(current=number["current"], proposed=number["proposed"], would_enter=number["enter"],
                  would_exit=number["exit"], would_stay=number["stay"], enter=sample(enter), exit=sample(leave))
