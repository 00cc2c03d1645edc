"""Why one profile is, or is not, in a segment: the expression as a tree of conditions with their values.

The tree follows the expression's ``and`` / ``or`` / ``not`` down to its conditions (a comparison, an event
filter, an ``inSegment`` ...). Each node carries its PQL text (``pql.to_text``), its English
(``pql.describe``) and its value for the profile, which the Python predicate backend (``pql.to_python``)
computes from the node itself: there is no second evaluator, so the root's value is the predicate's, and the
differential tests hold that to DuckDB's result (``tests/pql/test_explain_differential.py``).

Conditions over events also say which events matched them; comparisons say the value they found.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from openseg.clock import rfc3339
from openseg.pql import ast, describe, to_text
from openseg.pql.to_python import Env, PythonCompiler

#: Event ``_id`` s an event condition lists, the most recent first.
EVENT_SAMPLE = 10

#: Registry functions whose value depends on the evaluation time (``anniversary`` only without a date).
_CLOCK_FUNCTIONS = frozenset({"currentYear", "currentMonth", "currentDayOfMonth", "age"})
_COLLECTIONS = (ast.EventFilter, ast.Select, ast.Exists, ast.ForAll, ast.Aggregate, ast.Chain)
_LITERALS = (ast.StringLiteral, ast.NumberLiteral, ast.BooleanLiteral, ast.NullLiteral, ast.DateLiteral,
             ast.DateTimeLiteral, ast.ArrayLiteral, ast.CurrentTime, ast.Duration)

Profile = Mapping[str, Any]
Event = Mapping[str, Any]
_Fn = Callable[[Env], Any]


@dataclass(frozen=True)
class EventMatches:
    """The events an event condition matched: how many, and the ``_id`` of the most recent ones."""

    matched: int
    sample: tuple[str, ...]


@dataclass(frozen=True)
class Condition:
    """One node of an explanation.

    Attributes:
        pql: The node as canonical PQL text.
        description: The node in English.
        value: Whether it holds for the profile.
        children: The operands of ``and`` / ``or`` / ``not``; empty for a condition.
        events: For a condition over events, the events it matched (None otherwise).
        found: For a comparison or a test of one value, that value for the profile (``has_found`` says
            whether there is one: None is a value, "missing").
        segment_id: For ``inSegment`` of a UPS segment, the segment it reads.
    """

    pql: str
    description: str
    value: bool
    children: tuple[Condition, ...] = ()
    events: EventMatches | None = None
    found: Any = None
    has_found: bool = False
    segment_id: str | None = None

    def walk(self) -> list[Condition]:
        """This node and every node below it, parents first."""
        return [self, *(node for child in self.children for node in child.walk())]


class Explainer:
    """An expression compiled once, to explain it for any number of profiles.

    Args:
        expr: The (checked) expression.
        as_of: The evaluation time (``now``, relative windows), as a job would use it.
    """

    def __init__(self, expr: ast.Expr, as_of: dt.datetime) -> None:
        self.as_of = as_of
        self._compiler = PythonCompiler(as_of)
        self._root = self._compile(expr)

    def explain(self, profile: Profile, events: Sequence[Event]) -> Condition:
        """The expression's conditions and their values for one merged profile and its events.

        Args:
            profile: The merged profile; ``segmentMembership.ups`` answers ``inSegment``.
            events: Its ExperienceEvents, oldest first.
        """
        return self._root.evaluate(Env(profile, events))

    def _compile(self, node: ast.Expr) -> _Node:
        if isinstance(node, ast.Lambda):
            return self._compile(node.body)
        children: tuple[ast.Expr, ...] = ()
        if isinstance(node, ast.And | ast.Or):
            children = node.operands
        elif isinstance(node, ast.Not):
            children = (node.operand,)
        found = None if children else _found_operand(node)
        sources = () if children else tuple(self._event_items(source) for source in _event_sources(node))
        return _Node(
            pql=to_text(node), description=describe(node), test=self._compiler.boolean(node),
            children=tuple(self._compile(child) for child in children),
            sources=sources, found=self._compiler.visit(found) if found is not None else None,
            segment_id=node.segment_id if isinstance(node, ast.InSegment) and node.namespace == "ups" else None,
        )

    def _event_items(self, node: ast.Expr) -> _Fn:
        """The events a collection node over events matched (see :func:`_event_sources`)."""
        if isinstance(node, ast.EventFilter | ast.Select):
            return self._compiler.visit(node)
        if isinstance(node, ast.Exists | ast.ForAll):
            matching: ast.Expr = (ast.EventFilter(node.source, node.condition) if node.variable is None
                                  else ast.Select(node.variable, node.source, node.condition))
            return self._compiler.visit(matching)
        if isinstance(node, ast.Chain):
            # The events that could fill one of its steps (the order and the windows aside).
            steps = [self._compiler.visit(ast.EventFilter(node.source, step.what))
                     for step in node.steps if not step.negated]
            return lambda env: [event for step in steps for event in step(env)]
        assert isinstance(node, ast.Aggregate)
        return self._compiler.visit(node.source)


@dataclass(frozen=True)
class _Node:
    pql: str
    description: str
    test: _Fn
    children: tuple[_Node, ...]
    sources: tuple[_Fn, ...]
    found: _Fn | None
    segment_id: str | None

    def evaluate(self, env: Env) -> Condition:
        events = None
        if self.sources:
            # Every source yields items of the profile's event list itself: keep that list's (time) order.
            chosen = {id(item) for source in self.sources for item in source(env)}
            matched = [event for event in env.events if id(event) in chosen]
            latest = [str(event.get("_id")) for event in reversed(matched[-EVENT_SAMPLE:])]
            events = EventMatches(len(matched), tuple(latest))
        return Condition(
            pql=self.pql, description=self.description, value=bool(self.test(env)),
            children=tuple(child.evaluate(env) for child in self.children), events=events,
            found=self.found(env) if self.found is not None else None, has_found=self.found is not None,
            segment_id=self.segment_id,
        )


def explain(expr: ast.Expr, profile: Profile, events: Sequence[Event], as_of: dt.datetime) -> Condition:
    """Explain ``expr`` for one profile (see :class:`Explainer` to explain many)."""
    return Explainer(expr, as_of).explain(profile, events)


def _from_events(node: ast.Expr) -> bool:
    """Whether a collection is the profile's events, or a filter or selection of them."""
    if isinstance(node, ast.FieldPath):
        return node.root is ast.Root.EVENTS
    if isinstance(node, ast.EventFilter | ast.Select):
        return _from_events(node.source)
    return False


