"""The registry of every PQL function: its name, where it applies, its arguments and its result.

The parser resolves names through :func:`lookup` (case-insensitively, as AEP does: ``CHAIN(...)`` and
``chain(...)`` are the same), the AST validates ``Call`` arity against it, the checker validates
argument and receiver types, and ``docs/pql.md`` documents exactly these names (a test keeps both in
step). ``node`` names the AST class the parser builds for a name, so compilers know that e.g.
``count`` never reaches them as a ``Call`` but as an ``Aggregate``.

Type specs (``ArgType``) are deliberately coarse: the checker refines them with the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType


class ArgType(str, Enum):
    """The type a receiver, argument or result must have (or, for results, how it is derived)."""

    ANY = "any"
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"  # integer or floating point
    BOOLEAN = "boolean"
    TEMPORAL = "temporal"  # date or datetime
    DATE = "date"
    DATETIME = "datetime"
    ARRAY = "array"
    MAP = "map"
    STRING_ARRAY = "array of string"
    ELEMENT = "element"  # the element type of the receiver array (an argument or a result)
    SAME = "same"  # the receiver's own type (results only)
    MAP_VALUE = "map value"  # the value type of the receiver map (results only)
    MAP_VALUES = "array of map values"  # results only
    ITEM_VALUE = "item value"  # an expression over one item of the receiver (paths are item-relative)
    ITEM_VALUES = "array of item values"  # results only: an array of the item value argument's type
    GROUPS = "map of item groups"  # results only: each value of the item value argument -> its items
    PREDICATE = "predicate"  # a boolean expression over one item of the receiver
    EVENTS = "events"  # xEvent or an event filter
    STEPS = "steps"  # the bracketed step list of chain()


class Category(str, Enum):
    """Where a function applies; the sections of docs/pql.md."""

    NULL = "null"
    COMPARISON = "comparison"
    LOGIC = "logic"
    STRING = "string"
    ARRAY = "array"
    MAP = "map"
    MATH = "math"
    DATETIME = "datetime"
    AGGREGATE = "aggregate"
    QUANTIFIER = "quantifier"
    SEQUENCE = "sequence"
    SEGMENT = "segment"
    LITERAL = "literal"


class Form(str, Enum):
    """How a function is written."""

    METHOD = "method"  # receiver.name(args)
    FUNCTION = "function"  # name(args); for functions with a receiver, the first argument is it
    INFIX = "infix"  # receiver name operand
    KEYWORD = "keyword"  # its own syntax (exists X from ... where ..., t occurs ...)


@dataclass(frozen=True, slots=True)
class Param:
    """One formal argument."""

    name: str
    type: ArgType
    optional: bool = False
    variadic: bool = False


@dataclass(frozen=True, slots=True)
class Signature:
    """Everything the front end and the backends need to know about one function name.

    Attributes:
        name: Canonical spelling (as AEP documents it).
        category: Where it applies.
        receiver: Type of the value it is called on (``a.f()`` or ``f(a)``), None for free functions.
        params: Formal arguments after the receiver.
        result: Result type.
        forms: Ways to write it.
        node: The AST class the parser builds (``Call`` for the long tail).
        summary: One line of English for docs and errors.
        example: A PQL expression using it (must parse; docs/pql.md shows it).
    """

    name: str
    category: Category
    receiver: ArgType | None
    params: tuple[Param, ...]
    result: ArgType
    forms: frozenset[Form]
    node: str
    summary: str
    example: str

    @property
    def min_args(self) -> int:
        """Fewest arguments accepted after the receiver."""
        return sum(1 for p in self.params if not p.optional and not p.variadic) + sum(
            1 for p in self.params if p.variadic and not p.optional
        )

    @property
    def max_args(self) -> int | None:
        """Most arguments accepted after the receiver (None when variadic)."""
        if any(p.variadic for p in self.params):
            return None
        return len(self.params)

    def accepts(self, count: int) -> bool:
        """Whether ``count`` arguments (after the receiver) is a valid arity."""
        high = self.max_args
        return count >= self.min_args and (high is None or count <= high)

    def arity_text(self) -> str:
        """The accepted argument counts in words, for error messages."""
        low, high = self.min_args, self.max_args
        if high is None:
            return f"at least {low} argument{'s' if low != 1 else ''}"
        if low == high:
            return f"{low} argument{'s' if low != 1 else ''}" if low else "no arguments"
        return f"{low} to {high} arguments"


_M, _F, _I, _K = Form.METHOD, Form.FUNCTION, Form.INFIX, Form.KEYWORD
A = ArgType


def _sig(
    name: str,
    category: Category,
    receiver: ArgType | None,
    params: tuple[Param, ...],
    result: ArgType,
    forms: tuple[Form, ...],
    summary: str,
    example: str,
    node: str = "Call",
) -> Signature:
    return Signature(name, category, receiver, params, result, frozenset(forms), node, summary, example)


def _case(name: str) -> Param:
    return Param(name, A.BOOLEAN, optional=True)


_STRING_TESTS = (
    ("equals", "is equal to", 'homeAddress.country.equals("us", false)'),
    ("notEqualTo", "is not equal to", 'homeAddress.country.notEqualTo("US")'),
    ("startsWith", "starts with", 'personalEmail.address.startsWith("john")'),
    ("doesNotStartWith", "does not start with", 'personalEmail.address.doesNotStartWith("test")'),
    ("endsWith", "ends with", 'personalEmail.address.endsWith("@example.com")'),
    ("doesNotEndWith", "does not end with", 'personalEmail.address.doesNotEndWith(".org", false)'),
    ("contains", "contains", 'person.name.lastName.contains("son")'),
    ("doesNotContain", "does not contain", 'person.name.lastName.doesNotContain("test")'),
)

_SIGNATURES: tuple[Signature, ...] = (
    # --- null and existence -------------------------------------------------------------------
    _sig("isNull", Category.NULL, A.ANY, (), A.BOOLEAN, (_M,), "the value is missing or null",
         "person.birthDate.isNull()"),
    _sig("isNotNull", Category.NULL, A.ANY, (), A.BOOLEAN, (_M,), "the value is present",
         "person.birthDate.isNotNull()"),
    _sig("exists", Category.NULL, A.ANY, (Param("condition", A.PREDICATE, optional=True),), A.BOOLEAN,
         (_M, _K), "the value is present; with a condition or as `exists X from S where C`, some item "
         "matches (an `Exists` node)", 'xEvent[productListItems.exists(name.equals("Tent", false))].count() > 0',
         node="Call|Exists"),
    # --- comparison / membership ----------------------------------------------------------------
    _sig("in", Category.COMPARISON, A.ANY, (Param("values", A.ARRAY),), A.BOOLEAN, (_I,),
         "the value is one of the listed values", 'homeAddress.country in ["US", "CA"]', node="In"),
    _sig("notIn", Category.COMPARISON, A.ANY, (Param("values", A.ARRAY),), A.BOOLEAN, (_I,),
         "the value is none of the listed values", 'homeAddress.country notIn ["US", "CA"]', node="In"),
    _sig("if", Category.LOGIC, None,
         (Param("condition", A.BOOLEAN), Param("then", A.ANY), Param("otherwise", A.ANY)), A.ANY, (_F,),
         "the second argument when the condition holds, else the third",
         'if(loyalty.tier = "gold", 2, 1) = 2', node="If"),
    # --- strings --------------------------------------------------------------------------------
    *(
        _sig(name, Category.STRING, A.STRING, (Param("value", A.STRING), _case("caseSensitive")),
             A.BOOLEAN, (_M,), f"the string {words} the value (case-insensitively when the second "
             "argument is false)", example)
        for name, words, example in _STRING_TESTS
    ),
    _sig("like", Category.STRING, A.STRING, (Param("pattern", A.STRING),), A.BOOLEAN, (_I,),
         "the string matches a pattern where `%` is any run of characters and `_` one character",
         'person.name.firstName like "Jo%"', node="Like"),
    _sig("matches", Category.STRING, A.STRING, (Param("regex", A.STRING),), A.BOOLEAN, (_M,),
         "the string matches the regular expression", 'mobilePhone.number.matches("^\\\\+1")'),
    _sig("regexGroup", Category.STRING, A.STRING, (Param("regex", A.STRING), Param("group", A.INTEGER)),
         A.STRING, (_M,), "the text of a capture group of the regular expression",
         'personalEmail.address.regexGroup("@(.+)$", 1) = "example.com"'),
    _sig("lower", Category.STRING, A.STRING, (), A.STRING, (_M,), "the string in lower case",
         'homeAddress.city.lower() = "paris"'),
    _sig("upper", Category.STRING, A.STRING, (), A.STRING, (_M,), "the string in upper case",
         'homeAddress.countryCode.upper() = "US"'),
    _sig("trim", Category.STRING, A.STRING, (), A.STRING, (_M,),
         "the string without leading and trailing spaces", 'person.name.firstName.trim() = "Ann"'),
    _sig("length", Category.STRING, A.STRING, (), A.INTEGER, (_M,), "the number of characters",
         "person.name.lastName.length() > 5"),
    _sig("concat", Category.STRING, None, (Param("values", A.ANY, variadic=True),), A.STRING, (_F,),
         "the values joined as one string",
         'concat(person.name.firstName, " ", person.name.lastName) = "Ann Lee"'),
    # --- arrays and sets ------------------------------------------------------------------------
    _sig("includes", Category.ARRAY, A.ARRAY, (Param("value", A.ELEMENT),), A.BOOLEAN, (_M,),
         "the array contains the value", 'identityMap.keys().includes("email")'),
    _sig("intersects", Category.ARRAY, A.ARRAY, (Param("values", A.ARRAY),), A.BOOLEAN, (_M,),
         "the arrays share at least one value", 'identityMap.keys().intersects(["email", "ECID"])'),
    _sig("intersection", Category.ARRAY, A.ARRAY, (Param("values", A.ARRAY),), A.SAME, (_M,),
         "the values present in both arrays", 'identityMap.keys().intersection(["email", "ECID"]).count() = 2'),
    _sig("subsetOf", Category.ARRAY, A.ARRAY, (Param("values", A.ARRAY),), A.BOOLEAN, (_M,),
         "every value of the array is in the other", 'identityMap.keys().subsetOf(["email", "ECID", "phone"])'),
    _sig("supersetOf", Category.ARRAY, A.ARRAY, (Param("values", A.ARRAY),), A.BOOLEAN, (_M,),
         "the array holds every value of the other", 'identityMap.keys().supersetOf(["email"])'),
    _sig("distinct", Category.ARRAY, A.ARRAY, (), A.SAME, (_M,), "the array without duplicates",
         "identityMap.keys().distinct().count() > 1"),
    _sig("first", Category.ARRAY, A.ARRAY, (Param("n", A.INTEGER),), A.SAME, (_M,),
         "the first n items", 'identityMap.keys().first(1).includes("email")'),
    _sig("last", Category.ARRAY, A.ARRAY, (Param("n", A.INTEGER),), A.SAME, (_M,),
         "the last n items", 'identityMap.keys().last(1).includes("ECID")'),
    _sig("topN", Category.ARRAY, A.ARRAY, (Param("value", A.ITEM_VALUE), Param("n", A.INTEGER)), A.SAME,
         (_M,), "the n items with the largest value of a numeric item expression",
         'xEvent[productListItems.topN(priceTotal, 1).exists(name = "Tent")].count() > 0'),
    _sig("bottomN", Category.ARRAY, A.ARRAY, (Param("value", A.ITEM_VALUE), Param("n", A.INTEGER)), A.SAME,
         (_M,), "the n items with the smallest value of a numeric item expression",
         'xEvent[productListItems.bottomN(priceTotal, 1).exists(name = "Socks")].count() > 0'),
    _sig("filter", Category.ARRAY, A.ARRAY, (Param("condition", A.PREDICATE),), A.SAME, (_M,),
         "the items matching the condition on their fields (the same as `array[condition]`)",
         'xEvent[productListItems.filter(priceTotal > 100).count() >= 1].count() > 0', node="EventFilter"),
    _sig("map", Category.ARRAY, A.ARRAY, (Param("value", A.ITEM_VALUE),), A.ITEM_VALUES, (_M,),
         "the value of an item expression for each item, in order",
         'xEvent[productListItems.map(priceTotal * quantity).includes(100)].count() > 0'),
    _sig("groupBy", Category.ARRAY, A.ARRAY, (Param("key", A.ITEM_VALUE),), A.GROUPS, (_M,),
         "the items grouped by the (string) value of an item expression: a map from each value to its items",
         'xEvent[productListItems.groupBy(SKU).get("SKU-1").count() >= 2].count() > 0'),
    _sig("head", Category.ARRAY, A.ARRAY, (), A.ELEMENT, (_M,), "the first item",
         'identityMap.email.head().isNotNull()'),
    _sig("isEmpty", Category.ARRAY, A.ARRAY, (), A.BOOLEAN, (_M,), "the array has no items (or is missing)",
         'xEvent[productListItems.isEmpty()].count() = 0'),
    _sig("isNotEmpty", Category.ARRAY, A.ARRAY, (), A.BOOLEAN, (_M,), "the array has at least one item",
         'xEvent[productListItems.isNotEmpty()].count() > 0'),
    _sig("any", Category.QUANTIFIER, A.ARRAY, (Param("condition", A.PREDICATE),), A.BOOLEAN, (_M,),
         "some item matches the condition (an `Exists` node)",
         'xEvent.any(eventType = "commerce.purchases")', node="Exists"),
    _sig("all", Category.QUANTIFIER, A.ARRAY, (Param("condition", A.PREDICATE),), A.BOOLEAN, (_M,),
         "every item matches the condition (a `ForAll` node)",
         'xEvent.all(eventType = "web.webpagedetails.pageViews")', node="ForAll"),
    _sig("forall", Category.QUANTIFIER, A.ARRAY, (Param("condition", A.PREDICATE),), A.BOOLEAN, (_K,),
         "`forall X from S where C`: every item of S matches C",
         'forall E from xEvent where E.eventType = "web.webpagedetails.pageViews"', node="ForAll"),
    _sig("select", Category.QUANTIFIER, A.ARRAY, (Param("condition", A.PREDICATE, optional=True),), A.SAME,
         (_K,), "`select X from S where C`: the items of S matching C (true when there is one)",
         "select X from xEvent where X.commerce.order.priceTotal > 100", node="Select"),
    # --- aggregates (events and arrays) ---------------------------------------------------------
    _sig("count", Category.AGGREGATE, A.ARRAY, (), A.INTEGER, (_M,), "the number of items",
         'xEvent[eventType = "commerce.purchases"].count() >= 3', node="Aggregate"),
    _sig("sum", Category.AGGREGATE, A.ARRAY, (Param("value", A.ITEM_VALUE, optional=True),), A.NUMBER, (_M,),
         "the sum of an item expression (or of the items)",
         'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 100', node="Aggregate"),
    _sig("average", Category.AGGREGATE, A.ARRAY, (Param("value", A.ITEM_VALUE, optional=True),), A.NUMBER,
         (_M,), "the mean of an item expression (or of the items)",
         "xEvent.average(commerce.order.priceTotal) > 50", node="Aggregate"),
    _sig("min", Category.AGGREGATE, A.ARRAY, (Param("value", A.ITEM_VALUE, optional=True),), A.ITEM_VALUE,
         (_M,), "the smallest value of an item expression (or of the items)",
         "xEvent.min(commerce.order.priceTotal) < 5", node="Aggregate"),
    _sig("max", Category.AGGREGATE, A.ARRAY, (Param("value", A.ITEM_VALUE, optional=True),), A.ITEM_VALUE,
         (_M,), "the largest value of an item expression (or of the items)",
         "xEvent.max(commerce.order.priceTotal) > 500", node="Aggregate"),
    # --- maps -----------------------------------------------------------------------------------
    _sig("get", Category.MAP, A.MAP, (Param("key", A.STRING),), A.MAP_VALUE, (_M,), "the value under a key",
         'identityMap.get("email").isNotEmpty()'),
    _sig("keys", Category.MAP, A.MAP, (), A.STRING_ARRAY, (_M,), "the keys of the map",
         'identityMap.keys().includes("ECID")'),
    _sig("values", Category.MAP, A.MAP, (), A.MAP_VALUES, (_M,), "the values of the map",
         "identityMap.values().count() > 1"),
    _sig("containsKey", Category.MAP, A.MAP, (Param("key", A.STRING),), A.BOOLEAN, (_M,),
         "the map has the key", 'identityMap.containsKey("email")'),
    # --- math -----------------------------------------------------------------------------------
    _sig("abs", Category.MATH, A.NUMBER, (), A.SAME, (_M, _F), "the absolute value",
         "abs(loyalty.points) > 10"),
    _sig("round", Category.MATH, A.NUMBER, (), A.INTEGER, (_M, _F), "the nearest integer (halves away from 0)",
         "round(loyalty.points / 3) = 4"),
    _sig("floor", Category.MATH, A.NUMBER, (), A.INTEGER, (_M, _F), "the largest integer not above",
         "floor(loyalty.points / 3) = 3"),
    _sig("ceil", Category.MATH, A.NUMBER, (), A.INTEGER, (_M, _F), "the smallest integer not below",
         "ceil(loyalty.points / 3) = 4"),
    # --- dates and times ------------------------------------------------------------------------
    _sig("now", Category.DATETIME, None, (), A.DATETIME, (_F, _K), "the evaluation time (UTC)",
         "person.birthDate < now()", node="CurrentTime"),
    _sig("today", Category.DATETIME, None, (), A.DATE, (_F, _K), "the evaluation day (UTC calendar day)",
         "loyalty.joinDate occurs today", node="CurrentTime"),
    _sig("currentYear", Category.DATETIME, None, (), A.INTEGER, (_F,), "the year of the evaluation time",
         "loyalty.joinDate.getYear() = currentYear()"),
    _sig("currentMonth", Category.DATETIME, None, (), A.INTEGER, (_F,), "the month (1-12) of the evaluation time",
         "person.birthDate.getMonth() = currentMonth()"),
    _sig("currentDayOfMonth", Category.DATETIME, None, (), A.INTEGER, (_F,),
         "the day of the month of the evaluation time", "person.birthDate.getDayOfMonth() = currentDayOfMonth()"),
    _sig("getYear", Category.DATETIME, A.TEMPORAL, (), A.INTEGER, (_M,), "the year",
         "person.birthDate.getYear() in [1991, 1992, 1993]"),
    _sig("getMonth", Category.DATETIME, A.TEMPORAL, (), A.INTEGER, (_M,), "the month (1-12)",
         "person.birthDate.getMonth() = 6"),
    _sig("getDayOfMonth", Category.DATETIME, A.TEMPORAL, (), A.INTEGER, (_M,), "the day of the month",
         "person.birthDate.getDayOfMonth() <= 15"),
    _sig("age", Category.DATETIME, A.TEMPORAL, (), A.INTEGER, (_M, _F),
         "whole years between the date and the evaluation day", "age(person.birthDate) >= 18"),
    _sig("anniversary", Category.DATETIME, A.TEMPORAL, (Param("anchor", A.TEMPORAL, optional=True),),
         A.BOOLEAN, (_M,), "the date's month and day are those of the anchor (default: today)",
         "person.birthDate.anniversary(today)"),
    _sig("occurs", Category.DATETIME, A.TEMPORAL, (), A.BOOLEAN, (_K,),
         "the time falls in a window: `occurs <= 7 days before now`, `between`, `on`, `this month` ...",
         'xEvent[timestamp occurs <= 7 days before now].count() > 0', node="Occurs"),
    _sig("date", Category.LITERAL, None, (Param("parts", A.ANY, variadic=True),), A.DATE, (_F,),
         'a date: `date("2020-01-31")` or `date(2020, 1, 31)`', 'person.birthDate < date("2000-01-01")',
         node="DateLiteral"),
    _sig("datetime", Category.LITERAL, None, (Param("text", A.STRING),), A.DATETIME, (_F,),
         "a UTC date and time", 'xEvent[timestamp > datetime("2024-01-01T00:00:00Z")].count() > 0',
         node="DateTimeLiteral"),
    # --- sequences and segments -----------------------------------------------------------------
    _sig("chain", Category.SEQUENCE, None,
         (Param("events", A.EVENTS), Param("timeField", A.ITEM_VALUE), Param("steps", A.STEPS)), A.BOOLEAN,
         (_F,), "events matching the steps occur in order, within each step's time window",
         'chain(xEvent, timestamp, [C0: WHAT(eventType = "commerce.productViews") WHEN(<= 3 days before now), '
         'C1: WHAT(eventType = "commerce.purchases") WHEN(<= 1 day after C0)])', node="Chain"),
    _sig("inSegment", Category.SEGMENT, None,
         (Param("namespaceOrId", A.STRING), Param("segmentId", A.STRING, optional=True)), A.BOOLEAN, (_F,),
         "the profile is currently in the segment (status realized or existing)",
         'inSegment("3f1c1a9e-7a53-4bb8-9a52-2d3c1f7c0b11")', node="InSegment"),
)

FUNCTIONS: Mapping[str, Signature] = MappingProxyType({s.name: s for s in _SIGNATURES})
"""Every function, keyed by canonical name."""

_BY_LOWER: dict[str, Signature] = {name.lower(): sig for name, sig in FUNCTIONS.items()}


def lookup(name: str) -> Signature | None:
    """The signature of a function name, matched case-insensitively; None when unknown."""
    return _BY_LOWER.get(name.lower())


def canonical(name: str) -> str | None:
    """The registry spelling of a function name, or None when unknown."""
    sig = lookup(name)
    return sig.name if sig else None


def call_names() -> frozenset[str]:
    """Names that reach compilers as a generic ``Call`` node (the long tail of functions)."""
    return frozenset(name for name, sig in FUNCTIONS.items() if "Call" in sig.node.split("|"))
