"""AEP's once-a-day rule for schedules, and the frequency label of list items."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from openseg.scheduling.cron import CronError, QuartzCron, frequency

DAY = timedelta(hours=24)


def brute_force_max_in_24h(cron: QuartzCron, start: datetime, days: int) -> int:
    """The most fires in any period [t, t + 24h) over a stretch of days, by counting."""
    fires = list(cron.fires_between(start, start + days * DAY))
    # The busiest period can be taken to start at a fire.
    return max(sum(1 for other in fires if fire <= other < fire + DAY) for fire in fires)


@pytest.mark.parametrize(
    ("expression", "most"),
    [
        ("0 0 1 * * ?", 1),
        ("0 0 0 1,2 * ?", 1),  # the 1st and 2nd at midnight: exactly 24 hours apart
        ("0 0 23 1,2 * ?", 1),
        ("0 0 12 ? * MON-FRI", 1),
        ("0 15 10 ? * 6L", 1),
        ("0 0 1,23 * * ?", 2),  # 22 hours apart (and 2 apart across midnight)
        ("0,30 0 0 1 * ?", 2),
        ("0 0/30 * * * ?", 48),
        ("0 0 9-17 ? * MON-FRI", 9),
    ],
)
def test_max_fires_in_24h_is_exact(expression: str, most: int) -> None:
    cron = QuartzCron.parse(expression)

    assert cron.max_fires_in_24h() == most
    assert brute_force_max_in_24h(cron, datetime(2024, 1, 1, tzinfo=UTC), days=40) == most


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 1 * * ?",
        "0 0 0 1,2 * ?",
        "59 59 23 ? * *",
        "0 15 10 ? * 6L",
        "0 0 0 LW * ? 2030",
        "0 30 6 ? * 2#1",
    ],
)
def test_at_most_daily_schedules_pass(expression: str) -> None:
    QuartzCron.parse(expression).assert_at_most_daily()


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        (
            "0 0/30 * * * ?",
            (
                "it fires 48 times within 24 hours (at 00:00:00, 00:30:00, 01:00:00 and 45 more, UTC);"
                " schedules may run at most once a day"
            ),
        ),
        (
            "0 0 1,23 * * ?",
            (
                "it fires 2 times within 24 hours (at 01:00:00 and 23:00:00, UTC); schedules may run at"
                " most once a day"
            ),
        ),
        (
            "0,30 0 0 1 * ?",
            (
                "it fires 2 times within 24 hours (at 00:00:00 and 00:00:30, UTC); schedules may run at"
                " most once a day"
            ),
        ),
        (
            "0 0 0-2 ? * 1",
            (
                "it fires 3 times within 24 hours (at 00:00:00, 01:00:00 and 02:00:00, UTC); schedules may"
                " run at most once a day"
            ),
        ),
        (
            "* * * * * ?",
            (
                "it fires 86400 times within 24 hours (at 00:00:00, 00:00:01, 00:00:02 and 86397 more,"
                " UTC); schedules may run at most once a day"
            ),
        ),
    ],
)
def test_more_than_daily_schedules_are_refused(expression: str, reason: str) -> None:
    with pytest.raises(CronError) as caught:
        QuartzCron.parse(expression).assert_at_most_daily()

    assert str(caught.value) == f"cron expression '{expression}': {reason}"
    assert caught.value.field is None


@pytest.mark.parametrize(
    ("expression", "label"),
    [
        ("0 0 1 * * ?", "daily"),
        ("0 0 1 ? * *", "daily"),
        ("0 0 1 ? * SUN-SAT", "daily"),
        ("0 0 1 ? * MON", "weekly"),
        ("0 0 1 1 * ?", "monthly"),
        ("0 0 1 L * ?", "monthly"),
        ("0 0 1 LW * ?", "monthly"),
        ("0 0 1 15W * ?", "monthly"),
        ("0 15 10 ? * 6L", "monthly"),
        ("0 0 1 ? * 6#3", "monthly"),
        ("0 0 1 25 DEC ?", "yearly"),
        ("0 0 1 ? NOV 5#4", "yearly"),
        ("0 0 1 ? * MON-FRI", "custom"),
        ("0 0 1 1,15 * ?", "custom"),
        ("0 0 1 * JAN-MAR ?", "custom"),
        ("0 0 1 * * ? 2030", "custom"),
        ("0 0 1,13 * * ?", "custom"),
    ],
)
def test_frequency_labels(expression: str, label: str) -> None:
    assert frequency(expression) == label
    assert frequency(QuartzCron.parse(expression)) == label


def test_frequency_of_malformed_text_raises() -> None:
    with pytest.raises(CronError, match="exactly one of day-of-month and day-of-week"):
        frequency("0 0 1 * * *")
