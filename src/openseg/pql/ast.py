"""The typed, immutable PQL syntax tree: the single source SQL, Python and English are derived from.

Every node is a frozen, slotted dataclass carrying a :class:`Span` (keyword-only, excluded from equality
and hashing, so two trees written differently but meaning the same compare equal and can key caches).
Nodes validate themselves at construction and raise :class:`InvalidNode` (a ``PqlError`` located at the
node's span), so later stages can trust the tree.

Scoping is resolved by the parser, not left to backends: each :class:`FieldPath` says what it is rooted
at (:class:`Root`):

* ``PROFILE`` — the merged profile: a bare top-level path (``homeAddress.country``), ``$1.x``, or the
  parameter of a top-level lambda (``(Profile) => Profile.x``; ``name`` keeps the spelling).
* ``EVENTS`` — ``xEvent``, all of the profile's ExperienceEvents (no segments).
* ``ITEM`` — the current item inside ``xEvent[...]``, ``a.any(...)``, ``a.exists(cond)``, an aggregate's
  value (``.sum(commerce.order.priceTotal)``), ``topN``'s value, and a chain step's ``WHAT``/time field.
* ``VARIABLE`` — a name bound by ``exists/forall/select X from ...`` or a lambda ``x => ...`` (``name``).

Method forms are normalised: ``a.any(c)`` is ``Exists(None, a, c)``, ``a.all(c)`` is ``ForAll``,
``a.count()/sum/average/min/max`` are ``Aggregate``, ``now()/today()`` are ``CurrentTime``,
``in``/``notIn`` are ``In(negated=...)``, ``x.f(args)`` and ``f(x, args)`` are both ``Call(f, x, args)``,
and ``occurs in last N units`` is ``RelativeWindow(LE, N, unit, BEFORE, now)``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Generic, TypeVar

from openseg.pql import functions
from openseg.pql.errors import PqlError, UnknownNodeError
from openseg.pql.limits import MAX_DURATION_DAYS, duration_too_long

# --------------------------------------------------------------------------------------------------
# positions


@dataclass(frozen=True, slots=True)
class Span:
    """Where a node sits in the source: 0-based ``start``/``end`` offsets, 1-based ``line``/``col``."""

    start: int = 0
    end: int = 0
    line: int = 1
    col: int = 1

    def to(self, other: Span) -> Span:
        """The span covering from this one to the end of ``other``."""
        return Span(self.start, max(self.end, other.end), self.line, self.col)


NO_SPAN = Span()


class InvalidNode(PqlError):
    """A node was built with an impossible combination of parts."""

    def __init__(self, message: str, span: Span) -> None:
        super().__init__(message, line=span.line, col=span.col, offset=span.start, end_offset=span.end)


# --------------------------------------------------------------------------------------------------
# enumerations


class CompareOp(str, Enum):
    """Comparison operators."""

    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


class ArithOp(str, Enum):
    """Arithmetic operators."""

    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    MOD = "%"
    POW = "^"


class Root(str, Enum):
    """What a field path starts from (see the module docstring)."""

    PROFILE = "profile"
    EVENTS = "xEvent"
    ITEM = "item"
    VARIABLE = "variable"


class TimeUnit(str, Enum):
    """Units of durations and windows (AEP also accepts plurals; the parser folds them)."""

    MILLISECOND = "millisecond"
    SECOND = "second"
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"
    DECADE = "decade"
    CENTURY = "century"
    MILLENNIUM = "millennium"


class Direction(str, Enum):
    """Which side of the anchor a time lies on."""

    BEFORE = "before"
    AFTER = "after"


class CurrentTimeKind(str, Enum):
    """Times relative to the evaluation time ``as_of`` (``now`` is a datetime; the others UTC days)."""

    NOW = "now"
    TODAY = "today"
    YESTERDAY = "yesterday"
    TOMORROW = "tomorrow"


class PeriodRelation(str, Enum):
    """``this``/``last``/``next`` calendar period (UTC) relative to the evaluation time."""

    THIS = "this"
    LAST = "last"
    NEXT = "next"


class AggregateKind(str, Enum):
    """Aggregates over events or array items."""

    COUNT = "count"
    SUM = "sum"
    AVG = "average"
    MIN = "min"
    MAX = "max"


# --------------------------------------------------------------------------------------------------
# base classes


@dataclass(frozen=True, slots=True)
class Node:
    """Base of every tree node."""

    span: Span = field(default=NO_SPAN, kw_only=True, compare=False, repr=False)

    def children(self) -> Iterator[Node]:
        """Direct child nodes, in field order."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Node):
                yield value
            elif isinstance(value, tuple):
                yield from (item for item in value if isinstance(item, Node))

    def walk(self) -> Iterator[Node]:
        """This node and all its descendants, depth first, parents before children."""
        yield self
        for child in self.children():
            yield from child.walk()

    def _fail(self, message: str) -> None:
        raise InvalidNode(message, self.span)


