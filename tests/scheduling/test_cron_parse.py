"""Parsing Quartz cron: what is accepted, and the words of every refusal."""

from __future__ import annotations

import pytest

from openseg.scheduling.cron import CronError, QuartzCron
from openseg.scheduling.cron_days import (
    DaysOfMonth,
    DaysOfWeek,
    EveryDay,
    LastDayOfMonth,
    LastDayOfWeek,
    NearestWeekday,
    NthDayOfWeek,
)


def test_fields_parse_into_quartz_numbered_sets() -> None:
    cron = QuartzCron.parse("  0/20  5-7,59 22-2 ? NOV-FEB MON-FRI  ")

    assert cron.text == "0/20 5-7,59 22-2 ? NOV-FEB MON-FRI"
    assert str(cron) == cron.text
    fields = cron.fields
    assert fields.seconds == {0, 20, 40}
    assert fields.minutes == {5, 6, 7, 59}
    assert fields.hours == {22, 23, 0, 1, 2}  # ranges wrap past the field's end, as in Quartz
    assert fields.months == {11, 12, 1, 2}
    assert fields.years is None
    assert fields.day_rule == DaysOfWeek(frozenset({2, 3, 4, 5, 6}))  # Quartz: MON = 2 … FRI = 6


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("*", set(range(60))),
        ("*/15", {0, 15, 30, 45}),
        ("/15", {0, 15, 30, 45}),
        ("10/20", {10, 30, 50}),
        ("10-30/10", {10, 20, 30}),
        ("50-10/10", {50, 0, 10}),
        ("5-5", {5}),
        ("1,3,5", {1, 3, 5}),
    ],
)
def test_minute_field_shapes(text: str, expected: set[int]) -> None:
    assert QuartzCron.parse(f"0 {text} 1 * * ?").fields.minutes == expected


@pytest.mark.parametrize(
    ("day_of_month", "day_of_week", "rule"),
    [
        ("*", "?", EveryDay()),
        ("?", "*", EveryDay()),
        ("1-31", "?", EveryDay()),
        ("?", "SUN-SAT", EveryDay()),
        ("1,15", "?", DaysOfMonth(frozenset({1, 15}))),
        ("L", "?", LastDayOfMonth()),
        ("L-3", "?", LastDayOfMonth(offset=3)),
        ("LW", "?", LastDayOfMonth(nearest_weekday=True)),
        ("L-2W", "?", LastDayOfMonth(offset=2, nearest_weekday=True)),
        ("15W", "?", NearestWeekday(15)),
        ("?", "1", DaysOfWeek(frozenset({1}))),
        ("?", "sat", DaysOfWeek(frozenset({7}))),
        ("?", "L", DaysOfWeek(frozenset({7}))),  # Quartz: 'L' alone is Saturday
        ("?", "FRI-MON", DaysOfWeek(frozenset({6, 7, 1, 2}))),
        ("?", "6L", LastDayOfWeek(6)),
        ("?", "FRIL", LastDayOfWeek(6)),
        ("?", "6#3", NthDayOfWeek(6, 3)),
        ("?", "fri#3", NthDayOfWeek(6, 3)),
    ],
)
def test_day_fields_parse_into_one_rule(day_of_month: str, day_of_week: str, rule: object) -> None:
    assert QuartzCron.parse(f"0 0 1 {day_of_month} * {day_of_week}").fields.day_rule == rule


def test_month_names_and_year_field() -> None:
    cron = QuartzCron.parse("0 0 1 1 jan,Jul,DEC ? 2025-2027,2030/30")

    assert cron.fields.months == {1, 7, 12}
    assert cron.fields.years == {2025, 2026, 2027, 2030, 2060, 2090}
    assert QuartzCron.parse("0 0 1 1 * ? *").fields.years is None


