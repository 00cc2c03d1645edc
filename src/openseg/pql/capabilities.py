"""What an expression needs from the segmentation service: evaluation types and segment references.

AEP decides per definition whether it may be evaluated in streaming (``continuous``) and on the edge
(``synchronous``). openseg follows the rules AEP applies to new and edited definitions since 20 May 2025,
quoted in ``shared/design/streaming.md`` §2:

* Streaming (``help/segmentation/methods/streaming-segmentation.md@027b04f``): profile only; a single event
  "within a time window of less than 24 hours" (``<= 24 hours`` in the page's own example), alone or with
  profile attributes; several events in a sequence, each within 24 hours. "A single event with no time
  window" and one "with a time window longer than 24 hours" are batch; "The lookback window is limited to
  one day"; "the entire event cannot be a negation". ``inSegment`` streams only beside such an event and only
  when "the segment contained in the inSegment event is profile only"
  (``help/segmentation/api/streaming-segmentation.md@ad58a75``, which resolves the page's contradiction).
* Edge (``help/segmentation/methods/edge-segmentation.md@6ffcd3c``): profile only; a single event within
  24 hours, alone or with profile attributes; segments of segments; not "a single event combined with
  inSegment, unless the referenced definition is profile-only"; and "The definition must be tied to a merge
  policy that is active on edge" (``isActiveOnEdge``).

openseg can evaluate every shape, but reports here the reason AEP would refuse, so ``evaluationInfo`` reads
as AEP's would.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from openseg.pql import ast
from openseg.pql._time import fixed_delta

_DAY_MS = 24 * 60 * 60 * 1000
_UNIT_MS = {
    ast.TimeUnit.MILLISECOND: 1,
    ast.TimeUnit.SECOND: 1000,
    ast.TimeUnit.MINUTE: 60_000,
    ast.TimeUnit.HOUR: 3_600_000,
    ast.TimeUnit.DAY: _DAY_MS,
}
_EVENT_CONSTRUCTS = (ast.EventFilter, ast.Aggregate, ast.Exists, ast.ForAll, ast.Select, ast.Chain)


def segment_references(expr: ast.Node) -> tuple[str, ...]:
    """The segment ids ``expr`` uses through ``inSegment``, in first-use order, without repeats."""
    seen: dict[str, None] = {}
    for node in expr.walk():
        if isinstance(node, ast.InSegment):
            seen.setdefault(node.segment_id, None)
    return tuple(seen)


def uses_events(expr: ast.Node) -> bool:
    """Whether ``expr`` reads the profile's ExperienceEvents (``xEvent``)."""
    return any(isinstance(node, ast.FieldPath) and node.root is ast.Root.EVENTS for node in expr.walk())


def read_fields(expr: ast.Node) -> frozenset[str] | None:
    """The top-level fields of the profile and of its events that ``expr`` can read: the first two names of each
    of its field paths, whatever they start from (``X.eventType`` may name an event variable's field before
    the checker resolves ``X``). A superset: a name spelt only inside a list's items, or a nested field's name,
    costs a reader a column it did not need, never a value it did. None when a path names a whole record
    (``$1``, or a variable alone), which reads every field."""
    names: set[str] = set()
    for node in expr.walk():
        if not isinstance(node, ast.FieldPath):
            continue
        if node.segments:
            names.update(node.segments[:2])
        elif node.root in (ast.Root.PROFILE, ast.Root.VARIABLE):
            return None
    return frozenset(names)


def event_horizon(expr: ast.Node) -> dt.timedelta | None:
    """How old an event can be and still count for ``expr``, at any evaluation time (None: any age can).

    Bounded when every use of ``xEvent`` keeps only events inside a window that ends at the evaluation time:
    the list filtered (``xEvent[...]``, ``exists``/``any``, ``select ... where``) by a conjunct such as
    ``timestamp occurs <= 1 hours before now`` or ``timestamp occurs this day``. Whatever is done with such a
    list (a count, a negation, a later step) then reads only events younger than the window, so an event older
    than the horizon can change neither the answer now nor the answer later, when it is older still. AEP streams
    only such definitions ("a single event within a time window of less than 24 hours"), so streaming and the
    edge can leave older events of the profile store unread. An expression reading no events has a horizon of
    zero; a chain, a ``for all``, or a count of all events has none."""
    horizon = dt.timedelta(0)
    stack: list[tuple[ast.Node, ast.Node | None]] = [(expr, None)]
    while stack:
        node, parent = stack.pop()
        if isinstance(node, ast.FieldPath) and node.root is ast.Root.EVENTS:
            bound = _list_bound(parent, node)
            if bound is None:
                return None
            horizon = max(horizon, bound)
        stack.extend((child, node) for child in node.children())
    return horizon


