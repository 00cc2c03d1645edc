"""Quartz cron expressions, evaluated in UTC: parsing, fire times, the once-a-day guardrail.

AEP's ``/config/schedules`` takes Quartz cron (``sec min hour day-of-month month day-of-week
[year]``). No library reads Quartz as-is, so :mod:`cron_parser` owns the syntax and hands back value
sets plus a day rule (:mod:`cron_days`). Fire times come from croniter (``second_at_beginning``)
for every rule croniter reads the Quartz way, after renumbering days of the week; the rest (``LW``,
``L-n``, ``nW`` on days some months lack) goes through a small calendar walk of our own. Both paths
give the same answers on what they share (``tests/scheduling/test_cron_engines.py``).

All datetimes are timezone-aware; results are in UTC. Quartz's years run 1970-2099 and no fire
outside them is reported.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Literal

from croniter import CroniterBadDateError, croniter

from openseg.scheduling.cron_days import ONE_DAY_A_MONTH, DaysOfMonth, DaysOfWeek, EveryDay
from openseg.scheduling.cron_parser import (
    FIRST_YEAR,
    LAST_YEAR,
    CronError,
    CronFields,
    parse_fields,
)

__all__ = ["CronError", "Frequency", "QuartzCron", "frequency"]

Frequency = Literal["daily", "weekly", "monthly", "yearly", "custom"]

_SECONDS_A_DAY = 24 * 60 * 60
_ONE_SECOND = timedelta(seconds=1)
_FIRST_MOMENT = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)
_LAST_MOMENT = datetime(LAST_YEAR, 12, 31, 23, 59, 59, tzinfo=UTC)
_YEARS = LAST_YEAR - FIRST_YEAR + 1
_TIMES_SHOWN = 3  # times of day quoted in the guardrail's message


@dataclass(frozen=True)
class QuartzCron:
    """A parsed Quartz cron expression. Build it with :meth:`parse`.

    Attributes:
        text: The expression with its whitespace normalised, e.g. ``"0 15 10 ? * 6L"``.
        fields: Its parsed fields.
    """

    text: str
    fields: CronFields = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> QuartzCron:
        """Parse and check a Quartz cron expression.

        Args:
            text: The expression, e.g. ``"0 0 1 * * ?"``.

        Returns:
            The parsed expression.

        Raises:
            CronError: If it is malformed, or if no date from 1970 to 2099 matches it (``30 2``,
                February 30th). The message names the field and says what is wrong.
        """
        normalised = " ".join(text.split())
        cron = cls(text=normalised, fields=parse_fields(normalised))
        if cron._calendar_next(_FIRST_MOMENT - _ONE_SECOND) is None:
            raise CronError(
                cron.text,
                f"it never fires: no date from {FIRST_YEAR} to {LAST_YEAR} matches its day, month"
                " and year fields",
            )
        return cron

    def __str__(self) -> str:
        return self.text

    def next_fire_after(self, moment: datetime) -> datetime | None:
        """The first fire strictly after ``moment``.

        Args:
            moment: A timezone-aware datetime.

        Returns:
            The fire time in UTC, or ``None`` when the expression fires no more (up to 2099).
        """
        after = max(_as_utc(moment), _FIRST_MOMENT - _ONE_SECOND)
        if after >= _LAST_MOMENT:
            return None
        if self._croniter_text is None:
            return self._calendar_next(after)
        try:
            fire: datetime = _croniter(self._croniter_text, after).get_next(datetime)
        except CroniterBadDateError:  # no match within the years croniter searches
            return None
        return fire if fire <= _LAST_MOMENT else None

    def last_fire_at_or_before(self, moment: datetime) -> datetime | None:
        """The latest fire at or before ``moment``.

        Args:
            moment: A timezone-aware datetime.

        Returns:
            The fire time in UTC, or ``None`` when the expression never fired (since 1970).
        """
        at = min(_as_utc(moment).replace(microsecond=0), _LAST_MOMENT)
        if at < _FIRST_MOMENT:
            return None
        if self._croniter_text is None:
            return self._calendar_previous(at)
        try:  # croniter's previous fire is strictly before its start
            fire: datetime = _croniter(self._croniter_text, at + _ONE_SECOND).get_prev(datetime)
        except CroniterBadDateError:
            return None
        return fire if fire >= _FIRST_MOMENT else None

    def fires_between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """The fires strictly after ``start`` and at or before ``end``, in order.

        Args:
            start: Exclusive lower bound, timezone-aware.
            end: Inclusive upper bound, timezone-aware.

        Yields:
            Fire times in UTC.
        """
        end = _as_utc(end)
        fire = self.next_fire_after(start)
        while fire is not None and fire <= end:
            yield fire
            fire = self.next_fire_after(fire)

    def max_fires_in_24h(self) -> int:
        """The most fires in any 24-hour period ``[t, t + 24h)``.

        Exact for every expression: in UTC every day that fires fires at the same times of day
        (seconds x minutes x hours), and :meth:`parse` guarantees some day fires. A 24-hour period
        starting at a day's first fire holds all of that day's times; no period holds more, since
        it covers each time of day once (late in one day or early in the next).
        """
        return len(self._times_of_day)

    def assert_at_most_daily(self) -> None:
        """Enforce AEP's rule that a schedule fires at most once in any 24 hours.

        Two fires exactly 24 hours apart are allowed (that is what a daily schedule does); two
        fires less than 24 hours apart are not. So ``0 0 1 * * ?`` and ``0 0 0 1,2 * ?`` pass while
        ``0 0/30 * * * ?`` and ``0 0 1,23 * * ?`` do not.

        Raises:
            CronError: If the expression fires more than once within some 24 hours.
        """
        count = self.max_fires_in_24h()
        if count <= 1:
            return
        shown = [_clock_time(second) for second in self._times_of_day[:_TIMES_SHOWN]]
        if count > len(shown):
            shown.append(f"{count - len(shown)} more")
        at = f"{', '.join(shown[:-1])} and {shown[-1]}"
        raise CronError(
            self.text,
            f"it fires {count} times within 24 hours (at {at}, UTC); schedules may run at most once a day",
        )

    @cached_property
    def _times_of_day(self) -> tuple[int, ...]:
        """The seconds after midnight at which a firing day fires, ascending."""
        f = self.fields
        return tuple(
            sorted(
                hour * 3600 + minute * 60 + second
                for hour, minute, second in itertools.product(f.hours, f.minutes, f.seconds)
            )
        )

    @cached_property
    def _croniter_text(self) -> str | None:
        """The croniter expression that fires exactly like this one, if croniter can express it."""
        days = self.fields.day_rule.croniter_fields()
        if days is None:
            return None
        f = self.fields
        years = "*" if f.years is None else _listed(f.years, span=_YEARS)
        return " ".join(
            (
                _listed(f.seconds, span=60),
                _listed(f.minutes, span=60),
                _listed(f.hours, span=24),
                days[0],
                _listed(f.months, span=12),
                days[1],
                years,
            )
        )

    def _allows_month(self, year: int, month: int) -> bool:
        years = self.fields.years
        return (years is None or year in years) and month in self.fields.months

    def _calendar_next(self, after: datetime) -> datetime | None:
        """Our own forward walk: month by month, the first matching day and time of day."""
        start = after.replace(microsecond=0) + _ONE_SECOND
        year, month, min_day, min_second = start.year, start.month, start.day, _second_of_day(start)
        while year <= LAST_YEAR:
            if self._allows_month(year, month):
                for day in self.fields.day_rule.days_in(year, month):
                    if day < min_day:
                        continue
                    floor = min_second if day == min_day else 0
                    index = bisect.bisect_left(self._times_of_day, floor)
                    if index < len(self._times_of_day):
                        return _at(year, month, day, self._times_of_day[index])
            year, month = (year, month + 1) if month < 12 else (year + 1, 1)
            min_day, min_second = 1, 0
        return None

    def _calendar_previous(self, at: datetime) -> datetime | None:
        """Our own backward walk, the mirror of :meth:`_calendar_next` (``at`` included)."""
        year, month, max_day, max_second = at.year, at.month, at.day, _second_of_day(at)
        while year >= FIRST_YEAR:
            if self._allows_month(year, month):
                for day in reversed(self.fields.day_rule.days_in(year, month)):
                    if day > max_day:
                        continue
                    ceiling = max_second if day == max_day else _SECONDS_A_DAY - 1
                    index = bisect.bisect_right(self._times_of_day, ceiling)
                    if index > 0:
                        return _at(year, month, day, self._times_of_day[index - 1])
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)
            max_day, max_second = 31, _SECONDS_A_DAY - 1
        return None


def frequency(cron: QuartzCron | str) -> Frequency:
    """A label for a schedule's cadence, shown on schedule list items.

    ``daily``: once every day; ``weekly``: once on one weekday; ``monthly``: once on one day of
    every month (``1``, ``L``, ``15W``, ``6#3``, ``6L``); ``yearly``: the same in one month only.
    Anything else (several times a day or week, some months, a year field) is ``custom``.

    Args:
        cron: A parsed expression or its text.

    Returns:
        The label.

    Raises:
        CronError: If ``cron`` is text that does not parse.
    """
    if isinstance(cron, str):
        cron = QuartzCron.parse(cron)
    f = cron.fields
    if len(cron._times_of_day) != 1 or f.years is not None:
        return "custom"
    rule = f.day_rule
    one_day_a_month = isinstance(rule, ONE_DAY_A_MONTH) or (
        isinstance(rule, DaysOfMonth) and len(rule.days) == 1
    )
    if len(f.months) == 12:
        if isinstance(rule, EveryDay):
            return "daily"
        if isinstance(rule, DaysOfWeek) and len(rule.days) == 1:
            return "weekly"
        if one_day_a_month:
            return "monthly"
    elif len(f.months) == 1 and one_day_a_month:
        return "yearly"
    return "custom"


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment.isoformat()} must be timezone-aware (cron runs in UTC)")
    return moment.astimezone(UTC)


def _croniter(text: str, start: datetime) -> croniter:
    return croniter(
        text,
        start,
        second_at_beginning=True,
        # croniter gives up after 50 years without a match by default; Quartz's range is longer.
        max_years_between_matches=_YEARS,
    )


def _listed(values: frozenset[int], span: int) -> str:
    """A croniter field listing ``values`` explicitly, or ``*`` when they are all ``span`` values.

    Explicit lists keep croniter's own readings of ranges and steps out of the way (it re-bases
    steps and reads ``a-a`` as a whole cycle).
    """
    if len(values) == span:
        return "*"
    return ",".join(str(value) for value in sorted(values))


def _second_of_day(moment: datetime) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _at(year: int, month: int, day: int, second_of_day: int) -> datetime:
    hour, rest = divmod(second_of_day, 3600)
    return datetime(year, month, day, hour, *divmod(rest, 60), tzinfo=UTC)


def _clock_time(second_of_day: int) -> str:
    hour, rest = divmod(second_of_day, 3600)
    return "{:02d}:{:02d}:{:02d}".format(hour, *divmod(rest, 60))