@dataclass(frozen=True, slots=True)
class Expr(Node):
    """Base of nodes that produce a value."""


@dataclass(frozen=True, slots=True)
class TimeWindow(Node):
    """Base of the windows ``occurs`` and chain ``WHEN`` test a time against."""


# --------------------------------------------------------------------------------------------------
# literals


@dataclass(frozen=True, slots=True)
class StringLiteral(Expr):
    """``"text"``."""

    value: str


@dataclass(frozen=True, slots=True)
class NumberLiteral(Expr):
    """``42`` (int) or ``4.2`` (float); the Python type records which was written."""

    value: int | float

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            self._fail(f"a number literal needs an int or float, not {type(self.value).__name__}")

    @property
    def is_integer(self) -> bool:
        """Whether the literal was written without a fraction or exponent."""
        return isinstance(self.value, int)


@dataclass(frozen=True, slots=True)
class BooleanLiteral(Expr):
    """``true`` / ``false``."""

    value: bool


@dataclass(frozen=True, slots=True)
class NullLiteral(Expr):
    """``null``."""


@dataclass(frozen=True, slots=True)
class DateLiteral(Expr):
    """``date("2020-01-31")`` or ``date(2020, 1, 31)``."""

    value: dt.date

    def __post_init__(self) -> None:
        if isinstance(self.value, dt.datetime) or not isinstance(self.value, dt.date):
            self._fail("a date literal needs a date without a time")


@dataclass(frozen=True, slots=True)
class DateTimeLiteral(Expr):
    """``datetime("2020-01-31T10:00:00Z")``; always timezone-aware UTC."""

    value: dt.datetime

    def __post_init__(self) -> None:
        if not isinstance(self.value, dt.datetime) or self.value.utcoffset() != dt.timedelta(0):
            self._fail("a datetime literal needs a UTC date and time")


@dataclass(frozen=True, slots=True)
class Duration(Expr):
    """``3 days``: a non-negative whole amount of a time unit."""

    amount: int
    unit: TimeUnit

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 0:
            self._fail("a duration needs a whole, non-negative amount")
        if duration_too_long(self.amount, self.unit.value):
            self._fail(f"a duration can be at most {MAX_DURATION_DAYS} days (10,000 years) long")


