"""Forms from Adobe's PQL reference pages parse to the same tree as their long spelling."""

from __future__ import annotations

import math

import pytest

from openseg.pql import ast, parse
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


@pytest.mark.parametrize("text", [
    "scores.map(x => x * x).count() > 0",
    'xEvent.filter(e => e.eventType = "a").count() > 0',
    "xEvent[productListItems.topN(x => x.priceTotal, 1).count() > 0].count() > 0",
])
def test_a_lambda_on_an_item_expression_function_is_a_parse_error(text: str) -> None:
    with pytest.raises(PqlError, match="reads the fields of each item: write its expression without"):
        parse(text)


def test_filter_and_map_are_item_expressions() -> None:
    assert parse('xEvent.filter(eventType = "a").count() > 1') == parse('xEvent[eventType = "a"].count() > 1')
    mapped = parse("xEvent[productListItems.map(priceTotal).includes(100)].count() > 0")
    assert any(isinstance(n, ast.Call) and n.name == "map" for n in mapped.walk())