@pytest.mark.parametrize(
    ("expression", "field", "reason"),
    [
        (
            "0 0 * * *",
            None,
            (
                "a Quartz cron expression has 6 or 7 fields (seconds minutes hours day-of-month month"
                " day-of-week [year]), this one has 5"
            ),
        ),
        (
            "",
            None,
            (
                "a Quartz cron expression has 6 or 7 fields (seconds minutes hours day-of-month month"
                " day-of-week [year]), this one has 0"
            ),
        ),
        (
            "0 0 1 * * * 2030 1",
            None,
            (
                "a Quartz cron expression has 6 or 7 fields (seconds minutes hours day-of-month month"
                " day-of-week [year]), this one has 8"
            ),
        ),
        (
            "0 0 1 * * MON",
            None,
            "specify '?' in exactly one of day-of-month and day-of-week (got '*' and 'MON')",
        ),
        ("0 0 1 ? * ?", None, "specify '?' in exactly one of day-of-month and day-of-week (both are '?')"),
        ("0 0 1 ?,1 * ?", "day-of-month", "day-of-month field '?,1': '?' must stand alone"),
        ("0 0 ? 1 * ?", "hours", "'?' is only allowed in day-of-month or day-of-week, not in hours"),
        (
            "0 0 1 ? * 8",
            "day-of-week",
            "day-of-week field '8' is out of range 1-7 (Quartz counts 1 = SUN … 7 = SAT)",
        ),
        (
            "0 0 1 ? * 0",
            "day-of-week",
            "day-of-week field '0' is out of range 1-7 (Quartz counts 1 = SUN … 7 = SAT)",
        ),
        ("60 0 1 * * ?", "seconds", "seconds field '60' is out of range 0-59"),
        ("0 0-60 1 * * ?", "minutes", "minutes field '60' is out of range 0-59"),
        ("0 0 24 * * ?", "hours", "hours field '24' is out of range 0-23"),
        ("0 0 1 32 * ?", "day-of-month", "day-of-month field '32' is out of range 1-31"),
        ("0 0 1 0W * ?", "day-of-month", "day-of-month field '0' is out of range 1-31"),
        ("0 0 1 1 13 ?", "month", "month field '13' is out of range 1-12"),
        ("0 0 1 1 * ? 1969", "year", "year field '1969' is out of range 1970-2099"),
        ("0 0 1 1 * ? 2100", "year", "year field '2100' is out of range 1970-2099"),
        ("0 0 1 1 * ? 2030-2025", "year", "year field '2030-2025': the range '2030-2025' runs backwards"),
        ("0 0 1 1 JANUARY ?", "month", "month field 'JANUARY' is not a number or a name (JAN-DEC)"),
        ("0 0 1 ? * FRX", "day-of-week", "day-of-week field 'FRX' is not a number or a name (SUN-SAT)"),
        ("0 0 x * * ?", "hours", "hours field 'X' is not a number"),
        (
            "0 0 1-2-3 * * ?",
            "hours",
            "hours field '1-2-3': '1-2-3' is not a number, a range (a-b), a step (a/n, a-b/n, */n) or '*'",
        ),
        (
            "0 0 5- * * ?",
            "hours",
            "hours field '5-': '5-' is not a number, a range (a-b), a step (a/n, a-b/n, */n) or '*'",
        ),
        (
            "0 ² 1 * * ?",
            "minutes",
            "minutes field '²': '²' is not a number, a range (a-b), a step (a/n, a-b/n, */n) or '*'",
        ),
        (
            "0 0 1 ? * ٣",
            "day-of-week",
            (
                "day-of-week field '٣': '٣' is not a number or name (SUN-SAT), a range (a-b), a step"
                " (a/n, a-b/n, */n) or '*'"
            ),
        ),
        ("0 0 1 ? * 6#²", "day-of-week", "day-of-week field '6#²': the occurrence after '#' must be 1-5"),
        ("0 1,,2 1 * * ?", "minutes", "minutes field '1,,2' has an empty item between or beside commas"),
        (
            "0 0/0 1 * * ?",
            "minutes",
            "minutes field '0/0': the step after '/' must be a whole number from 1 to 60",
        ),
        (
            "0 */x 1 * * ?",
            "minutes",
            "minutes field '*/X': the step after '/' must be a whole number from 1 to 60",
        ),
        (
            "0 0 0/25 * * ?",
            "hours",
            "hours field '0/25': the step after '/' must be a whole number from 1 to 24",
        ),
        (
            "0 0 1 L,15 * ?",
            "day-of-month",
            "day-of-month field 'L,15': 'L' must be the field's only item, not part of a list",
        ),
        (
            "0 0 1 1,15W * ?",
            "day-of-month",
            "day-of-month field '1,15W': 'W' takes a single day (as in 15W or LW), not a range or list",
        ),
        (
            "0 0 1 1-5W * ?",
            "day-of-month",
            "day-of-month field '1-5W': 'W' takes a single day (as in 15W or LW), not a range or list",
        ),
        (
            "0 0 1 LW,1 * ?",
            "day-of-month",
            "day-of-month field 'LW,1': 'W' takes a single day (as in 15W or LW), not a range or list",
        ),
        (
            "0 0 1 L-31 * ?",
            "day-of-month",
            "day-of-month field 'L-31': the offset from the last day must be 0-30",
        ),
        (
            "0 0 1 6#3 * ?",
            "day-of-month",
            "day-of-month field '6#3': '#' (nth weekday of the month) belongs in the day-of-week field",
        ),
        ("0 0 1 6L * ?", "day-of-month", "day-of-month field '6L': '6L' is not a valid day-of-month value"),
        (
            "0 0 1 ? * 15W",
            "day-of-week",
            "day-of-week field '15W': 'W' (nearest weekday) belongs in the day-of-month field",
        ),
        (
            "0 0 1 ? * LW",
            "day-of-week",
            "day-of-week field 'LW': 'W' (nearest weekday) belongs in the day-of-month field",
        ),
        ("0 0 1 ? * L-2", "day-of-week", "day-of-week field 'L-2': 'L-2' is not a valid day-of-week value"),
        ("0 0 1 ? * 6#6", "day-of-week", "day-of-week field '6#6': the occurrence after '#' must be 1-5"),
        ("0 0 1 ? * 6#0", "day-of-week", "day-of-week field '6#0': the occurrence after '#' must be 1-5"),
        ("0 0 1 ? * 6#", "day-of-week", "day-of-week field '6#': the occurrence after '#' must be 1-5"),
        (
            "0 0 1 ? * 8#1",
            "day-of-week",
            "day-of-week field '8' is out of range 1-7 (Quartz counts 1 = SUN … 7 = SAT)",
        ),
        (
            "0 0 1 ? * 8L",
            "day-of-week",
            "day-of-week field '8' is out of range 1-7 (Quartz counts 1 = SUN … 7 = SAT)",
        ),
        (
            "0 0 1 ? * 2,6#3",
            "day-of-week",
            "day-of-week field '2,6#3': '6#3' must be the field's only item, not part of a list",
        ),
        (
            "0 0 1 ? * MON,6L",
            "day-of-week",
            "day-of-week field 'MON,6L': '6L' must be the field's only item, not part of a list",
        ),
        (
            "0 0 L * * ?",
            "hours",
            "hours field 'L': L, W and # are only allowed in day-of-month and day-of-week",
        ),
        (
            "0 0 1 1 5#2 ?",
            "month",
            "month field '5#2': L, W and # are only allowed in day-of-month and day-of-week",
        ),
        (
            "0 0 1 30 2 ?",
            None,
            "it never fires: no date from 1970 to 2099 matches its day, month and year fields",
        ),
        (
            "0 0 1 ? 2 6#5 2021",
            None,
            "it never fires: no date from 1970 to 2099 matches its day, month and year fields",
        ),
    ],
)
def test_malformed_expressions_say_why(expression: str, field: str | None, reason: str) -> None:
    with pytest.raises(CronError) as caught:
        QuartzCron.parse(expression)

    assert str(caught.value) == f"cron expression '{expression}': {reason}"
    assert caught.value.reason == reason
    assert caught.value.field == field
    assert caught.value.expression == expression
    assert isinstance(caught.value, ValueError)