@dataclass(frozen=True, slots=True)
class ArrayLiteral(Expr):
    """``[1, 2, 3]``."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class CurrentTime(Expr):
    """``now``/``now()``, ``today``/``today()``, ``yesterday``, ``tomorrow`` — resolved against ``as_of``."""

    kind: CurrentTimeKind


@dataclass(frozen=True, slots=True)
class PeriodEdge(Expr):
    """A ``this``/``last``/``next`` calendar period as the time a window is anchored on (datetime-functions.md:
    ``{TIME}`` may be "a relative time unit"): ``before this month`` is before its first instant (``end``
    False), ``after last week`` after its last instant (``end`` True). UTC, resolved against ``as_of``."""

    relation: PeriodRelation
    unit: TimeUnit
    end: bool = False

    def __post_init__(self) -> None:
        if self.unit in (TimeUnit.MILLISECOND, TimeUnit.SECOND):
            self._fail(f"'{self.relation.value} {self.unit.value}' is not a calendar period")


# --------------------------------------------------------------------------------------------------
# references


@dataclass(frozen=True, slots=True)
class FieldPath(Expr):
    """A field reached from a root, e.g. ``homeAddress.country`` (root PROFILE, two segments).

    Attributes:
        root: What the path starts from.
        segments: Field names (map keys included, e.g. ``segmentMembership.ups.<id>.status``).
        name: The spelling of the root when written: ``"$1"``, the lambda parameter, or the variable.
    """

    root: Root
    segments: tuple[str, ...]
    name: str | None = None

    def __post_init__(self) -> None:
        if self.root is Root.VARIABLE and not self.name:
            self._fail("a variable path needs the variable's name")
        if self.root is Root.EVENTS and self.segments:
            self._fail("xEvent is a list of events; use xEvent[...] to filter them, not xEvent.field")
        if self.root in (Root.PROFILE, Root.ITEM) and not self.segments and self.name is None:
            self._fail("a field path needs at least one field name")
        if any(not segment for segment in self.segments):
            self._fail("a field path cannot have an empty field name")

    @property
    def dotted(self) -> str:
        """The path's fields joined by dots (``homeAddress.country``), without the root."""
        return ".".join(self.segments)


@dataclass(frozen=True, slots=True)
class StepRef(Expr):
    """An earlier chain step named as a ``WHEN`` anchor: ``WHEN(<= 1 day after C0)``."""

    name: str


# --------------------------------------------------------------------------------------------------
# operators


@dataclass(frozen=True, slots=True)
class Compare(Expr):
    """``left op right``."""

    op: CompareOp
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class And(Expr):
    """``a and b and ...`` (flattened, two or more operands)."""

    operands: tuple[Expr, ...]

    def __post_init__(self) -> None:
        if len(self.operands) < 2:
            self._fail("'and' needs at least two operands")


@dataclass(frozen=True, slots=True)
class Or(Expr):
    """``a or b or ...`` (flattened, two or more operands)."""

    operands: tuple[Expr, ...]

    def __post_init__(self) -> None:
        if len(self.operands) < 2:
            self._fail("'or' needs at least two operands")


@dataclass(frozen=True, slots=True)
class Not(Expr):
    """``not a`` — two-valued: true when ``a`` is false, including when ``a``'s values are missing."""

    operand: Expr


@dataclass(frozen=True, slots=True)
class In(Expr):
    """``value in values`` or, negated, ``value notIn values``."""

    value: Expr
    values: Expr
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Like(Expr):
    """``value like "pattern"`` (``%`` any run of characters, ``_`` one character)."""

    value: Expr
    pattern: Expr


@dataclass(frozen=True, slots=True)
class If(Expr):
    """``if(condition, then, otherwise)``."""

    condition: Expr
    then: Expr
    otherwise: Expr


@dataclass(frozen=True, slots=True)
class Arithmetic(Expr):
    """``left op right`` with ``+ - * / %`` and ``^`` (power)."""

    op: ArithOp
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Negate(Expr):
    """Unary minus on a non-literal: ``-loyalty.points``."""

    operand: Expr


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """A registry function (see ``functions.FUNCTIONS`` where ``node`` includes ``Call``).

    Attributes:
        name: Canonical registry name (``startsWith``, ``getYear``, ``concat`` ...).
        target: The receiver (``x`` in ``x.f()`` and in ``f(x)``), None for free functions.
        args: The arguments after the receiver.
        variable: The lambda variable of an item-value argument (``x`` in ``scores.map(x => x * 2)``),
            whose paths in that argument are rooted at VARIABLE; None when the argument reads the item's
            fields bare (``productListItems.map(priceTotal)``, paths rooted at ITEM).
    """

    name: str
    target: Expr | None
    args: tuple[Expr, ...] = ()
    variable: str | None = None

    def __post_init__(self) -> None:
        sig = functions.FUNCTIONS.get(self.name)
        if sig is None or "Call" not in sig.node.split("|"):
            self._fail(f"unknown function {self.name}")
            return
        if (sig.receiver is None) != (self.target is None):
            where = "on a value" if sig.receiver is not None else "without a receiver"
            self._fail(f"{self.name} is called {where}")
        if not sig.accepts(len(self.args)):
            self._fail(f"{self.name} takes {sig.arity_text()}, not {len(self.args)}")
        if self.variable is not None and not any(p.type is functions.ArgType.ITEM_VALUE for p in sig.params):
            self._fail(f"{self.name} takes no lambda (x => ...)")


