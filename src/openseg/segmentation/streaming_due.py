"""When a profile's answer to a continuous segment changes with no new data: the next time window boundary.

"Bought in the last hour" stops holding an hour after the last purchase, with no message to say so; AEP
exits such profiles "in real-time … as the lookback window expires" (``help/segmentation/faq.md``). Streaming
segmentation therefore asks, after each evaluation, :func:`next_change`: the earliest instant after ``at``
at which the predicate's value differs from its value at ``at``, and re-evaluates the profile then.

How it is found: a predicate's value can only move with the evaluation time where a window bound that
follows ``now`` passes a time the profile holds (``t + 1 hour`` for ``occurs <= 1 hours before now``), or
at a calendar boundary (midnight for ``today``, the next hour for ``this hour``). :func:`time_dependence`
reads those offsets and calendar units from the expression once per definition version; :func:`next_change`
lays them over the times of the profile and its events, and evaluates the predicate just after each
candidate, in order, until one differs. Between two candidates the value cannot move, so the answer is never
late (``tests/streaming/test_due.py`` holds it to that over the corpus); it is at most one millisecond
after the boundary, because a window's end may be inclusive (``<=``) and the change then happens just
after it.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from openseg.pql import ast
from openseg.pql._time import DAY_OR_LONGER, fixed_delta, period_bounds, shift
from openseg.pql.to_python import TimedPredicate

#: The calls whose value follows the evaluation time's calendar day.
_CALENDAR_CALLS = frozenset({"currentYear", "currentMonth", "currentDayOfMonth", "age", "anniversary"})
#: How many candidate instants one search evaluates at most (past them, a recheck continues the search).
MAX_PROBES = 64
#: One tick after a boundary: where the value after an inclusive window end is read.
TICK = dt.timedelta(milliseconds=1)


@dataclass(frozen=True)
class TimeDependence:
    """How an expression's value can move with the evaluation time alone.

    Attributes:
        offsets: Fixed distances between a time the profile holds and an evaluation time at which a bound
            passes it (both signs, and sums of two, for windows anchored on ``now - 3 days``).
        calendar_shifts: Calendar distances (months and longer), applied with calendar arithmetic.
        periods: Calendar units whose boundaries the value may change at (minute, hour, day).
    """

    offsets: frozenset[dt.timedelta]
    calendar_shifts: frozenset[tuple[int, ast.TimeUnit]]
    periods: frozenset[ast.TimeUnit]
    #: The field names the expression's paths go through (None: some path is a bare item, any field counts):
    #: only times under them can move a bound across (``_lastModifiedAt`` cannot).
    fields: frozenset[str] | None = None

    @property
    def horizon(self) -> dt.timedelta:
        """How far ahead a search past calendar boundaries looks before it settles for a later recheck."""
        longest = max([abs(o) for o in self.offsets] or [dt.timedelta(0)])
        return max(longest, dt.timedelta(days=1)) + dt.timedelta(days=1)


def time_dependence(node: ast.Node) -> TimeDependence | None:
    """What of ``node`` follows the evaluation time (None: its value never moves with time alone)."""
    reads_time = False
    fixed: set[dt.timedelta] = set()
    calendar: set[tuple[int, ast.TimeUnit]] = set()
    periods: set[ast.TimeUnit] = set()
    for part in node.walk():
        if isinstance(part, ast.CurrentTime):
            reads_time = True
            if part.kind is not ast.CurrentTimeKind.NOW:
                periods.add(ast.TimeUnit.DAY)
        elif isinstance(part, ast.PeriodWindow | ast.PeriodEdge):
            # ``this month`` as a window or as a window's anchor ("before this month") moves at the period's
            # boundaries only; those of a day or longer are midnights.
            reads_time = True
            periods.add(part.unit if part.unit in (ast.TimeUnit.MINUTE, ast.TimeUnit.HOUR) else ast.TimeUnit.DAY)
        elif isinstance(part, ast.Call) and part.name in _CALENDAR_CALLS:
            reads_time = True
            periods.add(ast.TimeUnit.DAY)
        if isinstance(part, ast.RelativeWindow | ast.Duration):
            delta = fixed_delta(part.unit)
            if delta is None:
                calendar.add((part.amount, part.unit))
            else:
                fixed.add(part.amount * delta)
            if isinstance(part, ast.RelativeWindow) and part.unit in DAY_OR_LONGER and part.op in (
                    ast.CompareOp.EQ, ast.CompareOp.NE):
                periods.add(ast.TimeUnit.DAY)  # "= 1 days before now": the same UTC day, which turns at midnight
    if not reads_time:
        return None
    offsets = {dt.timedelta(0), *fixed, *(-d for d in fixed)}
    if any(isinstance(part, ast.Duration) for part in node.walk()):
        # ``now - 3 days`` as a window's anchor: a bound lies a window's length from a moved anchor.
        for first, second in itertools.product([dt.timedelta(0), *fixed], repeat=2):
            offsets.update({first + second, first - second, -first + second, -first - second})
    paths = [part for part in node.walk() if isinstance(part, ast.FieldPath) and part.root is not ast.Root.EVENTS]
    fields = None if any(not path.segments for path in paths) else frozenset(
        name for path in paths for name in path.segments)
    return TimeDependence(frozenset(offsets), frozenset(calendar), frozenset(periods), fields)


#: The types of values that hold no time.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _times(value: Any, fields: frozenset[str] | None) -> Iterator[dt.datetime]:
    """Every instant in a profile or event under the named ``fields`` (None: any), dates at their UTC midnight."""
    kind = type(value)
    if kind in _SCALARS:  # most values: told by their type, before the checks of an ABC (Mapping)
        return
    if isinstance(value, dt.datetime):
        yield value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    elif isinstance(value, dt.date):
        yield dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    elif kind is dict or isinstance(value, Mapping):
        for key, item in value.items():
            if fields is None or key in fields:
                yield from _times(item, fields)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _times(item, fields)


def _candidates(dependence: TimeDependence, profile: Mapping[str, Any], events: Sequence[Mapping[str, Any]],
                at: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """The instants in ``[at, until]`` at which the value may change, in order."""
    found: set[dt.datetime] = set()
    # Not the membership laid over the profile for ``inSegment``: its times are evaluation times, not data.
    data = {key: value for key, value in profile.items() if key != "segmentMembership"}
    times = {t for source in (data, *events) for t in _times(source, dependence.fields)}
    for t in times:
        for offset in dependence.offsets:
            try:
                moved = t + offset
            except OverflowError:  # a time near year 1 or 9999: no boundary of ours
                continue
            if at <= moved <= until:
                found.add(moved)
        for amount, unit in dependence.calendar_shifts:
            for moved in (shift(t, amount, unit), shift(t, -amount, unit)):
                if at <= moved <= until:
                    found.add(moved)
    for unit in dependence.periods:
        boundary = period_bounds(at, ast.PeriodRelation.THIS, unit)[1]
        while boundary <= until:
            found.add(boundary)
            boundary = period_bounds(boundary, ast.PeriodRelation.THIS, unit)[1]
    return sorted(found)


def next_change(predicate: TimedPredicate, dependence: TimeDependence | None, profile: Mapping[str, Any],
                events: Sequence[Mapping[str, Any]], at: dt.datetime, value: bool | None = None
                ) -> dt.datetime | None:
    """When to evaluate the profile again for this segment without new data.

    Args:
        value: The predicate's value at ``at``, when the caller has it.

    Returns:
        The first instant after ``at`` at which ``predicate``'s value differs from its value at ``at`` (a
        tick after the boundary), or an earlier instant at which to search again (the search stops at
        :data:`MAX_PROBES` candidates and at the horizon), or None when nothing the profile holds can
        change it.
    """
    if dependence is None:
        return None
    now = predicate(profile, events, at) if value is None else value
    # Offsets from the profile's own times are finitely many; calendar boundaries recur without end.
    until = at + dependence.horizon if dependence.periods else dt.datetime.max.replace(tzinfo=dt.UTC)
    probes = 0
    for boundary in _candidates(dependence, profile, events, at, until):
        probe = boundary + TICK
        if predicate(profile, events, probe) != now:
            return probe
        probes += 1
        if probes == MAX_PROBES:
            return probe  # not found yet: look again from here
    # Calendar boundaries recur past any horizon ("age() >= 18" turns on one midnight some year).
    return until if dependence.periods else None


__all__ = ["MAX_PROBES", "TICK", "TimeDependence", "next_change", "time_dependence"]
