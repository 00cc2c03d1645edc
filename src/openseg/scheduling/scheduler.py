"""The scheduler: active schedules fire at their time and create their job, exactly once.

A fire is claimed in the same unit of work that creates its job (``ScheduleRepository.active`` holds
row locks on PostgreSQL, ``claim_fire`` is a conditional write everywhere), so several workers never
fire one schedule twice and a crash leaves either both or neither. A fire missed while nothing was
running is owed once (``timing.plan_fire``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from openseg.errors import OpensegError
from openseg.scheduling.model import Schedule, to_ms
from openseg.scheduling.ports import SchedulingUnitOfWork, UnitOfWorkSource
from openseg.scheduling.schedules import check_policy_guardrail
from openseg.scheduling.timing import utc_now

__all__ = ["tick"]

log = logging.getLogger("openseg.scheduler")


def tick(source: UnitOfWorkSource, now: datetime | None = None) -> list[str]:
    """Fire every active schedule that is due at ``now``, in one unit of work.

    Args:
        source: Opens the unit of work: the Services container (the worker's periodic work gets it).
        now: The current time; the system clock when omitted.

    Returns:
        The ids of the jobs created.
    """
    now = now or utc_now()
    created: list[str] = []
    with source.uow() as uow:
        for schedule in uow.schedules.active():
            job_id = _fire(uow, schedule, now)
            if job_id is not None:
                created.append(job_id)
        uow.commit()
    return created


def _fire(uow: SchedulingUnitOfWork, schedule: Schedule, now: datetime) -> str | None:
    """Claim the fire due at ``now``, if any, and start its job; returns the job id."""
    plan = schedule.plan(now)
    schedule = replace(schedule, next_run=to_ms(plan.next_run))
    due, ran_at = to_ms(plan.due), to_ms(now)
    # Only one unit of work can move last_fire to this time: another worker's claim (or, on SQLite,
    # the losing writer) finds nothing left to claim.
    if due is None or not uow.schedules.claim_fire(schedule.id, fire=due, ran_at=ran_at):
        uow.schedules.update(schedule)
        return None
    schedule = replace(schedule, last_fire=due, last_run=ran_at)
    try:
        check_policy_guardrail(uow, schedule.sandbox_id)
        job_id = _start(uow, schedule)
    except OpensegError as exc:
        # The fire is spent (it is not retried in a loop); the reason is kept on the schedule.
        log.warning("schedule %s could not start its job: %s", schedule.id, exc.detail)
        uow.schedules.update(replace(schedule, last_job_id=f"error: {exc.detail}"[:64]))
        return None
    uow.schedules.update(replace(schedule, last_job_id=job_id))
    return job_id


def _start(uow: SchedulingUnitOfWork, schedule: Schedule) -> str:
    if schedule.type == "batch_segmentation":
        return uow.jobs.start_segment_job(schedule, list(schedule.properties.get("segments", [])),
                                          origin=f"schedule:{schedule.id}")
    return uow.jobs.start_export(schedule, schedule.properties)