# --------------------------------------------------------------------------------------------------
# time windows


@dataclass(frozen=True, slots=True)
class RelativeWindow(TimeWindow):
    """``op amount unit direction anchor``: ``<= 30 days before now``, ``< 1 hour after C0``.

    The time lies on ``direction``'s side of ``anchor`` and its distance from it compares ``op`` to the
    duration. ``anchor`` is a ``CurrentTime``, a date/datetime literal, a ``FieldPath`` or a ``StepRef``.
    """

    op: CompareOp
    amount: int
    unit: TimeUnit
    direction: Direction
    anchor: Expr

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 0:
            self._fail("a time window needs a whole, non-negative amount")
        if duration_too_long(self.amount, self.unit.value):
            self._fail(f"a time window can be at most {MAX_DURATION_DAYS} days (10,000 years) long")


@dataclass(frozen=True, slots=True)
class PointWindow(TimeWindow):
    """``before anchor`` / ``after anchor`` with no distance."""

    direction: Direction
    anchor: Expr


@dataclass(frozen=True, slots=True)
class OnWindow(TimeWindow):
    """``on anchor`` (also ``occurs today``): the same UTC calendar day as the anchor."""

    anchor: Expr


@dataclass(frozen=True, slots=True)
class BetweenWindow(TimeWindow):
    """``between start and end`` (inclusive)."""

    start: Expr
    end: Expr


@dataclass(frozen=True, slots=True)
class PeriodWindow(TimeWindow):
    """``this month``, ``last week``, ``next year``: a UTC calendar period around the evaluation time."""

    relation: PeriodRelation
    unit: TimeUnit

    def __post_init__(self) -> None:
        if self.unit in (TimeUnit.MILLISECOND, TimeUnit.SECOND):
            self._fail(f"'{self.relation.value} {self.unit.value}' is not a calendar period")


@dataclass(frozen=True, slots=True)
class Occurs(Expr):
    """``time occurs window``."""

    value: Expr
    window: TimeWindow


# --------------------------------------------------------------------------------------------------
# collections: events and arrays


@dataclass(frozen=True, slots=True)
class EventFilter(Expr):
    """``source[condition]``: the items of ``source`` (usually ``xEvent``) for which ``condition`` holds.

    Paths in ``condition`` are rooted at ``ITEM``. As a boolean (top level, and/or/not/if operand) it
    means "at least one item matches".
    """

    source: Expr
    condition: Expr


@dataclass(frozen=True, slots=True)
class Aggregate(Expr):
    """``source.count()``, ``source.sum(value)``, ``average``, ``min``, ``max``.

    ``value`` is an ITEM-rooted expression; None aggregates the items themselves (``a.sum()`` over an
    array of numbers). ``count`` never takes a value.
    """

    kind: AggregateKind
    source: Expr
    value: Expr | None = None

    def __post_init__(self) -> None:
        if self.kind is AggregateKind.COUNT and self.value is not None:
            self._fail("count() takes no argument")


@dataclass(frozen=True, slots=True)
class Exists(Expr):
    """Some item of ``source`` satisfies ``condition``.

    From ``exists X from source where condition`` (variable ``X``), ``source.any(condition)`` or
    ``source.exists(condition)`` (variable None, paths rooted at ``ITEM``).
    """

    variable: str | None
    source: Expr
    condition: Expr


@dataclass(frozen=True, slots=True)
class ForAll(Expr):
    """Every item of ``source`` satisfies ``condition`` (true for no items). See :class:`Exists`."""

    variable: str | None
    source: Expr
    condition: Expr


@dataclass(frozen=True, slots=True)
class Select(Expr):
    """``select X from source where condition``: the matching items (as a boolean: there is one)."""

    variable: str
    source: Expr
    where: Expr | None = None

    def __post_init__(self) -> None:
        if not self.variable:
            self._fail("select needs a variable name")


