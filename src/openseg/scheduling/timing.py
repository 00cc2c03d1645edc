"""When a schedule fires: the pure decisions behind the scheduler loop.

The scheduler asks one question per schedule and tick: given the expression, when the schedule
took its current form, when it last fired and what time it is, which fire is due now and when is
the next? Nothing here reads the clock; the loop passes ``now`` (from :func:`utc_now` in
production, from a fake clock in tests), which makes restarts and outages easy to simulate.

A fire missed while the server was down runs once, not once per missed period: only the latest
scheduled time up to ``now`` is due, and recording it as the last fire settles the earlier ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from openseg.scheduling.cron import QuartzCron

__all__ = ["Clock", "FirePlan", "plan_fire", "utc_now"]

Clock = Callable[[], datetime]
"""A source of the current time; the scheduler loop takes one so tests can inject theirs."""


def utc_now() -> datetime:
    """The system clock in UTC: the default :data:`Clock`, for the outer edge only."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class FirePlan:
    """What a schedule should do at ``now``.

    Attributes:
        due: The scheduled time to fire for now (record it as the last fire before starting the
            job), or ``None`` when nothing is due.
        next_run: The first scheduled time after ``now``, or ``None`` when the expression fires no
            more.
    """

    due: datetime | None
    next_run: datetime | None


def plan_fire(
    cron: QuartzCron, *, created_at: datetime, last_fire: datetime | None, now: datetime
) -> FirePlan:
    """Decide which fire of a schedule is due at ``now`` and when the next one is.

    Only fires after both ``created_at`` and ``last_fire`` count, so a schedule never fires for a
    time before it existed, and never twice for one scheduled time.

    Args:
        cron: The schedule's expression.
        created_at: When the schedule took its current form: its creation, or the latest change of
            its expression or activation if the caller wants fires counted from then.
        last_fire: The scheduled time of the last recorded fire, or ``None`` if it never fired.
        now: The current time.

    Returns:
        The due fire (the latest scheduled time at or before ``now`` that is after ``created_at``
        and ``last_fire``) and the next run. All datetimes are timezone-aware; results are UTC.
    """
    since = created_at if last_fire is None else max(created_at, last_fire)
    latest = cron.last_fire_at_or_before(now)
    due = latest if latest is not None and latest > since else None
    return FirePlan(due=due, next_run=cron.next_fire_after(max(now, since)))
