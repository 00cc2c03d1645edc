"""Fire times of Quartz expressions, checked against the calendar (all UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from openseg.scheduling.cron import QuartzCron


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fires(expression: str, start: datetime, end: datetime) -> list[datetime]:
    return list(QuartzCron.parse(expression).fires_between(start, end))


def days(expression: str, year: int, months: range = range(1, 13)) -> list[tuple[int, int]]:
    """The (month, day) of each fire in the given months of a year."""
    start, end = (
        at(year, months.start, 1) - timedelta(seconds=1),
        at(year, months.stop - 1, 28) + timedelta(days=4),
    )
    return [(fire.month, fire.day) for fire in fires(expression, start, end) if fire.month in months]


def test_last_friday_of_each_month_at_10_15() -> None:
    got = fires("0 15 10 ? * 6L", at(2024, 1, 1), at(2024, 12, 31, 23, 59, 59))

    assert got == [
        at(2024, 1, 26, 10, 15),
        at(2024, 2, 23, 10, 15),  # leap February: the 29th is a Thursday
        at(2024, 3, 29, 10, 15),
        at(2024, 4, 26, 10, 15),
        at(2024, 5, 31, 10, 15),
        at(2024, 6, 28, 10, 15),
        at(2024, 7, 26, 10, 15),
        at(2024, 8, 30, 10, 15),
        at(2024, 9, 27, 10, 15),
        at(2024, 10, 25, 10, 15),
        at(2024, 11, 29, 10, 15),
        at(2024, 12, 27, 10, 15),
    ]


def test_last_friday_can_be_the_leap_day() -> None:
    cron = QuartzCron.parse("0 15 10 ? * FRIL")

    assert cron.next_fire_after(at(2036, 2, 1)) == at(2036, 2, 29, 10, 15)
    assert cron.next_fire_after(at(2036, 2, 29, 10, 15)) == at(2036, 3, 28, 10, 15)


def test_third_friday() -> None:
    assert days("0 0 9 ? * 6#3", 2024, range(1, 7)) == [(1, 19), (2, 16), (3, 15), (4, 19), (5, 17), (6, 21)]


def test_fifth_friday_skips_months_with_four() -> None:
    assert days("0 0 9 ? * FRI#5", 2024) == [(3, 29), (5, 31), (8, 30), (11, 29)]


def test_day_of_week_counts_from_sunday() -> None:
    assert days("0 0 9 ? * 1", 2024, range(1, 2)) == [(1, 7), (1, 14), (1, 21), (1, 28)]
    assert days("0 0 9 ? * 7", 2024, range(1, 2)) == [(1, 6), (1, 13), (1, 20), (1, 27)]
    assert days("0 0 9 ? * 2#1", 2024, range(1, 3)) == [(1, 1), (2, 5)]


def test_last_weekday_of_month() -> None:
    assert days("0 0 12 LW * ?", 2024) == [
        (1, 31),
        (2, 29),
        (3, 29),  # the 31st is a Sunday
        (4, 30),
        (5, 31),
        (6, 28),  # the 30th is a Sunday
        (7, 31),
        (8, 30),  # the 31st is a Saturday
        (9, 30),
        (10, 31),
        (11, 29),  # the 30th is a Saturday
        (12, 31),
    ]


def test_nearest_weekday_to_the_15th() -> None:
    assert days("0 0 12 15W * ?", 2024) == [
        (1, 15),
        (2, 15),
        (3, 15),
        (4, 15),
        (5, 15),
        (6, 14),  # Saturday -> Friday
        (7, 15),
        (8, 15),
        (9, 16),  # Sunday -> Monday
        (10, 15),
        (11, 15),
        (12, 16),
    ]


def test_nearest_weekday_stays_inside_the_month() -> None:
    # June 2024 starts on a Saturday: Quartz moves to Monday the 3rd, not back into May.
    assert days("0 0 12 1W * ?", 2024, range(6, 7)) == [(6, 3)]
    # September 2024 starts on a Sunday: Monday the 2nd.
    assert days("0 0 12 1W * ?", 2024, range(9, 10)) == [(9, 2)]
    # November 2025 ends on Sunday the 30th: Friday the 28th, not Monday in December.
    assert days("0 0 12 30W * ?", 2025, range(11, 12)) == [(11, 28)]


def test_nearest_weekday_to_a_day_the_month_lacks_does_not_fire() -> None:
    assert days("0 0 12 31W * ?", 2024) == [(1, 31), (3, 29), (5, 31), (7, 31), (8, 30), (10, 31), (12, 31)]


def test_last_day_and_offsets_from_it() -> None:
    assert days("0 0 12 L * ?", 2024, range(1, 5)) == [(1, 31), (2, 29), (3, 31), (4, 30)]
    assert days("0 0 12 L * ?", 2026, range(2, 3)) == [(2, 28)]
    assert days("0 0 12 L-3 * ?", 2024, range(1, 5)) == [(1, 28), (2, 26), (3, 28), (4, 27)]
    assert days("0 0 12 L-3 * ?", 2026, range(2, 3)) == [(2, 25)]
    # L-3W: nearest weekday to three days before the end (Jan 28 and Apr 27 2024 are weekend days).
    assert days("0 0 12 L-3W * ?", 2024, range(1, 5)) == [(1, 29), (2, 26), (3, 28), (4, 26)]
    # L-30 is the 1st of 31-day months; shorter months have no such day.
    assert days("0 0 12 L-30 * ?", 2024) == [(1, 1), (3, 1), (5, 1), (7, 1), (8, 1), (10, 1), (12, 1)]


def test_names_ranges_and_steps() -> None:
    got = fires("0 0/30 9-10 ? JAN,jul MON-WED", at(2024, 1, 1), at(2024, 1, 2, 23))

    assert got == [
        at(2024, 1, 1, 9, 0),
        at(2024, 1, 1, 9, 30),
        at(2024, 1, 1, 10, 0),
        at(2024, 1, 1, 10, 30),
        at(2024, 1, 2, 9, 0),
        at(2024, 1, 2, 9, 30),
        at(2024, 1, 2, 10, 0),
        at(2024, 1, 2, 10, 30),
    ]
    assert QuartzCron.parse("0 0 9 ? JAN,JUL MON-WED").next_fire_after(at(2024, 1, 31, 10)) == at(
        2024, 7, 1, 9
    )


def test_wrapping_weekday_range() -> None:
    assert days("0 0 9 ? * FRI-MON", 2024, range(1, 2))[:4] == [(1, 1), (1, 5), (1, 6), (1, 7)]


def test_year_field() -> None:
    cron = QuartzCron.parse("0 0 0 29 2 ? 2024-2032")

    assert list(cron.fires_between(at(2020, 1, 1), at(2099, 1, 1))) == [
        at(2024, 2, 29),
        at(2028, 2, 29),
        at(2032, 2, 29),
    ]
    assert cron.next_fire_after(at(2032, 2, 29)) is None
    assert cron.last_fire_at_or_before(at(2099, 1, 1)) == at(2032, 2, 29)
    assert cron.last_fire_at_or_before(at(2024, 2, 28)) is None


def test_next_fire_is_strictly_after() -> None:
    cron = QuartzCron.parse("0 0 1 * * ?")

    assert cron.next_fire_after(at(2024, 5, 1, 0, 59, 59)) == at(2024, 5, 1, 1)
    assert cron.next_fire_after(at(2024, 5, 1, 1)) == at(2024, 5, 2, 1)
    assert cron.next_fire_after(at(2024, 5, 1, 0, 59, 59) + timedelta(microseconds=999_999)) == at(
        2024, 5, 1, 1
    )
    assert cron.next_fire_after(at(2024, 5, 1, 1) + timedelta(microseconds=1)) == at(2024, 5, 2, 1)


def test_last_fire_includes_the_moment_itself() -> None:
    cron = QuartzCron.parse("0 0 1 * * ?")

    assert cron.last_fire_at_or_before(at(2024, 5, 1, 1)) == at(2024, 5, 1, 1)
    assert cron.last_fire_at_or_before(at(2024, 5, 1, 1) + timedelta(microseconds=5)) == at(2024, 5, 1, 1)
    assert cron.last_fire_at_or_before(at(2024, 5, 1, 0, 59, 59)) == at(2024, 4, 30, 1)


def test_fires_between_excludes_start_and_includes_end() -> None:
    got = fires("0 0 1 * * ?", at(2024, 5, 1, 1), at(2024, 5, 3, 1))

    assert got == [at(2024, 5, 2, 1), at(2024, 5, 3, 1)]


def test_other_time_zones_are_read_in_utc() -> None:
    paris_summer = timezone(timedelta(hours=2))
    cron = QuartzCron.parse("0 0 1 * * ?")

    fire = cron.next_fire_after(datetime(2024, 5, 1, 2, 30, tzinfo=paris_summer))  # 00:30 UTC

    assert fire == at(2024, 5, 1, 1)
    assert fire is not None and fire.tzinfo is UTC


def test_naive_datetimes_are_refused() -> None:
    cron = QuartzCron.parse("0 0 1 * * ?")

    with pytest.raises(ValueError, match="must be timezone-aware"):
        cron.next_fire_after(datetime(2024, 5, 1))
    with pytest.raises(ValueError, match="must be timezone-aware"):
        cron.last_fire_at_or_before(datetime(2024, 5, 1))


def test_no_fire_outside_quartz_years() -> None:
    daily = QuartzCron.parse("0 0 0 * * ?")
    last_weekday = QuartzCron.parse("0 0 0 LW * ?")  # our own calendar walk, not croniter

    for cron in (daily, last_weekday):
        assert cron.next_fire_after(at(2099, 12, 31, 12)) is None
        assert cron.next_fire_after(at(2150, 1, 1)) is None
        assert cron.last_fire_at_or_before(at(1969, 12, 31, 23, 59, 59)) is None
    assert daily.next_fire_after(at(1900, 1, 1)) == at(1970, 1, 1)
    assert last_weekday.next_fire_after(at(1900, 1, 1)) == at(1970, 1, 30)  # Jan 31 1970: Saturday
    assert daily.last_fire_at_or_before(at(2150, 1, 1)) == at(2099, 12, 31)
    assert last_weekday.last_fire_at_or_before(at(2150, 1, 1)) == at(2099, 12, 31)  # a Thursday