def _event_sources(condition: ast.Expr) -> list[ast.Expr]:
    """The outermost nodes of a condition that read the profile's events: filters, selections, quantifiers,
    aggregates and chains over them."""
    found: list[ast.Expr] = []

    def visit(node: ast.Node) -> None:
        if isinstance(node, _COLLECTIONS) and _from_events(node.source):
            found.append(node)
            return
        for child in node.children():
            visit(child)

    visit(condition)
    return found


def _found_operand(node: ast.Expr) -> ast.Expr | None:
    """The operand whose value explains a condition: the non-literal side of a comparison, the value an
    ``in``, ``like`` or ``occurs`` tests, the receiver of a boolean function. None for other conditions."""
    operand: ast.Expr | None = None
    if isinstance(node, ast.Compare):
        operand = node.right if isinstance(node.left, _LITERALS) and not isinstance(node.right, _LITERALS) \
            else node.left
    elif isinstance(node, ast.In | ast.Like | ast.Occurs):
        operand = node.value
    elif isinstance(node, ast.Call):
        operand = node.target
    if operand is None or isinstance(operand, _LITERALS) or _from_events(operand):
        return None
    return operand


def reads_the_clock(expr: ast.Node) -> bool:
    """Whether the expression's value depends on the evaluation time (``now``, ``this month``, ``age()``...)."""
    for node in expr.walk():
        if isinstance(node, ast.CurrentTime | ast.PeriodWindow | ast.PeriodEdge):
            return True
        if isinstance(node, ast.Call) and (node.name in _CLOCK_FUNCTIONS or (node.name == "anniversary" and not node.args)):
            return True
    return False


@dataclass(frozen=True)
class LastEvaluation:
    """What the membership a profile has was computed from, to say why it may differ from the data now.

    Attributes:
        evaluated_at: When the last segment job evaluated the segment (None: no job has).
        definition_updated_at: When the definition last changed.
        store_built_at: When the profile store now read was built.
        references_evaluated_at: When each segment the expression reads with ``inSegment`` was last
            evaluated by a job (None: never).
    """

    evaluated_at: dt.datetime | None
    definition_updated_at: dt.datetime | None = None
    store_built_at: dt.datetime | None = None
    references_evaluated_at: Mapping[str, dt.datetime | None] | None = None


def disagreement(expr: ast.Node, qualifies: bool, is_member: bool, last: LastEvaluation,
                 as_of: dt.datetime) -> str | None:
    """Why the profile's membership from the last job differs from what the expression says now (None when
    they agree). The reasons are checked from the most to the least certain."""
    if qualifies == is_member:
        return None
    evaluated = last.evaluated_at
    if evaluated is None:
        return "no segment job has evaluated this segment yet"
    when = _text(evaluated)
    if last.definition_updated_at is not None and last.definition_updated_at > evaluated:
        return f"the definition changed at {_text(last.definition_updated_at)}, after the last job evaluated it at {when}"
    if last.store_built_at is not None and last.store_built_at > evaluated:
        return (f"the profile data changed since the last job evaluated the segment at {when}: the profile store "
                f"was built again at {_text(last.store_built_at)}")
    later = sorted(segment for segment, at in (last.references_evaluated_at or {}).items()
                   if at is not None and at > evaluated)
    if later:
        return f"segments it reads with inSegment were evaluated again after {when}: {', '.join(later)}"
    if reads_the_clock(expr):
        return f"the expression depends on the evaluation time: the last job evaluated it at {when}, this at {_text(as_of)}"
    return f"the membership was written at {when} from data that is no longer the profile's"


def _text(moment: dt.datetime) -> str:
    # The store's times are naive UTC.
    return rfc3339(moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC))


__all__ = ["EVENT_SAMPLE", "Condition", "EventMatches", "Explainer", "LastEvaluation", "disagreement", "explain",
           "reads_the_clock"]
