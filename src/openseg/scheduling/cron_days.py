"""Day rules of a Quartz cron expression: which days of a given month fire.

Quartz decides the day of a fire with exactly one of its two day fields (the other is ``?``), so a
parsed expression carries exactly one rule from this module. Each rule answers two questions:

* ``days_in(year, month)``: the days of that month it selects, ascending (our own calendar code);
* ``croniter_fields()``: the ``(day-of-month, day-of-week)`` pair that makes croniter select the
  same days, or ``None`` where croniter cannot express the rule or reads it differently from Quartz.

Day-of-week values are Quartz numbers throughout: 1 = Sunday … 7 = Saturday.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass

# Quartz day-of-week names in Quartz order: SUN = 1 … SAT = 7.
WEEKDAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")

# Days of the month on which a ``nW`` day exists in every month; croniter agrees with Quartz there.
_DAYS_IN_EVERY_MONTH = 28


def last_day(year: int, month: int) -> int:
    """The number of days in ``month`` of ``year``."""
    return calendar.monthrange(year, month)[1]


def quartz_weekday(year: int, month: int, day: int) -> int:
    """The Quartz day-of-week number (1 = Sunday … 7 = Saturday) of a date."""
    # Python counts Monday = 0 … Sunday = 6.
    return (calendar.weekday(year, month, day) + 1) % 7 + 1


def nearest_weekday(year: int, month: int, day: int) -> int:
    """Quartz ``W``: the weekday (Monday-Friday) nearest ``day``, never leaving the month.

    A Saturday moves back to Friday and a Sunday forward to Monday, except that Quartz does not
    cross a month boundary: a Saturday 1st moves to Monday the 3rd and a Sunday on the month's last
    day moves back to the Friday before it.
    """
    weekday = calendar.weekday(year, month, day)
    if weekday == calendar.SATURDAY:
        return day - 1 if day > 1 else day + 2
    if weekday == calendar.SUNDAY:
        return day + 1 if day < last_day(year, month) else day - 2
    return day


@dataclass(frozen=True)
class EveryDay:
    """Every day: ``*`` in one day field and ``?`` in the other (or a list naming every day)."""

    def days_in(self, year: int, month: int) -> tuple[int, ...]:
        """All days of the month."""
        return tuple(range(1, last_day(year, month) + 1))

    def croniter_fields(self) -> tuple[str, str] | None:
        """Both day fields unrestricted."""
        return ("*", "*")


@dataclass(frozen=True)
class DaysOfMonth:
    """Plain days of the month (``1,15``, ``10-20``, ``1/7``); a day a month lacks never fires."""

    days: frozenset[int]

    def days_in(self, year: int, month: int) -> tuple[int, ...]:
        """The listed days that exist in the month."""
        last = last_day(year, month)
        return tuple(day for day in sorted(self.days) if day <= last)

    def croniter_fields(self) -> tuple[str, str] | None:
        """The days as an explicit list, which croniter reads as Quartz does."""
        return (",".join(str(day) for day in sorted(self.days)), "*")


@dataclass(frozen=True)
class LastDayOfMonth:
    """``L`` (last day), ``L-3`` (three days before it), ``LW`` / ``L-3W`` (nearest weekday to it)."""

    offset: int = 0
    nearest_weekday: bool = False

    def days_in(self, year: int, month: int) -> tuple[int, ...]:
        """The one day the rule selects, or none when the offset reaches before the 1st."""
        day = last_day(year, month) - self.offset
        if day < 1:
            return ()
        if self.nearest_weekday:
            day = nearest_weekday(year, month, day)
        return (day,)

    def croniter_fields(self) -> tuple[str, str] | None:
        """Plain ``L`` only: croniter has no ``L-n`` and no ``LW``."""
        if self.offset == 0 and not self.nearest_weekday:
            return ("L", "*")
        return None


@dataclass(frozen=True)
class NearestWeekday:
    """``15W``: the weekday nearest the 15th; a month without that day does not fire.

    Quartz documents ``W`` only for days the month has; we read a missing day (``31W`` in April)
    like a plain missing day (``31``): no fire that month.
    """

    day: int

    def days_in(self, year: int, month: int) -> tuple[int, ...]:
        """The nearest weekday to ``day``, or nothing when the month is too short."""
        if self.day > last_day(year, month):
            return ()
        return (nearest_weekday(year, month, self.day),)

    def croniter_fields(self) -> tuple[str, str] | None:
        """Days every month has; croniter clamps a missing day to the month's end instead."""
        if self.day <= _DAYS_IN_EVERY_MONTH:
            return (f"{self.day}W", "*")
        return None


@dataclass(frozen=True)
class DaysOfWeek:
    """Plain days of the week (``MON-FRI``, ``2,4``), Quartz-numbered."""

    days: frozenset[int]

    def days_in(self, year: int, month: int) -> tuple[int, ...]:
        """The days of the month falling on one of the weekdays."""
        return tuple(
            day
            for day in range(1, last_day(year, month) + 1)
            if quartz_weekday(year, month, day) in self.days
        )

    def croniter_fields(self) -> tuple[str, str] | None:
        """The weekdays renumbered for croniter, which counts Unix-style (0 = Sunday)."""
        return ("*", ",".join(str(day - 1) for day in sorted(self.days)))


@dataclass(frozen=True)
class NthDayOfWeek:
    """``6#3``: the third Friday of the month; a month without a fifth one skips ``#5``."""

    weekday: int
    nth: int

    def days_in(self, year: int, month: int) -> tuple[int, ...]:
        """The nth such weekday, if the month has it."""
        first = 1 + (self.weekday - quartz_weekday(year, month, 1)) % 7
        day = first + 7 * (self.nth - 1)
        return (day,) if day <= last_day(year, month) else ()

    def croniter_fields(self) -> tuple[str, str] | None:
        """croniter's ``#`` with the weekday renumbered Unix-style."""
        return ("*", f"{self.weekday - 1}#{self.nth}")


@dataclass(frozen=True)
class LastDayOfWeek:
    """``6L``: the last Friday of the month."""

    weekday: int

    def days_in(self, year: int, month: int) -> tuple[int, ...]:
        """The last day of the month falling on the weekday."""
        last = last_day(year, month)
        return (last - (quartz_weekday(year, month, last) - self.weekday) % 7,)

    def croniter_fields(self) -> tuple[str, str] | None:
        """croniter's ``L<weekday>`` with the weekday renumbered Unix-style."""
        return ("*", f"L{self.weekday - 1}")


DayRule = EveryDay | DaysOfMonth | LastDayOfMonth | NearestWeekday | DaysOfWeek | NthDayOfWeek | LastDayOfWeek

# Rules that select at most one day in any month (a "monthly" schedule when every month is allowed).
ONE_DAY_A_MONTH = (LastDayOfMonth, NearestWeekday, NthDayOfWeek, LastDayOfWeek)
