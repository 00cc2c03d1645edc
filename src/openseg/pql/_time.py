"""Calendar arithmetic and time-window bounds shared by the SQL and Python backends.

One place decides what ``occurs <= 30 days before now`` or ``this month`` means, so both backends agree:

* Every time is a UTC instant; a date is the instant at its midnight (UTC).
* ``N units before/after X`` shifts by calendar units: months and longer clamp to the month's end
  (31 March - 1 month = 29 February), as DuckDB, Spark and AEP do.
* ``op N units before X`` means the time is at or before ``X`` and its distance to ``X`` compares
  ``op`` to the duration (``<= 30 days before now``: from ``now - 30 days`` to ``now``, both included).
  ``after`` mirrors it. ``= N days before X`` means the same UTC day as ``X - N days`` (for units of a day
  and longer; the same instant for shorter units).
* ``before X``/``after X`` are strict; with a date anchor (``today``, ``date(...)``), ``after`` means after
  that whole day. ``on X`` is X's UTC day. ``between A and B`` includes both ends, and a date ``B`` includes
  its whole day. ``this/last/next unit`` is the UTC calendar period (ISO weeks start on Monday).
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from openseg.pql import ast

UTC = dt.UTC
_FIXED = {
    ast.TimeUnit.MILLISECOND: dt.timedelta(milliseconds=1),
    ast.TimeUnit.SECOND: dt.timedelta(seconds=1),
    ast.TimeUnit.MINUTE: dt.timedelta(minutes=1),
    ast.TimeUnit.HOUR: dt.timedelta(hours=1),
    ast.TimeUnit.DAY: dt.timedelta(days=1),
    ast.TimeUnit.WEEK: dt.timedelta(days=7),
}
#: Calendar units as a number of months.
MONTHS = {
    ast.TimeUnit.MONTH: 1,
    ast.TimeUnit.YEAR: 12,
    ast.TimeUnit.DECADE: 120,
    ast.TimeUnit.CENTURY: 1200,
    ast.TimeUnit.MILLENNIUM: 12000,
}
#: Units for which ``=`` compares calendar days rather than instants.
DAY_OR_LONGER = frozenset({ast.TimeUnit.DAY, ast.TimeUnit.WEEK, *MONTHS})


def fixed_delta(unit: ast.TimeUnit) -> dt.timedelta | None:
    """The fixed length of ``unit`` (None for calendar units: months and longer)."""
    return _FIXED.get(unit)


def as_instant(value: dt.date | dt.datetime) -> dt.datetime:
    """A date or datetime as an aware UTC datetime (dates at midnight, naive datetimes taken as UTC)."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=UTC)


def shift(instant: dt.datetime, amount: int, unit: ast.TimeUnit) -> dt.datetime:
    """``instant`` moved by ``amount`` units (negative moves back), clamping calendar units."""
    delta = _FIXED.get(unit)
    if delta is not None:
        try:
            return instant + amount * delta
        except OverflowError:  # past year 9999 or before year 1, like the calendar units below
            return dt.datetime.min.replace(tzinfo=UTC) if amount < 0 else dt.datetime.max.replace(tzinfo=UTC)
    months = instant.year * 12 + instant.month - 1 + amount * MONTHS[unit]
    year, month = divmod(months, 12)
    if not 1 <= year <= 9999:
        return dt.datetime.min.replace(tzinfo=UTC) if amount < 0 else dt.datetime.max.replace(tzinfo=UTC)
    day = min(instant.day, calendar.monthrange(year, month + 1)[1])
    return instant.replace(year=year, month=month + 1, day=day)


def day_start(instant: dt.datetime) -> dt.datetime:
    """Midnight (UTC) of the instant's day."""
    return instant.replace(hour=0, minute=0, second=0, microsecond=0)


