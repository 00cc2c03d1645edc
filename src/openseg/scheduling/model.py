"""A schedule as the scheduling services see it: a plain value, not a database row.

Why a dataclass of its own rather than ``store.models.Schedule`` handed through the repository: the
ORM class imports SQLAlchemy, and the ``scheduling-no-infrastructure`` import contract forbids reaching
SQLAlchemy even for type hints. A frozen value also keeps writes explicit: a service builds the changed
schedule with :func:`dataclasses.replace` and hands it to ``ScheduleRepository.update``, so nothing is
written by touching an attribute, nothing lazy-loads after its unit of work has closed, and an in-memory
fake is a dictionary. The price is one mapping (field for field, same names) in
``store/repositories.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, overload

from openseg.clock import ms_to_datetime
from openseg.scheduling.cron import QuartzCron
from openseg.scheduling.timing import FirePlan, plan_fire

__all__ = ["Schedule", "to_ms"]


@overload
def to_ms(moment: datetime) -> int: ...
@overload
def to_ms(moment: None) -> None: ...
@overload
def to_ms(moment: datetime | None) -> int | None: ...
def to_ms(moment: datetime | None) -> int | None:
    """Milliseconds since the epoch, as the store and AEP's ``lastRun``/``nextRun`` keep times."""
    return None if moment is None else int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Schedule:
    """One UPS schedule (``/config/schedules``): what to run, when, and what it did last.

    Times are milliseconds since the epoch. ``effective_from`` is when the current expression and state
    took effect: fires before it are not owed. ``last_fire`` is the scheduled time of the last fire
    claimed, ``last_run`` the wall time it was claimed at, ``last_job_id`` the job it created (or
    ``"error: ..."`` when it could not start one).
    """

    id: str
    org_id: str
    sandbox_id: str
    name: str
    type: str
    properties: dict[str, Any] = field(hash=False)
    schedule: str
    state: str
    effective_from: int
    created: int
    updated: int
    last_fire: int | None = None
    last_run: int | None = None
    last_job_id: str | None = None
    next_run: int | None = None

    @property
    def cron(self) -> QuartzCron:
        return QuartzCron.parse(self.schedule)

    def plan(self, now: datetime) -> FirePlan:
        """The fire owed at ``now`` (counted from ``effective_from`` and ``last_fire``) and the next run."""
        return plan_fire(self.cron, created_at=ms_to_datetime(self.effective_from),
                         last_fire=None if self.last_fire is None else ms_to_datetime(self.last_fire), now=now)

    def next_run_after(self, now: int) -> int | None:
        """When an active schedule runs next after ``now``; ``None`` while it is inactive."""
        if self.state != "active":
            return None
        return to_ms(self.cron.next_fire_after(ms_to_datetime(now)))
