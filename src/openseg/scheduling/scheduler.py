"""The scheduler: active schedules fire at their time and create their job, exactly once.

A fire is recorded in the same transaction that creates its job, under a row lock on PostgreSQL
(``FOR UPDATE SKIP LOCKED``), so several workers never fire one schedule twice and a crash leaves
either both or neither. A fire missed while nothing was running is owed once (``plan_fire``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, or_, select, update

from openseg.catalog.service import Scope
from openseg.errors import OpensegError
from openseg.scheduling.schedules import check_policy_guardrail, due_fire
from openseg.scheduling.timing import utc_now
from openseg.segmentation.jobs import create_job
from openseg.store.models import Schedule

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from openseg.services import Services

log = logging.getLogger("openseg.scheduler")

#: Creates the job of an ``export`` schedule from its stored request; returns the job id.
ExportStarter = Callable[["Session", Scope, Any], str]


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def tick(services: Services, now: datetime | None = None) -> list[str]:
    """Fire every active schedule that is due at ``now``; returns the ids of the jobs created."""
    now = now or utc_now()
    created: list[str] = []
    with services.db.session() as session:
        query = select(Schedule).where(Schedule.state == "active").order_by(Schedule.id)
        if services.db.is_postgres:
            query = query.with_for_update(skip_locked=True)
        for schedule in session.scalars(query):
            due, next_run = due_fire(schedule, now)
            schedule.next_run = _ms(next_run)
            if due is None:
                continue
            scope = Scope(schedule.org_id, schedule.sandbox_id)
            # Claim the fire: only one transaction can move last_fire to this time (on SQLite, where
            # there are no row locks, the losing writer finds nothing left to update).
            claimed = cast(CursorResult[Any], session.execute(
                update(Schedule)
                .where(Schedule.id == schedule.id,
                       or_(Schedule.last_fire.is_(None), Schedule.last_fire < _ms(due)))
                .values(last_fire=_ms(due), last_run=_ms(now))
                .execution_options(synchronize_session="fetch")
            )).rowcount
            if claimed != 1:
                continue
            try:
                check_policy_guardrail(session, scope)
                with session.begin_nested():
                    job_id = _start(services, session, scope, schedule)
            except OpensegError as exc:
                # The fire is spent (it is not retried in a loop); the reason is kept on the schedule.
                log.warning("schedule %s could not start its job: %s", schedule.id, exc.detail)
                schedule.last_job_id = f"error: {exc.detail}"[:64]
                continue
            schedule.last_job_id = job_id
            created.append(job_id)
    return created


def _start(services: Services, session: Session, scope: Scope, schedule: Schedule) -> str:
    if schedule.type == "batch_segmentation":
        body = [{"segmentId": s} for s in schedule.properties.get("segments", [])]
        return create_job(session, scope, body, origin=f"schedule:{schedule.id}").id
    if services.export_starter is None:
        raise OpensegError("export schedules need the export service")
    return services.export_starter(session, scope, schedule.properties)
