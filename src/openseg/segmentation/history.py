"""Membership over time (openseg extension): who was in a segment at T, and one profile's timeline.

History files hold every entry and exit of every job; only jobs that SUCCEEDED count, so the files of a
job interrupted before it published are never read as facts.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlglot import exp

from openseg.clock import rfc3339
from openseg.profiles.entities import locate
from openseg.profiles.ports import ProfileAccessServices, ProfilesUnitOfWork
from openseg.scope import Scope
from openseg.segmentation import membership
from openseg.segmentation.jobs import PUBLISHED
from openseg.segmentation.ports import SegmentJobRepository
from openseg.segmentation.statements import literal, statement

if TYPE_CHECKING:
    from openseg.engines.base import Engine


class HistoryUnitOfWork(ProfilesUnitOfWork, Protocol):
    """A profile unit of work that reads segment jobs too (locating a profile reads the profile store)."""

    @property
    def segment_jobs(self) -> SegmentJobRepository: ...


class HistoryServices(ProfileAccessServices, Protocol):
    """What membership history takes from the container (``openseg.container.Services`` is one)."""

    def uow(self) -> HistoryUnitOfWork: ...

    def reader(self) -> Engine: ...


def _succeeded_jobs(services: HistoryServices, sandbox_id: str) -> list[str]:
    """The jobs whose membership was published: those that SUCCEEDED, deleted since or not."""
    with services.uow() as uow:
        return sorted(uow.segment_jobs.ids_in(sandbox_id, PUBLISHED))


def _history(services: HistoryServices, sandbox_id: str, policy_id: str, query: exp.Query) -> list[dict[str, Any]]:
    """``query``'s rows over the relation ``history``: every entry and exit of the policy's membership that
    counts, those of jobs that SUCCEEDED and of per-profile writes."""
    store = membership.store_for(services.settings.home, sandbox_id, policy_id)
    jobs = _succeeded_jobs(services, sandbox_id)
    with store.reading():  # the change files it lists stay until the query has read them
        history = store.history(jobs)
        if history is None:
            return []
        events, tables = history
        rows: list[dict[str, Any]] = services.reader().run(_with_history(query, events), tables).to_pylist()
        return rows


def members_at(services: HistoryServices, scope: Scope, segment_id: str, policy_id: str, at: datetime, *,
               start: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Profiles in the segment at ``at``: their last entry or exit up to then was an entry."""
    query = statement(f"""
        WITH latest AS (
            SELECT _profile_id, arg_max(event, "at") AS event,
                   max("at") FILTER (WHERE event = 'entered') AS entered_at
            FROM history
            WHERE segment_id = {literal(segment_id)} AND "at" <= {literal(at)}
            GROUP BY _profile_id
        )
        SELECT _profile_id, entered_at, count(*) OVER () AS total FROM latest
        WHERE event = 'entered' ORDER BY _profile_id LIMIT {int(limit)} OFFSET {int(start)}
    """)
    rows = _history(services, scope.sandbox_id, policy_id, query)
    total = int(rows[0]["total"]) if rows else 0
    return [{"entityId": row["_profile_id"], "enteredAt": rfc3339(row["entered_at"])} for row in rows], total


def profile_of(services: HistoryServices, scope: Scope, namespace: str, identity: str) -> tuple[str, str]:
    """(profile id, merge policy id) of an identity under the sandbox's default merge policy."""
    located = locate(services, scope, namespace, identity)
    return located.profile_id, located.policy.id


def timeline(services: HistoryServices, scope: Scope, profile_id: str, policy_id: str) -> list[dict[str, Any]]:
    """Every entry and exit of one profile, oldest first, paired into stays per segment."""
    query = statement(f'SELECT segment_id, event, "at", job_id FROM history WHERE _profile_id = {literal(profile_id)} '
                      'ORDER BY "at", segment_id')
    rows = [(r["segment_id"], r["event"], r["at"], r["job_id"])
            for r in _history(services, scope.sandbox_id, policy_id, query)]
    stays: list[dict[str, Any]] = []
    open_stays: dict[str, dict[str, Any]] = {}
    for segment_id, event, at, job_id in rows:
        if event == "entered":
            stay = {"segmentId": segment_id, "enteredAt": rfc3339(at), "exitedAt": None,
                    "enteredByJob": job_id, "exitedByJob": None}
            open_stays[segment_id] = stay
            stays.append(stay)
        elif segment_id in open_stays:
            open_stays.pop(segment_id).update(exitedAt=rfc3339(at), exitedByJob=job_id)
    return stays


def _with_history(query: exp.Query, events: exp.Query) -> exp.Query:
    """``query`` reading the history as the relation ``history`` (its first CTE, so others may read it)."""
    query = query.with_("history", as_=events)
    with_ = query.args["with_"]
    with_.set("expressions", [with_.expressions[-1], *with_.expressions[:-1]])
    return query
