"""Forms from Adobe's PQL reference pages parse to the same tree as their long spelling."""

from __future__ import annotations

import math

import pytest

from openseg.pql import ast, parse, to_text
from openseg.pql._py_values import power
from openseg.pql.errors import PqlError

SAME = [
    # datetime-functions.md lists `from` as a direction: "3 days from now" lies after now.
    ("loyalty.joinDate occurs <= 3 days from now", "loyalty.joinDate occurs <= 3 days after now"),
    ("loyalty.joinDate occurs = 1 day from today", "loyalty.joinDate occurs = 1 day after today"),
    # logical-quantifiers.md: `: condition` is `where condition`.
    ('exists E from xEvent : E.eventType = "a"', 'exists E from xEvent where E.eventType = "a"'),
    ('forall E from xEvent : E.eventType = "a"', 'forall E from xEvent where E.eventType = "a"'),
    # ... and several bindings nest, each condition joined by `and` to the next binding.
    ('exists E from xEvent where (E.commerce.order.priceTotal > 50), I from E.productListItems where I.SKU = "PS"',
     'exists E from xEvent where (E.commerce.order.priceTotal > 50 and '
     'exists I from E.productListItems where I.SKU = "PS")'),
    ('forall E from xEvent : E.eventType = "a", I from E.productListItems : I.SKU = "PS"',
     'forall E from xEvent where (E.eventType = "a" and forall I from E.productListItems where I.SKU = "PS")'),
    ('exists E from xEvent : E.eventType = "a", I from E.productListItems : I.SKU = "PS", '
     'J from I.productAddMethod : J = "x"',
     'exists E from xEvent where (E.eventType = "a" and exists I from E.productListItems where '
     '(I.SKU = "PS" and exists J from I.productAddMethod where J = "x"))'),
]


@pytest.mark.parametrize(("short", "long"), SAME)
def test_reference_spelling_is_the_long_spelling(short: str, long: str) -> None:
    assert parse(short) == parse(long)


def test_a_comma_after_a_quantifier_inside_a_call_still_separates_arguments() -> None:
    tree = parse('if(exists E from xEvent : E.eventType = "a", 1, 0) = 1')
    assert tree == parse('if(exists E from xEvent where E.eventType = "a", 1, 0) = 1')


POWER = [
    # `^` binds tighter than unary minus and `*`, and to the right.
    ("-2 ^ 2 = -4", "-(2 ^ 2) = -4"),
    ("2 ^ 3 ^ 2 = 512", "2 ^ (3 ^ 2) = 512"),
    ("loyalty.points * 2 ^ 2 > 1", "loyalty.points * (2 ^ 2) > 1"),
]


@pytest.mark.parametrize(("short", "long"), POWER)
def test_power_precedence(short: str, long: str) -> None:
    assert parse(short) == parse(long)


@pytest.mark.parametrize(("base", "exponent", "expected"), [
    (2.0, 3.0, 8.0), (2.0, -1.0, 0.5), (-2.0, 3.0, -8.0), (0.0, 0.0, 1.0),
    (0.0, -1.0, None), (-8.0, 0.5, None),  # not real numbers: missing, as `x / 0` is
    (10.0, 400.0, math.inf), (-10.0, 401.0, -math.inf),  # IEEE overflow, as DuckDB and Spark give
])
def test_power_values(base: float, exponent: float, expected: float | None) -> None:
    assert power(base, exponent) == expected


LAMBDAS = [
    # The overview's lambda notation on item functions: `x => x.f` reads the item's field f.
    ('xEvent.filter(e => e.eventType = "a").count() > 0', 'xEvent[eventType = "a"].count() > 0'),
    ('xEvent.filter((e) => e.eventType = "a").count() > 0', 'xEvent[eventType = "a"].count() > 0'),
    ("xEvent[productListItems.topN(x => x.priceTotal, 1).count() > 0].count() > 0",
     "xEvent[productListItems.topN(priceTotal, 1).count() > 0].count() > 0"),
    ("xEvent[productListItems.map(p => p.priceTotal * p.quantity).includes(100)].count() > 0",
     "xEvent[productListItems.map(priceTotal * quantity).includes(100)].count() > 0"),
    ('xEvent[productListItems.groupBy(p => p.SKU).containsKey("a")].count() > 0',
     'xEvent[productListItems.groupBy(SKU).containsKey("a")].count() > 0'),
    ("xEvent.sum(x => x.commerce.order.priceTotal) > 10", "xEvent.sum(commerce.order.priceTotal) > 10"),
    ("scores.sum(x => x) > 10", "scores.sum() > 10"),
    # A body that needs the item itself keeps the variable; a condition on another list becomes `select`.
    ("scores.map((x) => x * 2).includes(4)", "scores.map(x => x * 2).includes(4)"),
    ("scores.sum(x => x * 2) > 10", "scores.map(x => x * 2).sum() > 10"),
    ("scores.filter(s => s > 10).count() > 0", "(select s from scores where s > 10).count() > 0"),
    ('xEvent.filter(e => e.productListItems.any(SKU = "a")).count() > 0',
     '(select e from xEvent where e.productListItems.any(SKU = "a")).count() > 0'),
    # Several names in one let, each value seeing the names before it.
    ("let A = loyalty.points, B = A * 2 in B > 10 and A < 1000",
     "let A = loyalty.points in let B = A * 2 in B > 10 and A < 1000"),
]