def _list_bound(consumer: ast.Node | None, events: ast.FieldPath) -> dt.timedelta | None:
    """The window a construct taking ``xEvent`` as its source keeps its events within (None: none)."""
    if isinstance(consumer, ast.EventFilter) and consumer.source is events:
        return _condition_bound(consumer.condition, None)
    if isinstance(consumer, ast.Exists) and consumer.source is events:
        return _condition_bound(consumer.condition, consumer.variable)
    if isinstance(consumer, ast.Select) and consumer.source is events and consumer.where is not None:
        return _condition_bound(consumer.where, consumer.variable)
    return None


def _condition_bound(condition: ast.Node, variable: str | None) -> dt.timedelta | None:
    # A window bounds every matching event only as a top-level conjunct (not one side of an 'or').
    if isinstance(condition, ast.And):
        bounds = [b for b in (_condition_bound(o, variable) for o in condition.operands) if b is not None]
        return min(bounds) if bounds else None
    if not isinstance(condition, ast.Occurs) or not _is_event_time(condition.value, variable):
        return None
    window = condition.window
    if isinstance(window, ast.RelativeWindow):
        delta = fixed_delta(window.unit)
        ends_now = isinstance(window.anchor, ast.CurrentTime) and window.anchor.kind is ast.CurrentTimeKind.NOW
        if delta is None or not ends_now or window.direction is not ast.Direction.BEFORE or window.op not in (
                ast.CompareOp.LT, ast.CompareOp.LE):
            return None
        return window.amount * delta
    if isinstance(window, ast.PeriodWindow) and window.relation is ast.PeriodRelation.THIS:
        return fixed_delta(window.unit) if window.unit in (ast.TimeUnit.MINUTE, ast.TimeUnit.HOUR,
                                                          ast.TimeUnit.DAY) else None
    return None


def _is_event_time(value: ast.Node, variable: str | None) -> bool:
    """Whether ``value`` is the filtered event's own ``timestamp``."""
    if not isinstance(value, ast.FieldPath) or value.segments != ("timestamp",):
        return False
    return value.root is ast.Root.ITEM if variable is None else (
        value.root is ast.Root.VARIABLE and value.name == variable)


def is_profile_only(expr: ast.Node, referenced: Callable[[str], bool] = lambda _: False) -> bool:
    """Whether ``expr`` reads only profile attributes: no events, and only ``inSegment`` of profile-only ``ups``
    definitions (``referenced(id)`` answers for those)."""
    if uses_events(expr):
        return False
    return all(node.namespace == "ups" and referenced(node.segment_id)
               for node in expr.walk() if isinstance(node, ast.InSegment))


def evaluation_info(expr: ast.Expr, *, profile_only: Callable[[str], bool] = lambda _: False,
                    active_on_edge: bool = True) -> dict[str, dict[str, Any]]:
    """AEP's ``evaluationInfo`` for an expression, with a ``reason`` where AEP would not enable a type.

    Args:
        expr: The definition's expression.
        profile_only: Whether the ``ups`` definition with a given id is profile only (for ``inSegment``).
        active_on_edge: Whether the definition's merge policy has ``isActiveOnEdge: true``.

    Returns:
        ``{"batch": {"enabled": True}, "continuous": {"enabled", "reason"?}, "synchronous": {...}}``.
    """
    continuous = _continuous_refusal(expr, profile_only)
    synchronous = _synchronous_refusal(expr, profile_only, active_on_edge)
    return {
        "batch": {"enabled": True},
        "continuous": _entry(continuous),
        "synchronous": _entry(synchronous),
    }


def _entry(refusal: str | None) -> dict[str, Any]:
    return {"enabled": True} if refusal is None else {"enabled": False, "reason": refusal}


def _event_parts(expr: ast.Node) -> list[tuple[ast.Expr, bool]]:
    """The outermost constructs over xEvent (a count over a filter is one part, not two), each with whether
    it stands under a ``not``."""
    parts: list[tuple[ast.Expr, bool]] = []

    def scan(node: ast.Node, negated: bool) -> None:
        if isinstance(node, _EVENT_CONSTRUCTS) and uses_events(node):
            parts.append((node, negated))
            return
        for child in node.children():
            scan(child, negated or isinstance(node, ast.Not))

    scan(expr, False)
    return parts