@dataclass(frozen=True, slots=True)
class ChainStep(Node):
    """``C0: WHAT(condition) WHEN(window)``, optionally negated (no such event in that place).

    Paths in ``what`` are rooted at ``ITEM``; ``when`` may anchor on earlier steps via ``StepRef``. When the up
    operator inside a list of ``what`` reads the step's event (``WHAT(productListItems[^.eventType = "a"])``),
    ``variable`` names that event and the event's paths in ``what`` are rooted at that ``VARIABLE``.
    """

    name: str
    what: Expr
    when: TimeWindow | None = None
    negated: bool = False
    variable: str | None = None


@dataclass(frozen=True, slots=True)
class Chain(Expr):
    """``chain(source, time_field, [steps])``: events matching the steps occur in order."""

    source: Expr
    time_field: FieldPath
    steps: tuple[ChainStep, ...]

    def __post_init__(self) -> None:
        if not self.steps:
            self._fail("chain needs at least one step")
        seen: set[str] = set()
        for step in self.steps:
            if step.name in seen:
                raise InvalidNode(f"chain step {step.name} is named twice", step.span)
            if step.when is not None:
                for node in step.when.walk():
                    if isinstance(node, StepRef) and node.name not in seen:
                        raise InvalidNode(
                            f"step {step.name} refers to {node.name}, which is not an earlier step", node.span
                        )
            seen.add(step.name)
        if all(step.negated for step in self.steps):
            self._fail("a chain needs at least one step that is not negated")
        if self.time_field.root is not Root.ITEM:
            self._fail("the chain's time field is a field of each event, e.g. timestamp")


@dataclass(frozen=True, slots=True)
class InSegment(Expr):
    """``inSegment("id")`` / ``inSegment("namespace", "id")``: membership realized or existing.

    Namespaces compare case-insensitively (``"UPS"`` is ``"ups"``, as AEP's ``segmentMembership`` keys
    are): the node holds the namespace lower-cased, so every evaluator sees one spelling.
    """

    segment_id: str
    namespace: str = "ups"

    def __post_init__(self) -> None:
        if not self.segment_id:
            self._fail("inSegment needs a segment id")
        if not self.namespace:
            self._fail("inSegment needs a namespace")
        object.__setattr__(self, "namespace", self.namespace.lower())


@dataclass(frozen=True, slots=True)
class Lambda(Expr):
    """A top-level ``(Profile) => body``; the parameter's paths in ``body`` are rooted at PROFILE."""

    params: tuple[str, ...]
    body: Expr

    def __post_init__(self) -> None:
        if len(self.params) != 1:
            self._fail("a PQL lambda takes exactly one parameter (the profile)")


# --------------------------------------------------------------------------------------------------
# visiting

R = TypeVar("R")


class Visitor(Generic[R]):
    """Dispatches ``visit(node)`` to ``visit_<NodeClass>``; compilers and describe subclass it.

    A node class without a method raises :class:`UnknownNodeError` (from ``unknown_node``), so a backend
    that has not been taught a node fails loudly instead of producing wrong output.
    """

    def visit(self, node: Node) -> R:
        """Visit one node."""
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            return self.unknown_node(node)
        result: R = method(node)
        return result

    def unknown_node(self, node: Node) -> R:
        """Called for node classes without a ``visit_`` method; raises by default."""
        raise UnknownNodeError(f"{type(self).__name__} cannot handle {type(node).__name__} nodes")


NODE_CLASSES: tuple[type[Node], ...] = (
    StringLiteral, NumberLiteral, BooleanLiteral, NullLiteral, DateLiteral, DateTimeLiteral, Duration,
    ArrayLiteral, CurrentTime, PeriodEdge, FieldPath, StepRef, Compare, And, Or, Not, In, Like, If, Arithmetic, Negate,
    Call, RelativeWindow, PointWindow, OnWindow, BetweenWindow, PeriodWindow, Occurs, EventFilter, Aggregate,
    Exists, ForAll, Select, ChainStep, Chain, InSegment, Lambda,
)
"""Every concrete node class (a backend test can assert it has a ``visit_`` method for each)."""