@pytest.mark.parametrize(("short", "long"), LAMBDAS)
def test_lambda_and_let_spellings(short: str, long: str) -> None:
    assert parse(short) == parse(long)


def test_a_lambda_that_needs_the_item_keeps_its_variable_and_renders_back() -> None:
    tree = parse("scores.map(x => x * x).includes(100)")
    (mapped,) = [n for n in tree.walk() if isinstance(n, ast.Call) and n.name == "map"]
    assert mapped.variable == "x"
    assert to_text(tree) == "scores.map(x => x * x).includes(100)"
    assert parse(to_text(tree)) == tree


@pytest.mark.parametrize(("text", "message"), [
    ("xEvent.sum(x => x.commerce.order.priceTotal * x) > 1", "use a field of x here"),
    ('homeAddress.country.startsWith(x => x)', r"startsWith takes no lambda \(x => ...\) here"),
])
def test_lambda_misuse_is_a_located_error(text: str, message: str) -> None:
    with pytest.raises(PqlError, match=message):
        parse(text)


def test_filter_and_map_are_item_expressions() -> None:
    assert parse('xEvent.filter(eventType = "a").count() > 1') == parse('xEvent[eventType = "a"].count() > 1')
    mapped = parse("xEvent[productListItems.map(priceTotal).includes(100)].count() > 0")
    assert any(isinstance(n, ast.Call) and n.name == "map" for n in mapped.walk())


UP = [
    # filter-functions.md's example: `^^` from a product item is the profile (two levels up).
    ('xEvent[productListItems[SKU = "PS" or ^^.person.gender = "female"]]',
     'xEvent[productListItems[SKU = "PS" or $1.person.gender = "female"]]'),
    # `^` is the event: the outer filter's item gets a name the inner condition reads.
    ('xEvent[productListItems[SKU = "a" and ^.eventType = "b"]].count() > 1',
     '(select UP1 from xEvent where UP1.productListItems[SKU = "a" and UP1.eventType = "b"]).count() > 1'),
    ('xEvent[eventType = "b" and productListItems[priceTotal > ^commerce.order.priceTotal]]',
     'select UP1 from xEvent where UP1.eventType = "b" and '
     'UP1.productListItems[priceTotal > UP1.commerce.order.priceTotal]'),
    # A level named by a quantifier is that variable; one beyond the last level is the profile.
    ('exists E from xEvent where E.productListItems[quantity > 1 and ^.eventType = "b"]',
     'exists E from xEvent where E.productListItems[quantity > 1 and E.eventType = "b"]'),
    ('xEvent.sum(if(^.homeAddress.country = "US", commerce.order.priceTotal, 0)) > 100',
     'xEvent.sum(if($1.homeAddress.country = "US", commerce.order.priceTotal, 0)) > 100'),
    # The item of `.any(...)`, `.all(...)` and of an aggregate's value is a level too, named like a lambda's.
    ('xEvent.any(productListItems[^.eventType = "a"].count() > 1)',
     'exists UP1 from xEvent where UP1.productListItems[UP1.eventType = "a"].count() > 1'),
    ('xEvent.all(productListItems[priceTotal > ^commerce.order.priceTotal].count() = 0)',
     'forall UP1 from xEvent where UP1.productListItems[priceTotal > UP1.commerce.order.priceTotal].count() = 0'),
    ('xEvent[productListItems.sum(quantity * ^commerce.order.priceTotal) > 2]',
     'select UP1 from xEvent where UP1.productListItems.sum(quantity * UP1.commerce.order.priceTotal) > 2'),
]


@pytest.mark.parametrize(("short", "long"), UP)
def test_the_up_operator_reads_an_enclosing_level(short: str, long: str) -> None:
    tree = parse(short)
    assert tree == parse(long)
    assert parse(to_text(tree)) == tree


