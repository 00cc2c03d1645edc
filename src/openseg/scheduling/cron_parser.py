"""Parse the text of a Quartz cron expression into value sets and a day rule.

Quartz syntax (``sec min hour day-of-month month day-of-week [year]``), as documented by Quartz's
``CronExpression`` and used by AEP's ``/config/schedules``:

* every field: ``*``, a value, a range ``a-b`` (wrapping past the field's end, ``FRI-MON``, ``22-2``),
  a step ``a/n``, ``a-b/n``, ``*/n`` or ``/n``, and comma lists of these;
* month and day-of-week also take names (``JAN``-``DEC``, ``SUN``-``SAT``); day-of-week counts
  1 = Sunday … 7 = Saturday;
* day-of-month: ``L``, ``L-n``, ``LW``, ``L-nW``, ``nW``; day-of-week: ``L`` (= Saturday), ``nL``,
  ``n#k``; each must be the field's only item, as Quartz requires;
* exactly one of day-of-month and day-of-week is ``?``.

Every error says, in words, which field is wrong and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from openseg.scheduling.cron_days import (
    MONTH_NAMES,
    WEEKDAY_NAMES,
    DayRule,
    DaysOfMonth,
    DaysOfWeek,
    EveryDay,
    LastDayOfMonth,
    LastDayOfWeek,
    NearestWeekday,
    NthDayOfWeek,
)

FIRST_YEAR = 1970
LAST_YEAR = 2099  # the end of Quartz's documented year range


class CronError(ValueError):
    """A cron expression that is malformed or not allowed as a schedule.

    Attributes:
        expression: The expression as given.
        field: The field at fault (``"day-of-week"``), or ``None`` when the fault is not one field's.
        reason: What is wrong, in words.
    """

    def __init__(self, expression: str, reason: str, field: str | None = None) -> None:
        self.expression = expression
        self.reason = reason
        self.field = field
        super().__init__(f"cron expression '{expression}': {reason}")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    wraps: bool = True

    @property
    def span(self) -> int:
        return self.high - self.low + 1


SECONDS = _Field("seconds", 0, 59)
MINUTES = _Field("minutes", 0, 59)
HOURS = _Field("hours", 0, 23)
DAY_OF_MONTH = _Field("day-of-month", 1, 31)
MONTH = _Field("month", 1, 12, MONTH_NAMES)
DAY_OF_WEEK = _Field("day-of-week", 1, 7, WEEKDAY_NAMES)
YEAR = _Field("year", FIRST_YEAR, LAST_YEAR, wraps=False)

_ITEM = re.compile(r"^(?:(?P<star>\*)|(?P<start>\w+)(?:-(?P<end>\w+))?)?(?:/(?P<step>.*))?$", re.ASCII)
_LAST_DAY_OF_MONTH = re.compile(r"^L(?:-(?P<offset>\d+))?(?P<weekday>W)?$", re.ASCII)
_NEAREST_WEEKDAY = re.compile(r"^(?P<day>\d+)W$", re.ASCII)
_LAST_WEEKDAY = re.compile(r"^(?P<weekday>\d+|[A-Z]{3})L$", re.ASCII)
_NTH_WEEKDAY = re.compile(r"^(?P<weekday>\d+|[A-Z]{3})#(?P<nth>.*)$", re.ASCII)
# Items using L, W or #: only the two day fields give them a meaning.
_DAY_SPECIAL = re.compile(r"^(?:L(?:-\d+)?W?|\d+W|(?:\d+|[A-Z]{3})(?:L|#.*))$", re.ASCII)

_MAX_LAST_DAY_OFFSET = 30  # Quartz: "Offset from last day must be <= 30"
_MAX_NTH = 5  # no month has a sixth occurrence of a weekday


@dataclass(frozen=True)
class CronFields:
    """The parsed parts of an expression; ``years`` is ``None`` when the year is unrestricted."""

    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int] | None
    day_rule: DayRule


def parse_fields(expression: str) -> CronFields:
    """Parse a Quartz cron expression.

    Args:
        expression: The expression, e.g. ``"0 15 10 ? * 6L"``.

    Returns:
        Its fields as value sets (Quartz numbering) and its day rule.

    Raises:
        CronError: If the expression is malformed; the message names the field and the fault.
    """
    parts = expression.split()
    if len(parts) not in (6, 7):
        raise CronError(
            expression,
            "a Quartz cron expression has 6 or 7 fields (seconds minutes hours day-of-month month "
            f"day-of-week [year]), this one has {len(parts)}",
        )
    parser = _Parser(expression)
    seconds, minutes, hours, day_of_month, month, day_of_week = parts[:6]
    years = None if len(parts) == 6 or parts[6] == "*" else parser.values(YEAR, parts[6])
    return CronFields(
        seconds=parser.values(SECONDS, seconds),
        minutes=parser.values(MINUTES, minutes),
        hours=parser.values(HOURS, hours),
        months=parser.values(MONTH, month),
        years=years,
        day_rule=parser.day_rule(day_of_month, day_of_week),
    )


class _Parser:
    """Field parsers bound to the expression they report errors against."""

    def __init__(self, expression: str) -> None:
        self.expression = expression

    def error(self, field: _Field, reason: str) -> CronError:
        return CronError(self.expression, reason, field.name)

    def day_rule(self, day_of_month: str, day_of_week: str) -> DayRule:
        """Apply Quartz's ``?`` rule, then parse whichever day field is in charge."""
        dom, dow = day_of_month.upper(), day_of_week.upper()
        for field, text in ((DAY_OF_MONTH, dom), (DAY_OF_WEEK, dow)):
            if "?" in text and text != "?":
                raise self.error(field, f"{field.name} field '{text}': '?' must stand alone")
        if (dom == "?") == (dow == "?"):
            got = "both are '?'" if dom == "?" else f"got '{dom}' and '{dow}'"
            raise CronError(
                self.expression,
                f"specify '?' in exactly one of day-of-month and day-of-week ({got})",
            )
        if dow == "?":
            return self._day_of_month_rule(dom)
        return self._day_of_week_rule(dow)

    def _day_of_month_rule(self, text: str) -> DayRule:
        last = _LAST_DAY_OF_MONTH.match(text)
        if last:
            offset = int(last["offset"] or 0)
            if offset > _MAX_LAST_DAY_OFFSET:
                raise self.error(
                    DAY_OF_MONTH,
                    f"day-of-month field '{text}': the offset from the last day must be 0-"
                    f"{_MAX_LAST_DAY_OFFSET}",
                )
            return LastDayOfMonth(offset=offset, nearest_weekday=bool(last["weekday"]))
        nearest = _NEAREST_WEEKDAY.match(text)
        if nearest:
            return NearestWeekday(self._number(DAY_OF_MONTH, nearest["day"]))
        days = self.values(DAY_OF_MONTH, text)
        return EveryDay() if len(days) == DAY_OF_MONTH.span else DaysOfMonth(days)

    def _day_of_week_rule(self, text: str) -> DayRule:
        if text == "L":  # Quartz: 'L' alone in day-of-week means 7, Saturday
            return DaysOfWeek(frozenset({7}))
        last = _LAST_WEEKDAY.match(text)
        if last:
            return LastDayOfWeek(self._value(DAY_OF_WEEK, last["weekday"]))
        nth = _NTH_WEEKDAY.match(text)
        if nth:
            weekday = self._value(DAY_OF_WEEK, nth["weekday"])
            if not _is_number(nth["nth"]) or not 1 <= int(nth["nth"]) <= _MAX_NTH:
                raise self.error(
                    DAY_OF_WEEK,
                    f"day-of-week field '{text}': the occurrence after '#' must be 1-{_MAX_NTH}",
                )
            return NthDayOfWeek(weekday, int(nth["nth"]))
        days = self.values(DAY_OF_WEEK, text)
        return EveryDay() if len(days) == DAY_OF_WEEK.span else DaysOfWeek(days)

    def _refuse_special_in_list(self, field: _Field, text: str) -> None:
        """Refuse L, W and # where Quartz does not take them, saying where they belong."""
        for item in text.split(","):
            if field is DAY_OF_MONTH and "W" in item:  # day-of-month has no names: W is 'W'
                reason = "'W' takes a single day (as in 15W or LW), not a range or list"
            elif not _DAY_SPECIAL.match(item):
                continue
            elif field is DAY_OF_MONTH and "#" in item:
                reason = "'#' (nth weekday of the month) belongs in the day-of-week field"
            elif field is DAY_OF_WEEK and "W" in item:
                reason = "'W' (nearest weekday) belongs in the day-of-month field"
            elif field in (DAY_OF_MONTH, DAY_OF_WEEK) and "," in text:
                reason = f"'{item}' must be the field's only item, not part of a list"
            elif field in (DAY_OF_MONTH, DAY_OF_WEEK):
                reason = f"'{item}' is not a valid {field.name} value"
            else:
                reason = "L, W and # are only allowed in day-of-month and day-of-week"
            raise self.error(field, f"{field.name} field '{text}': {reason}")

    def values(self, field: _Field, text: str) -> frozenset[int]:
        """The set of values a plain field (no L, W, #) selects."""
        text = text.upper()
        if text == "?":
            raise self.error(
                field, f"'?' is only allowed in day-of-month or day-of-week, not in {field.name}"
            )
        self._refuse_special_in_list(field, text)
        values: set[int] = set()
        for item in text.split(","):
            values |= self._item(field, text, item)
        return frozenset(values)

    def _item(self, field: _Field, text: str, item: str) -> set[int]:
        if not item:
            raise self.error(field, f"{field.name} field '{text}' has an empty item between or beside commas")
        match = _ITEM.match(item)
        if not match or (match["step"] is None and not match["star"] and not match["start"]):
            raise self.error(field, f"{field.name} field '{text}': '{item}' is not {_shapes(field)}")
        if match["start"] is None:  # '*' or '/n'
            start, end = field.low, field.high
        else:
            start = self._value(field, match["start"])
            # Quartz: 'a/n' runs from a to the field's end.
            has_end = match["end"] is not None or match["step"] is None
            end = self._value(field, match["end"] or match["start"]) if has_end else field.high
        if end < start and not field.wraps:
            raise self.error(field, f"{field.name} field '{text}': the range '{item}' runs backwards")
        step = 1 if match["step"] is None else self._step(field, text, match["step"])
        # A range whose end is below its start wraps past the field's end (FRI-MON, 22-2).
        length = (end - start) % field.span + 1
        return {field.low + (start - field.low + k) % field.span for k in range(0, length, step)}

    def _step(self, field: _Field, text: str, step: str) -> int:
        if not _is_number(step) or not 1 <= int(step) <= field.span:
            raise self.error(
                field,
                f"{field.name} field '{text}': the step after '/' must be a whole number from 1 "
                f"to {field.span}",
            )
        return int(step)

    def _value(self, field: _Field, token: str) -> int:
        if token in field.names:
            return field.low + field.names.index(token)
        if not _is_number(token):
            names = f" or a name ({field.names[0]}-{field.names[-1]})" if field.names else ""
            raise self.error(field, f"{field.name} field '{token}' is not a number{names}")
        return self._number(field, token)

    def _number(self, field: _Field, token: str) -> int:
        value = int(token)
        if not field.low <= value <= field.high:
            hint = " (Quartz counts 1 = SUN … 7 = SAT)" if field is DAY_OF_WEEK else ""
            raise self.error(
                field, f"{field.name} field '{token}' is out of range {field.low}-{field.high}{hint}"
            )
        return value


def _is_number(token: str) -> bool:
    """Whether a token is written in ASCII digits (``str.isdigit`` also takes '²' and '٣')."""
    return token.isascii() and token.isdigit()


def _shapes(field: _Field) -> str:
    """The accepted shapes of a field's items, for error messages."""
    value = "a number" if not field.names else f"a number or name ({field.names[0]}-{field.names[-1]})"
    return f"{value}, a range (a-b), a step (a/n, a-b/n, */n) or '*'"