def period_bounds(as_of: dt.datetime, relation: ast.PeriodRelation, unit: ast.TimeUnit) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` of the ``this/last/next`` calendar ``unit`` around ``as_of`` (UTC)."""
    now = as_instant(as_of)
    if unit is ast.TimeUnit.MINUTE:
        start = now.replace(second=0, microsecond=0)
    elif unit is ast.TimeUnit.HOUR:
        start = now.replace(minute=0, second=0, microsecond=0)
    elif unit is ast.TimeUnit.DAY:
        start = day_start(now)
    elif unit is ast.TimeUnit.WEEK:
        start = day_start(now) - dt.timedelta(days=now.weekday())
    else:
        span_years = MONTHS[unit] // 12
        year = now.year if unit is ast.TimeUnit.MONTH else max(1, now.year - now.year % span_years)
        month = now.month if unit is ast.TimeUnit.MONTH else 1
        start = dt.datetime(year, month, 1, tzinfo=UTC)
    offset = {ast.PeriodRelation.THIS: 0, ast.PeriodRelation.LAST: -1, ast.PeriodRelation.NEXT: 1}[relation]
    start = shift(start, offset, unit)
    return start, shift(start, 1, unit)


def current_value(kind: ast.CurrentTimeKind, as_of: dt.datetime) -> dt.date | dt.datetime:
    """``now`` (a datetime) or ``today``/``yesterday``/``tomorrow`` (dates) at ``as_of``."""
    now = as_instant(as_of)
    if kind is ast.CurrentTimeKind.NOW:
        return now
    days = {ast.CurrentTimeKind.TODAY: 0, ast.CurrentTimeKind.YESTERDAY: -1, ast.CurrentTimeKind.TOMORROW: 1}
    return now.date() + dt.timedelta(days=days[kind])


def period_edge(node: ast.PeriodEdge, as_of: dt.datetime) -> dt.datetime:
    """The first instant of the period, or its last (a microsecond before the next period starts)."""
    start, end = period_bounds(as_of, node.relation, node.unit)
    return end - dt.timedelta(microseconds=1) if node.end else start


def constant_anchor(node: ast.Expr, as_of: dt.datetime) -> dt.date | dt.datetime | None:
    """The value of an anchor known at compile time (now, today, date/datetime literals, periods), else None."""
    if isinstance(node, ast.CurrentTime):
        return current_value(node.kind, as_of)
    if isinstance(node, ast.PeriodEdge):
        return period_edge(node, as_of)
    if isinstance(node, ast.DateTimeLiteral | ast.DateLiteral):
        return node.value
    return None


def is_date(value: dt.date | dt.datetime) -> bool:
    """Whether ``value`` is a calendar date rather than a datetime."""
    return not isinstance(value, dt.datetime)


@dataclass(frozen=True)
class Bounds:
    """An interval of instants; a None end is unbounded."""

    low: dt.datetime | None
    high: dt.datetime | None
    low_inclusive: bool = True
    high_inclusive: bool = False

    def contains(self, instant: dt.datetime) -> bool:
        """Whether ``instant`` lies in the interval."""
        if self.low is not None and (instant < self.low or (instant == self.low and not self.low_inclusive)):
            return False
        return not (
            self.high is not None and (instant > self.high or (instant == self.high and not self.high_inclusive))
        )

    def hull(self, other: Bounds) -> Bounds:
        """The smallest interval covering both (ends may become inclusive: it is used for pruning)."""
        low = None if self.low is None or other.low is None else min(self.low, other.low)
        high = None if self.high is None or other.high is None else max(self.high, other.high)
        return Bounds(low, high, True, True)


def relative_bounds(
    op: ast.CompareOp, amount: int, unit: ast.TimeUnit, direction: ast.Direction, anchor: dt.datetime
) -> list[Bounds]:
    """The intervals (one, or two for ``!=``) matching ``op amount unit direction anchor``."""
    before = direction is ast.Direction.BEFORE
    edge = shift(anchor, -amount if before else amount, unit)
    if op is ast.CompareOp.EQ or op is ast.CompareOp.NE:
        if unit in DAY_OR_LONGER:
            exact = Bounds(day_start(edge), day_start(edge) + dt.timedelta(days=1), True, False)
        else:
            exact = Bounds(edge, edge, True, True)
        if op is ast.CompareOp.EQ:
            return [exact]
        # On the stated side of the anchor, but not in the "equal" interval.
        if before:
            return [Bounds(None, exact.low, True, not exact.low_inclusive), Bounds(exact.high, anchor, not exact.high_inclusive, True)]
        return [Bounds(anchor, exact.low, True, not exact.low_inclusive), Bounds(exact.high, None, not exact.high_inclusive, True)]
    near = op in (ast.CompareOp.LT, ast.CompareOp.LE)  # within the distance: between edge and anchor
    inclusive = op in (ast.CompareOp.LE, ast.CompareOp.GE)
    if before:
        return [Bounds(edge, anchor, inclusive, True)] if near else [Bounds(None, edge, True, inclusive)]
    return [Bounds(anchor, edge, True, inclusive)] if near else [Bounds(edge, None, inclusive, True)]


def constant_bounds(window: ast.TimeWindow, as_of: dt.datetime) -> list[Bounds] | None:
    """The window as intervals of instants when all its anchors are known at compile time, else None."""
    if isinstance(window, ast.PeriodWindow):
        start, end = period_bounds(as_of, window.relation, window.unit)
        return [Bounds(start, end, True, False)]
    if isinstance(window, ast.BetweenWindow):
        first, last = constant_anchor(window.start, as_of), constant_anchor(window.end, as_of)
        if first is None or last is None:
            return None
        high = as_instant(last)
        if is_date(last):
            return [Bounds(as_instant(first), high + dt.timedelta(days=1), True, False)]
        return [Bounds(as_instant(first), high, True, True)]
    anchor_node = getattr(window, "anchor", None)
    anchor = constant_anchor(anchor_node, as_of) if isinstance(anchor_node, ast.Expr) else None
    if anchor is None:
        return None
    return anchor_bounds(window, anchor)


def anchor_bounds(window: ast.TimeWindow, anchor: dt.date | dt.datetime) -> list[Bounds]:
    """Intervals of an ``on``/``before``/``after``/relative window around a known anchor value."""
    instant = as_instant(anchor)
    if isinstance(window, ast.OnWindow):
        start = day_start(instant)
        return [Bounds(start, start + dt.timedelta(days=1), True, False)]
    if isinstance(window, ast.PointWindow):
        if window.direction is ast.Direction.BEFORE:
            return [Bounds(None, instant, True, False)]
        if is_date(anchor):
            return [Bounds(instant + dt.timedelta(days=1), None, True, True)]
        return [Bounds(instant, None, False, True)]
    if isinstance(window, ast.RelativeWindow):
        return relative_bounds(window.op, window.amount, window.unit, window.direction, instant)
    raise TypeError(f"not an anchored window: {type(window).__name__}")


def moved_time(node: ast.Arithmetic) -> tuple[ast.Expr, ast.Duration, int] | None:
    """``t + 3 days`` / ``t - 3 days`` / ``3 days + t`` as (time, duration, sign), else None."""
    if isinstance(node.right, ast.Duration) and node.op in (ast.ArithOp.ADD, ast.ArithOp.SUB):
        return node.left, node.right, 1 if node.op is ast.ArithOp.ADD else -1
    if isinstance(node.left, ast.Duration) and node.op is ast.ArithOp.ADD:
        return node.right, node.left, 1
    return None
