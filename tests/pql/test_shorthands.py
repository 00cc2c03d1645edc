"""AEP's shorthands read as their long spelling: `let`, `sum X.v over X from S`, and values of each event
(`xEvent.a > 0`, the Segmentation API's preview example). Evaluation is in the differential corpus."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openseg.pql import ast, check, parse
from openseg.pql.errors import PqlError
from openseg.pql.render import to_text

SAME = [
    # misc-functions.md: `let` names a value for the body.
    ('let S = (sum X.commerce.order.priceTotal over X from xEvent where X.commerce.order.currencyCode = "USD") '
     "in (S > 100 and S < 1000)",
     '(select X from xEvent where X.commerce.order.currencyCode = "USD").sum(commerce.order.priceTotal) > 100 and '
     '(select X from xEvent where X.commerce.order.currencyCode = "USD").sum(commerce.order.priceTotal) < 1000'),
    ("let P = loyalty.points in P > 10", "loyalty.points > 10"),
    ("let P = loyalty.points in let Q = P * 2 in Q > P", "loyalty.points * 2 > loyalty.points"),
    ("let H = homeAddress in H.country = H.countryCode", "homeAddress.country = homeAddress.countryCode"),
    ('xEvent[let T = eventType in T = "a"]', 'xEvent[eventType = "a"]'),
    ('let P = loyalty.points in xEvent[commerce.order.priceTotal > 1].count() > P',
     "xEvent[commerce.order.priceTotal > 1].count() > loyalty.points"),
    # ... an inner binding of the same name hides the let.
    ("let E = loyalty.points in exists E from xEvent where E.eventType = \"a\"",
     'exists E from xEvent where E.eventType = "a"'),
    # `sum X.v over X from S [where C]`, and average/min/max alike.
    ("sum X.commerce.order.priceTotal over X from xEvent > 5", "xEvent.sum(commerce.order.priceTotal) > 5"),
    ("average X.commerce.order.priceTotal over X in xEvent : X.eventType = \"a\" > 5",
     '(select X from xEvent where X.eventType = "a").average(commerce.order.priceTotal) > 5'),
    ("max X.priceTotal * X.quantity over X from productListItems > 5",
     "productListItems.max(priceTotal * quantity) > 5"),
    ("sum X over X from scores > 5", "scores.sum() > 5"),
    ("min X.commerce.order.priceTotal over X from xEvent[eventType = \"a\"] < 5",
     'xEvent[eventType = "a"].min(commerce.order.priceTotal) < 5'),
    # segmentation.yaml's preview: a value of each event, compared, means some event has it.
    ("xEvent.commerce.cartAbandons.value > 0", "xEvent.any(commerce.cartAbandons.value > 0)"),
    ("0 < xEvent.commerce.cartAbandons.value", "xEvent.any(0 < commerce.cartAbandons.value)"),
    ('xEvent.eventType in ["a", "b"]', 'xEvent.any(eventType in ["a", "b"])'),
    ('xEvent.eventType notIn ["a", "b"]', 'xEvent.any(eventType notIn ["a", "b"])'),
    ('"a" in xEvent.eventType', 'xEvent.any("a" = eventType)'),
    ('xEvent.eventType like "web%"', 'xEvent.any(eventType like "web%")'),
    ("xEvent.timestamp occurs <= 7 days before now", "xEvent.any(timestamp occurs <= 7 days before now)"),
    ('xEvent.eventType.startsWith("web")', 'xEvent.any(eventType.startsWith("web"))'),
    ('xEvent.eventType.lower() = "web"', 'xEvent.any(eventType.lower() = "web")'),
    ("xEvent.commerce.order.priceTotal.isNotNull()", "xEvent.any(commerce.order.priceTotal.isNotNull())"),
    ('not xEvent[eventType = "a"].commerce.order.priceTotal > 5',
     'not xEvent[eventType = "a"].any(commerce.order.priceTotal > 5)'),
    # ... and aggregated, it aggregates the events.
    ("xEvent.commerce.order.priceTotal.sum() > 100", "xEvent.sum(commerce.order.priceTotal) > 100"),
    ("xEvent.commerce.order.priceTotal.average() > 100", "xEvent.average(commerce.order.priceTotal) > 100"),
    ("xEvent.eventType.count() > 1", "xEvent.count() > 1"),
    # edge-segmentation.md: COUNT(n) in a one-step chain is "at least n such events" ...
    ('chain(xEvent, timestamp, [A: WHAT(eventType = "homePageView") WHEN(< 24 hours before now) COUNT(5) ] )',
     'xEvent[eventType = "homePageView" and timestamp occurs < 24 hours before now].count() >= 5'),
    ('not(chain(xEvent, timestamp, [A: WHAT(eventType = "a") COUNT(5)]))', 'not xEvent[eventType = "a"].count() >= 5'),
    ('chain(xEvent, timestamp, [A: WHAT(eventType = "a" and channel.type = "web") COUNT(2) WHEN(today)])',
     'xEvent[eventType = "a" and channel.type = "web" and timestamp occurs today].count() >= 2'),
    # ... and WHERE(C) a condition on the profile beside the sequence.
    ('chain(xEvent, timestamp, [A: WHAT(eventType = "addToCart") WHERE(identityMap.values().count() > 1)])',
     'identityMap.values().count() > 1 and chain(xEvent, timestamp, [A: WHAT(eventType = "addToCart")])'),
    ('chain(xEvent, timestamp, [A: WHAT(eventType = "a") WHERE(loyalty.points > 1), B: WHAT(eventType = "b") '
     'WHERE(loyalty.tier = "gold")])',
     'loyalty.points > 1 and loyalty.tier = "gold" and chain(xEvent, timestamp, [A: WHAT(eventType = "a"), '
     'B: WHAT(eventType = "b")])'),
]


@pytest.mark.parametrize(("short", "long"), SAME, ids=[pair[0] for pair in SAME])
def test_shorthand_is_its_long_spelling(short: str, long: str) -> None:
    assert parse(short) == parse(long)


@pytest.mark.parametrize("short", [pair[0] for pair in SAME if "scores" not in pair[0]])
def test_shorthands_render_as_text_that_reads_back_the_same(short: str) -> None:
    tree = parse(short)
    assert parse(to_text(tree)) == tree


def test_the_preview_example_names_the_standard_field_it_meant() -> None:
    # metrics.commerce.abandons is not in standard XDM (commerce.cartAbandons is): the checker says which.
    with pytest.raises(PqlError) as caught:
        check(parse("xEvent.metrics.commerce.abandons.value > 0"))
    assert caught.value.message == ("unknown field metrics.commerce.abandons.value "
                                    "(did you mean commerce.cartAbandons.value?)")


def test_the_let_example_checks_as_a_condition() -> None:
    tree = parse('let S = (sum X.commerce.order.priceTotal over X from xEvent where '
                 'X.commerce.order.currencyCode = "USD") in (S > 100 and S < 1000)')
    assert check(tree).expr == tree
    sums = [n for n in tree.walk() if isinstance(n, ast.Aggregate)]
    assert len(sums) == 2 and sums[0] == sums[1] and isinstance(sums[0].source, ast.Select)


ERRORS = [
    ("xEvent.eventType.distinct().count() > 1", 1, 1,
     "xEvent.eventType is a value of each event, which can be compared (xEvent.a > 0: some event has it), tested "
     "or aggregated (xEvent.a.sum()); for more, write exists E from xEvent where E.a ..."),
    ("xEvent.commerce.order.priceTotal + 1 > 2", 1, 1,
     "xEvent.commerce.order.priceTotal is a value of each event, which can be compared (xEvent.a > 0: some event "
     "has it), tested or aggregated (xEvent.a.sum()); for more, write exists E from xEvent where E.a ..."),
    ("xEvent.eventType = xEvent.channel", 1, 1,
     "both sides are values of each event; compare two fields of one event with exists E from xEvent where E.a = E.b"),
    ("xEvent.eventType.lower().name = 1", 1, 26,
     "cannot read field name of a computed value; only fields of the profile, events and variables can be read"),
    ("sum X.a + X over X from xEvent > 1", 1, 11, "use a field of X here (or aggregate X itself alone)"),
    ("sum X.productListItems.sum(priceTotal) over X from xEvent > 1", 1, 5,
     "the value summed over X cannot hold a condition on another list; use a field of X, e.g. "
     "X.commerce.order.priceTotal"),
    ("let S = 1 S > 0", 1, 11, "expected 'in', found S"),
    ("x = $2", 1, 5, "unknown input reference $2; only $1 (the profile) exists"),
    ('xEvent[let T = eventType in productListItems.any(T = "a")].count() > 0', 1, 50,
     "T reads a field of the current item, so it cannot be used inside a condition on another list"),
    ('chain(xEvent, timestamp, [A: WHAT(eventType = "a") COUNT(2), B: WHAT(eventType = "b")])', 1, 58,
     "COUNT(n) is supported in a chain of one step that is not negated (at least n such events); for more, "
     "compare xEvent[...].count()"),
    ('chain(xEvent, timestamp, [A: WHAT(eventType = "a") COUNT(0)])', 1, 58,
     "expected a whole number of events, at least 1, found 0"),
    ('chain(xEvent, timestamp, [A: WHAT(eventType = "a") WHEN(today) WHEN(today)])', 1, 64,
     "WHEN is written twice in step A"),
    ('chain(xEvent, timestamp, [A: WHAT(a = 1), B: not WHAT(b = 1) WHERE(c = 1)])', 1, 68,
     "WHERE(...) is a condition on the profile; write it outside the negated step, e.g. C and not chain(...)"),
]


@pytest.mark.parametrize(("text", "line", "col", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_shorthand_errors(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises(PqlError) as caught:
        parse(text)
    assert (caught.value.message, caught.value.line, caught.value.col) == (message, line, col)


@pytest.mark.parametrize("text", ["loyalty.points + 1", "identityMap.keys()", "xEvent.count()"])
def test_a_value_is_not_a_segment(text: str) -> None:
    # AEP's pages show values (orders.count()) as examples of functions; a definition is a condition.
    with pytest.raises(PqlError, match="a segment is a condition"):
        check(parse(text))


def test_let_and_over_stay_usable_as_field_names() -> None:
    assert parse("let = 1") == parse("`let` = 1")
    assert parse("sum.over > 1") == parse("`sum`.`over` > 1")


def test_group_by_is_a_map_from_each_key_to_its_items() -> None:
    tree = parse('xEvent[productListItems.groupBy(SKU).get("SKU-1").count() >= 2].count() > 0')
    checked = check(tree)
    group = next(n for n in tree.walk() if isinstance(n, ast.Call) and n.name == "groupBy")
    found = checked.type_of(group)
    assert found is not None and found.describe() == "a map of arrays of objects"


def test_group_by_keys_are_strings() -> None:
    with pytest.raises(PqlError) as caught:
        check(parse("xEvent[productListItems.groupBy(quantity).keys().count() > 1].count() > 0"))
    assert caught.value.message == "quantity is a number; the key of groupBy() must be a string"


EVENT_FIELDS = ["commerce.order.priceTotal", "eventType", "timestamp", "web.webPageDetails.name"]
PROFILE_VALUES = ["loyalty.points", "person.birthYear", "abs(loyalty.points - 3)", "loyalty.points ^ 2"]
OPS = ["=", "!=", "<", "<=", ">", ">="]


@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(EVENT_FIELDS), op=st.sampled_from(OPS), number=st.integers(-1000, 1000),
       filtered=st.booleans())
def test_any_comparison_on_an_event_field_is_some_event(field: str, op: str, number: int, filtered: bool) -> None:
    events = 'xEvent[eventType = "a"]' if filtered else "xEvent"
    assert parse(f"{events}.{field} {op} {number}") == parse(f"{events}.any({field} {op} {number})")


@settings(max_examples=60, deadline=None)
@given(value=st.sampled_from(PROFILE_VALUES), op=st.sampled_from(OPS), number=st.integers(-1000, 1000))
def test_let_is_substitution(value: str, op: str, number: int) -> None:
    assert parse(f"let V = ({value}) in V {op} {number} or {number} {op} V") == \
        parse(f"({value}) {op} {number} or {number} {op} ({value})")
