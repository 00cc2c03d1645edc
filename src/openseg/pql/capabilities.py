"""What an expression needs from the segmentation service: evaluation types and segment references.

AEP decides per definition whether it may be evaluated in streaming (``continuous``) and on the edge
(``synchronous``) (Experience League, segmentation "streaming segmentation" and "edge segmentation"
guides): streaming takes profile-only conditions, one event condition (with or without a time window), or a
sequence of events within 24 hours; edge takes profile-only conditions, one event within 24 hours, or segments of
segments. openseg can evaluate every shape in streaming, but reports here the reason AEP would refuse,
so ``evaluationInfo`` reads as AEP's would.
"""

from __future__ import annotations

from typing import Any

from openseg.pql import ast

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


def evaluation_info(expr: ast.Expr) -> dict[str, dict[str, Any]]:
    """AEP's ``evaluationInfo`` for an expression, with a ``reason`` where AEP would not enable a type.

    Returns:
        ``{"batch": {"enabled": True}, "continuous": {"enabled", "reason"?}, "synchronous": {...}}``.
    """
    continuous = _continuous_refusal(expr)
    synchronous = _synchronous_refusal(expr)
    return {
        "batch": {"enabled": True},
        "continuous": _entry(continuous),
        "synchronous": _entry(synchronous),
    }


def _entry(refusal: str | None) -> dict[str, Any]:
    return {"enabled": True} if refusal is None else {"enabled": False, "reason": refusal}


def _event_parts(expr: ast.Node) -> list[ast.Expr]:
    """The outermost constructs over xEvent (a count over a filter is one part, not two)."""
    parts: list[ast.Expr] = []

    def scan(node: ast.Node) -> None:
        if isinstance(node, _EVENT_CONSTRUCTS) and uses_events(node):
            parts.append(node)
            return
        for child in node.children():
            scan(child)

    scan(expr)
    return parts


def _continuous_refusal(expr: ast.Expr) -> str | None:
    if any(isinstance(node, ast.InSegment) for node in expr.walk()):
        return "AEP streams only profile and event conditions; this refers to other segments (inSegment)"
    parts = _event_parts(expr)
    if not parts:
        return None
    if len(parts) > 1:
        return "AEP streams at most one event condition or one sequence; this has " + str(len(parts))
    part = parts[0]
    if isinstance(part, ast.Chain):
        if len(part.steps) == 1 or all(step.when is not None and _within_day(step.when) for step in part.steps):
            return None
        return "AEP streams a sequence of events only when each step is within 24 hours"
    if isinstance(part, ast.Aggregate | ast.ForAll):
        return _single_event_refusal(part)
    # A single incoming event streams with or without a time restriction.
    return None


def _synchronous_refusal(expr: ast.Expr) -> str | None:
    parts = _event_parts(expr)
    if not parts:
        return None
    if any(isinstance(node, ast.InSegment) for node in expr.walk()):
        return "AEP evaluates segments of segments on the edge only without event conditions"
    if len(parts) > 1:
        return "AEP evaluates on the edge at most one event condition; this has " + str(len(parts))
    part = parts[0]
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
        return isinstance(window.anchor, ast.CurrentTime | ast.StepRef)
    if isinstance(window, ast.PeriodWindow):
        return window.relation is ast.PeriodRelation.THIS and window.unit is ast.TimeUnit.DAY
    return False
