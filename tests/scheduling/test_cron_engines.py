"""The two fire-time engines agree, and the day rules match Quartz's definitions.

``QuartzCron`` asks croniter for fire times where croniter reads the rule the Quartz way and walks
the calendar itself otherwise. This module pins both: generated expressions that croniter can run
must give the same fires through our calendar walk (reached through its private methods on
purpose), and every day rule is checked month by month against a naive reading of the Quartz
documentation.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openseg.scheduling.cron import QuartzCron
from openseg.scheduling.cron_days import (
    DayRule,
    DaysOfMonth,
    DaysOfWeek,
    LastDayOfMonth,
    LastDayOfWeek,
    NearestWeekday,
    NthDayOfWeek,
)


def _field(values: st.SearchStrategy[int], low: int, high: int) -> st.SearchStrategy[str]:
    """A field in one of the shapes Quartz allows: *, a value, a list, a range, a step."""
    return st.one_of(
        st.just("*"),
        values.map(str),
        st.lists(values, min_size=1, max_size=4).map(lambda vs: ",".join(map(str, vs))),
        st.tuples(values, values).map(lambda ab: f"{ab[0]}-{ab[1]}"),
        st.tuples(values, st.integers(1, high - low + 1)).map(lambda ab: f"{ab[0]}/{ab[1]}"),
    )


_DAY_FIELDS = st.one_of(
    _field(st.integers(1, 31), 1, 31).map(lambda dom: (dom, "?")),
    _field(st.integers(1, 7), 1, 7).map(lambda dow: ("?", dow)),
    st.sampled_from(["L", "1W", "15W", "28W"]).map(lambda dom: (dom, "?")),
    st.tuples(st.integers(1, 7), st.integers(1, 5)).map(lambda wn: ("?", f"{wn[0]}#{wn[1]}")),
    st.integers(1, 7).map(lambda w: ("?", f"{w}L")),
)


@st.composite
def croniter_expressions(draw: st.DrawFn) -> QuartzCron:
    seconds = draw(st.sampled_from(["0", "30", "0,30", "*/20"]))
    minutes = draw(_field(st.integers(0, 59), 0, 59))
    hours = draw(_field(st.integers(0, 23), 0, 23))
    day_of_month, day_of_week = draw(_DAY_FIELDS)
    months = draw(_field(st.integers(1, 12), 1, 12))
    years = draw(st.sampled_from(["", " *", " 2024-2026", " 2025,2031"]))
    text = f"{seconds} {minutes} {hours} {day_of_month} {months} {day_of_week}{years}"
    try:
        return QuartzCron.parse(text)
    except ValueError:  # e.g. '30 2': never fires; such expressions are tested elsewhere
        return QuartzCron.parse("0 0 1 * * ?")


@settings(max_examples=300, deadline=None)
@given(
    cron=croniter_expressions(),
    start=st.datetimes(
        min_value=datetime(2023, 1, 1), max_value=datetime(2032, 1, 1), timezones=st.just(UTC)
    ),
)
def test_croniter_and_calendar_walk_agree(cron: QuartzCron, start: datetime) -> None:
    assert cron._croniter_text is not None  # the generator only builds what croniter runs

    moment: datetime | None = start
    for _ in range(4):
        assert moment is not None
        ours = cron._calendar_next(moment)
        assert cron.next_fire_after(moment) == ours
        moment = ours
        if moment is None:
            break

    at = start.replace(microsecond=0)
    for _ in range(4):
        ours = cron._calendar_previous(at)
        assert cron.last_fire_at_or_before(at) == ours
        if ours is None:
            break
        at = ours - timedelta(seconds=1)


def _quartz_weekday(day: date) -> int:
    return day.isoweekday() % 7 + 1  # ISO Monday = 1 … Sunday = 7; Quartz Sunday = 1 … Saturday = 7


def _month(year: int, month: int) -> list[date]:
    return [date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]


def _naive_nearest_weekday(year: int, month: int, day: int) -> list[int]:
    """The Quartz doc's definition: the closest Monday-Friday of the same month."""
    if day > len(_month(year, month)):
        return []
    weekdays = [d.day for d in _month(year, month) if _quartz_weekday(d) in range(2, 7)]
    return [min(weekdays, key=lambda d: abs(d - day))]


def _naive_days(rule: DayRule, year: int, month: int) -> list[int]:
    days = _month(year, month)
    if isinstance(rule, DaysOfMonth):
        return [d.day for d in days if d.day in rule.days]
    if isinstance(rule, DaysOfWeek):
        return [d.day for d in days if _quartz_weekday(d) in rule.days]
    if isinstance(rule, NthDayOfWeek):
        matching = [d.day for d in days if _quartz_weekday(d) == rule.weekday]
        return matching[rule.nth - 1 : rule.nth]
    if isinstance(rule, LastDayOfWeek):
        return [d.day for d in days if _quartz_weekday(d) == rule.weekday][-1:]
    if isinstance(rule, NearestWeekday):
        return _naive_nearest_weekday(year, month, rule.day)
    assert isinstance(rule, LastDayOfMonth)
    target = len(days) - rule.offset
    if target < 1:
        return []
    return _naive_nearest_weekday(year, month, target) if rule.nearest_weekday else [target]


RULES: list[DayRule] = [
    DaysOfMonth(frozenset({1, 15, 29, 30, 31})),
    DaysOfWeek(frozenset({1, 4, 7})),
    *(NthDayOfWeek(weekday, nth) for weekday in range(1, 8) for nth in range(1, 6)),
    *(LastDayOfWeek(weekday) for weekday in range(1, 8)),
    *(NearestWeekday(day) for day in range(1, 32)),
    *(
        LastDayOfMonth(offset, weekday)
        for offset in (0, 1, 2, 3, 27, 28, 29, 30)
        for weekday in (False, True)
    ),
]


@pytest.mark.parametrize("rule", RULES, ids=repr)
def test_day_rules_match_quartz_definitions(rule: DayRule) -> None:
    for year in range(2023, 2030):  # leap and common years, every first weekday of a month
        for month in range(1, 13):
            assert list(rule.days_in(year, month)) == _naive_days(rule, year, month), (year, month)