CHAIN_UP = [
    # `^` from a list of a step's condition reads the step's event, which the step then names.
    'chain(xEvent, timestamp, [A: WHAT(productListItems[SKU = "SKU-1" and ^.eventType = "commerce.purchases"]), '
    'B: WHAT(eventType = "commerce.productViews")])',
    'chain(xEvent, timestamp, [A: WHAT(eventType = "a"), N: not WHAT(productListItems.exists(^.eventType = "b")), '
    'B: WHAT(productListItems[priceTotal > ^.commerce.order.priceTotal / 2]) WHEN(<= 7 days after A)])',
    'chain(xEvent, timestamp, [A: WHAT(productListItems[quantity > 1 and productAddMethod = ^.eventType and '
    '$1.homeAddress.country = "US"])])',
]


@pytest.mark.parametrize("text", CHAIN_UP)
def test_the_up_operator_reaches_a_chain_steps_event_and_is_written_back(text: str) -> None:
    tree = parse(text)
    assert isinstance(tree, ast.Chain)
    named = [step for step in tree.steps if step.variable is not None]
    assert named and all(step.variable.startswith("UP") for step in named if step.variable)
    assert to_text(tree) == text
    assert parse(to_text(tree)) == tree


def test_two_levels_up_from_a_list_of_a_step_is_the_profile() -> None:
    assert parse('chain(xEvent, timestamp, [A: WHAT(productListItems[^^.homeAddress.country = "US"])])') == parse(
        'chain(xEvent, timestamp, [A: WHAT(productListItems[$1.homeAddress.country = "US"])])')


def test_the_up_operator_from_a_counted_step_names_each_counted_event() -> None:
    tree = parse('chain(xEvent, timestamp, [A: WHAT(productListItems[^.eventType = "a"]) WHEN(< 3 days before now) '
                 'COUNT(2)])')
    assert tree == parse('(select UP1 from xEvent where UP1.productListItems[UP1.eventType = "a"] and '
                         'UP1.timestamp occurs < 3 days before now).count() >= 2')


@pytest.mark.parametrize(("text", "message"), [
    ('xEvent[productListItems[^^^.eventType = "a"]]', r"'\^\^\^' goes 3 levels up, but there are only 2 levels "
                                                      r"above it \(the last is the profile\)"),
    ('xEvent[^^.eventType = "a"]', r"'\^\^' goes 2 levels up, but there is only 1 level above it"),
    ("homeAddress.country = ^.x", r"'\^' reads a field of an enclosing filter's item, but this is not inside a "
                                  r"filter: write the profile's field without '\^'"),
    ('chain(xEvent, ^.timestamp, [A: WHAT(eventType = "a")])',
     r"the chain's time field is a field of each event, e.g. timestamp"),
    # An event aggregate's value is a field of the event (the lambda's rule): no list condition naming it.
    ('xEvent.sum(productListItems[^.commerce.order.priceTotal > 10].count()) > 1',
     "the value summed over UP1 cannot hold a condition on another list"),
    ('xEvent.sum(x => x.productListItems[x.commerce.order.priceTotal > 10].count()) > 1',
     "the value summed over x cannot hold a condition on another list"),
])
def test_the_up_operator_beyond_its_levels_is_a_located_error(text: str, message: str) -> None:
    with pytest.raises(PqlError, match=message):
        parse(text)


@pytest.mark.parametrize(("text", "inside", "outside"), [
    # as_of is Saturday 2024-06-15: this month starts on June 1, last week is Monday June 3 to Sunday June 9.
    ("loyalty.joinDate occurs before this month", "2024-05-31T23:59:59.999999", "2024-06-01T00:00:00"),
    ("loyalty.joinDate occurs after last week", "2024-06-10T00:00:00", "2024-06-09T23:59:59"),
    ("loyalty.joinDate occurs <= 2 days after last month", "2024-06-02T23:59:59", "2024-06-03T00:00:01"),
    ("loyalty.joinDate occurs < 1 day before next month", "2024-06-30T12:00:00", "2024-06-29T23:59:59"),
])
def test_a_calendar_period_as_the_time_of_a_window(text: str, inside: str, outside: str) -> None:
    """datetime-functions.md: {TIME} may be "a relative time unit": before its start, after its end."""
    import datetime as dt

    from openseg.pql.to_python import compile_predicate

    predicate = compile_predicate(parse(text), dt.datetime(2024, 6, 15, 12, tzinfo=dt.UTC))

    def joined(at: str) -> bool:
        return predicate({"loyalty": {"joinDate": dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC)}}, [])

    assert joined(inside) and not joined(outside)