def _segment_refusal(expr: ast.Expr, profile_only: Callable[[str], bool], where: str) -> str | None:
    for node in expr.walk():
        if isinstance(node, ast.InSegment) and not (node.namespace == "ups" and profile_only(node.segment_id)):
            return (f"AEP {where} inSegment beside an event only when the referenced definition is profile only; "
                    f"{node.namespace}:{node.segment_id} is not")
    return None


def _continuous_refusal(expr: ast.Expr, profile_only: Callable[[str], bool]) -> str | None:
    parts = _event_parts(expr)
    has_segments = any(isinstance(node, ast.InSegment) for node in expr.walk())
    if not parts:
        if has_segments:
            return ("AEP streams inSegment only beside an event within 24 hours, not segments of segments "
                    "(rules of 20 May 2025)")
        return None
    if len(parts) > 1:
        return "AEP streams at most one event condition or one sequence; this has " + str(len(parts))
    part, negated = parts[0]
    refusal = _segment_refusal(expr, profile_only, "streams")
    if refusal is not None:
        return refusal
    if negated:
        return "AEP does not stream an event condition that is negated as a whole"
    if isinstance(part, ast.Chain):
        if all(step.when is not None and _within_day(step.when) for step in part.steps):
            return None
        if len(part.steps) == 1:
            return "AEP streams a single event only within 24 hours; this step has no such window"
        return "AEP streams a sequence of events only when each step is within 24 hours"
    return _single_event_refusal(part)


def _synchronous_refusal(expr: ast.Expr, profile_only: Callable[[str], bool], active_on_edge: bool) -> str | None:
    if not active_on_edge:
        return "AEP evaluates on the edge only with a merge policy that is active on edge (isActiveOnEdge: true)"
    parts = _event_parts(expr)
    if not parts:
        return None
    refusal = _segment_refusal(expr, profile_only, "evaluates on the edge")
    if refusal is not None:
        return refusal
    if len(parts) > 1:
        return "AEP evaluates on the edge at most one event condition; this has " + str(len(parts))
    part, negated = parts[0]
    if negated:
        return "AEP evaluates on the edge one event within 24 hours, not its negation"
    if isinstance(part, ast.Chain):
        if len(part.steps) > 1:
            return "AEP does not evaluate sequences of several events on the edge"
        step = part.steps[0]
        if step.negated or step.when is None or not _within_day(step.when):
            return "AEP evaluates on the edge one event within 24 hours; this step has no such window"
        return None
    return _single_event_refusal(part)
def _single_event_refusal(part: ast.Expr) -> str | None:
    if isinstance(part, ast.Aggregate):
        if part.kind is not ast.AggregateKind.COUNT:
            return f"AEP evaluates {part.kind.value}() over events only in batch"
        return "AEP evaluates counts of events only in batch"
    if isinstance(part, ast.ForAll):
        return "AEP evaluates 'for all events' conditions only in batch"
    condition = _condition_of(part)
    if condition is None or not _has_day_window(condition):
        return "AEP needs the event condition to be within 24 hours (e.g. timestamp occurs today)"
    return None


def _condition_of(part: ast.Expr) -> ast.Expr | None:
    if isinstance(part, ast.EventFilter | ast.Exists):
        return part.condition
    if isinstance(part, ast.Select):
        return part.where
    return None


def _has_day_window(condition: ast.Node) -> bool:
    # The window must constrain every matching event: a top-level conjunct, not one side of an 'or'.
    if isinstance(condition, ast.And):
        return any(_has_day_window(operand) for operand in condition.operands)
    return isinstance(condition, ast.Occurs) and _within_day(condition.window)


def _within_day(window: ast.TimeWindow) -> bool:
    if isinstance(window, ast.RelativeWindow):
        size = _UNIT_MS.get(window.unit)
        upper_bounded = window.op in (ast.CompareOp.LT, ast.CompareOp.LE, ast.CompareOp.EQ)
        anchored_on_step = isinstance(window.anchor, ast.StepRef)
        near_now = anchored_on_step or (
            isinstance(window.anchor, ast.CurrentTime) and window.direction is ast.Direction.BEFORE
        )
        return size is not None and upper_bounded and near_now and window.amount * size <= _DAY_MS
    if isinstance(window, ast.OnWindow):
        # "The lookback window is limited to one day": yesterday and tomorrow lie outside it.
        today = (ast.CurrentTimeKind.TODAY, ast.CurrentTimeKind.NOW)
        return isinstance(window.anchor, ast.StepRef) or (
            isinstance(window.anchor, ast.CurrentTime) and window.anchor.kind in today)
    if isinstance(window, ast.PeriodWindow):
        return window.relation is ast.PeriodRelation.THIS and window.unit is ast.TimeUnit.DAY
    return False
