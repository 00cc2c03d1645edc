"""The scheduler's decisions under an injected clock: due fires, missed fires, restarts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from openseg.scheduling.cron import QuartzCron
from openseg.scheduling.timing import FirePlan, plan_fire, utc_now

DAILY = QuartzCron.parse("0 0 1 * * ?")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@dataclass
class FakeClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class StoredSchedule:
    """What survives a restart: the schedule's row."""

    cron: QuartzCron
    created_at: datetime
    last_fire: datetime | None = None
    runs: list[tuple[datetime, datetime]] = field(default_factory=list)  # (scheduled time, ran at)


def tick(schedule: StoredSchedule, clock: FakeClock) -> FirePlan:
    """One scheduler tick: record the due fire, then 'start' its job."""
    plan = plan_fire(schedule.cron, created_at=schedule.created_at, last_fire=schedule.last_fire, now=clock())
    if plan.due is not None:
        schedule.last_fire = plan.due  # recorded before the job starts, so a restart cannot repeat it
        schedule.runs.append((plan.due, clock()))
    return plan


def run_server(schedule: StoredSchedule, clock: FakeClock, until: datetime, every: timedelta) -> None:
    while clock.now < until:
        tick(schedule, clock)
        clock.now += every


def test_due_fire_and_next_run() -> None:
    plan = plan_fire(DAILY, created_at=at(2024, 5, 1), last_fire=None, now=at(2024, 5, 1, 1, 0, 20))

    assert plan == FirePlan(due=at(2024, 5, 1, 1), next_run=at(2024, 5, 2, 1))


def test_nothing_due_before_the_first_fire() -> None:
    plan = plan_fire(DAILY, created_at=at(2024, 5, 1), last_fire=None, now=at(2024, 5, 1, 0, 59, 59))

    assert plan == FirePlan(due=None, next_run=at(2024, 5, 1, 1))


def test_nothing_due_for_times_before_the_schedule_existed() -> None:
    plan = plan_fire(DAILY, created_at=at(2024, 5, 1, 1, 30), last_fire=None, now=at(2024, 5, 1, 2))

    assert plan == FirePlan(due=None, next_run=at(2024, 5, 2, 1))


def test_a_fire_already_recorded_is_not_due_again() -> None:
    plan = plan_fire(
        DAILY, created_at=at(2024, 5, 1), last_fire=at(2024, 5, 1, 1), now=at(2024, 5, 1, 1, 0, 5)
    )

    assert plan == FirePlan(due=None, next_run=at(2024, 5, 2, 1))


def test_missed_fires_run_once_not_once_per_missed_period() -> None:
    # Down from just after the May 1st fire until noon on May 5th: four fires were missed.
    plan = plan_fire(DAILY, created_at=at(2024, 4, 1), last_fire=at(2024, 5, 1, 1), now=at(2024, 5, 5, 12))

    assert plan == FirePlan(due=at(2024, 5, 5, 1), next_run=at(2024, 5, 6, 1))

    after = plan_fire(DAILY, created_at=at(2024, 4, 1), last_fire=plan.due, now=at(2024, 5, 5, 12, 0, 1))
    assert after == FirePlan(due=None, next_run=at(2024, 5, 6, 1))


def test_a_changed_schedule_counts_fires_from_the_change() -> None:
    # Changed from 01:00 to 00:30 at 09:00 on May 2nd: today's 00:30 had passed before the change.
    changed = QuartzCron.parse("0 30 0 * * ?")

    plan = plan_fire(
        changed, created_at=at(2024, 5, 2, 9), last_fire=at(2024, 5, 2, 1), now=at(2024, 5, 2, 9, 1)
    )

    assert plan == FirePlan(due=None, next_run=at(2024, 5, 3, 0, 30))


def test_a_clock_behind_the_last_fire_fires_nothing() -> None:
    plan = plan_fire(DAILY, created_at=at(2024, 5, 1), last_fire=at(2024, 5, 3, 1), now=at(2024, 5, 2, 12))

    assert plan == FirePlan(due=None, next_run=at(2024, 5, 4, 1))


def test_a_schedule_past_its_last_year_has_no_next_run() -> None:
    once = QuartzCron.parse("0 0 1 1 1 ? 2030")

    assert plan_fire(once, created_at=at(2029, 6, 1), last_fire=None, now=at(2030, 6, 1)) == FirePlan(
        due=at(2030, 1, 1, 1), next_run=None
    )
    assert plan_fire(
        once, created_at=at(2029, 6, 1), last_fire=at(2030, 1, 1, 1), now=at(2031, 1, 1)
    ) == FirePlan(due=None, next_run=None)


def test_daily_schedule_fires_once_a_day_across_a_restart() -> None:
    schedule = StoredSchedule(cron=DAILY, created_at=at(2024, 1, 1))
    clock = FakeClock(at(2024, 1, 1))
    five_minutes = timedelta(minutes=5)

    run_server(schedule, clock, until=at(2024, 1, 3, 0, 30), every=five_minutes)
    clock.now = at(2024, 1, 4, 6)  # down through the fires of January 3rd and 4th; restarted at 06:00
    run_server(schedule, clock, until=at(2024, 1, 7), every=five_minutes)

    assert schedule.runs == [
        (at(2024, 1, 1, 1), at(2024, 1, 1, 1)),
        (at(2024, 1, 2, 1), at(2024, 1, 2, 1)),
        (at(2024, 1, 4, 1), at(2024, 1, 4, 6)),  # the missed fire, once, on start-up
        (at(2024, 1, 5, 1), at(2024, 1, 5, 1)),
        (at(2024, 1, 6, 1), at(2024, 1, 6, 1)),
    ]


def test_a_restart_moments_after_a_fire_does_not_fire_again() -> None:
    schedule = StoredSchedule(cron=DAILY, created_at=at(2024, 1, 1))
    clock = FakeClock(at(2024, 1, 1, 1, 0, 3))

    tick(schedule, clock)
    clock.now += timedelta(seconds=2)  # crashed and restarted; the first tick of the new process
    plan = tick(schedule, clock)

    assert schedule.runs == [(at(2024, 1, 1, 1), at(2024, 1, 1, 1, 0, 3))]
    assert plan == FirePlan(due=None, next_run=at(2024, 1, 2, 1))


def test_last_friday_schedule_over_a_quarter_with_a_long_outage() -> None:
    schedule = StoredSchedule(cron=QuartzCron.parse("0 15 10 ? * 6L"), created_at=at(2024, 1, 1))
    clock = FakeClock(at(2024, 1, 1))
    hourly = timedelta(hours=1)

    run_server(schedule, clock, until=at(2024, 2, 1), every=hourly)
    clock.now = at(2024, 4, 2)  # down for February and March
    run_server(schedule, clock, until=at(2024, 5, 1), every=hourly)

    assert schedule.runs == [
        (at(2024, 1, 26, 10, 15), at(2024, 1, 26, 11)),
        (at(2024, 3, 29, 10, 15), at(2024, 4, 2)),
        (at(2024, 4, 26, 10, 15), at(2024, 4, 26, 11)),
    ]


def test_utc_now_is_aware_and_in_utc() -> None:
    before = datetime.now(UTC)
    now = utc_now()

    assert now.tzinfo is UTC
    assert before <= now <= datetime.now(UTC)
