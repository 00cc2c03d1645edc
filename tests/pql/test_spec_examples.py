"""Every example expression of the spec's PQL section parses; the concrete ones also check and describe.

Templates in the spec (``s.equals("v", false)``, ``t occurs ...``) are written here with their
placeholders (``s``, ``a``, ``m``, ``d``, ``t``, ``x``) kept as field names, so they parse but do not check.
"""

from __future__ import annotations

import pytest

from openseg.pql import check, describe, parse, to_text

CONCRETE = [
    'homeAddress.country = "US"',
    '$1.homeAddress.country = "US"',
    '(Profile) => Profile.homeAddress.country = "US"',
    'identityMap.containsKey("email")',
    "age(person.birthDate) >= 18",
    "person.birthDate.anniversary(today)",
    "person.birthDate occurs this month",
    'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 30 days before now].count() >= 3',
    'exists E from xEvent where E.eventType = "commerce.purchases"',
    'EXISTS E FROM xEvent WHERE E.eventType = "commerce.purchases"',
    'forall E from xEvent where E.eventType = "web.webpagedetails.pageViews"',
    'xEvent.any(eventType = "commerce.purchases")',
    'xEvent.all(eventType = "commerce.purchases")',
    "select X from xEvent where X.commerce.order.priceTotal > 100",
    ('chain(xEvent, timestamp, [C0: WHAT(eventType = "commerce.productViews") WHEN(<= 3 days before now), '
    'C1: WHAT(eventType = "commerce.purchases") WHEN(<= 1 day after C0)])'),
    ('chain(xEvent, timestamp, [C0: WHAT(eventType = "commerce.productViews") WHEN(<= 3 days before now), '
    'C1: WHAT(eventType = "commerce.purchases") WHEN(<= 1 day after C0) not])'),
    'inSegment("3f1c1a9e-7a53-4bb8-9a52-2d3c1f7c0b11")',
    'inSegment("aam", "3f1c1a9e-7a53-4bb8-9a52-2d3c1f7c0b11")',
    'xEvent[productListItems.exists(name.equals("Tent", false))].count() > 0',
    'homeAddress.country in ["US", "CA"] and homeAddress.country notIn ["FR"]',
    'if(loyalty.tier = "gold", 2, 1) = 2',
    "loyalty.joinDate occurs < 30 days before now",
    'loyalty.joinDate occurs <= 7 days after date("2020-01-31")',
    'loyalty.joinDate occurs between date("2020-01-01") and date("2020-01-31")',
    'loyalty.joinDate occurs on date("2020-01-31")',
    "loyalty.joinDate occurs today",
    "loyalty.joinDate occurs in last 7 days",
    "loyalty.joinDate occurs within 7 days before now",
    "loyalty.joinDate occurs last week or loyalty.joinDate occurs next year",
    'loyalty.joinDate > date("2020-01-31") and loyalty.joinDate < date(2021, 1, 31)',
    'xEvent[timestamp > datetime("2020-01-31T10:00:00Z")].count() > 0',
    ("person.birthDate.getYear() = currentYear() or person.birthDate.getMonth() = currentMonth() "
    "or person.birthDate.getDayOfMonth() = currentDayOfMonth()"),
    "abs(loyalty.points) > 1 and round(loyalty.points) = floor(loyalty.points) + ceil(loyalty.points) % 2",
    ("xEvent.sum(commerce.order.priceTotal) > 10 and xEvent.average(commerce.order.priceTotal) > 1 "
    "and xEvent.min(commerce.order.priceTotal) > 0 and xEvent.max(commerce.order.priceTotal) < 1000"),
]

TEMPLATES = [
    "a.isNull()", "a.isNotNull()", "a.exists()", "x in [1, 2]", "x notIn [1, 2]", "if(c, a, b)",
    's.equals("v", false)', 's.notEqualTo("v")', 's.startsWith("v")', 's.startsWith("v", true)',
    's.doesNotStartWith("v")', 's.endsWith("v")', 's.doesNotEndWith("v")', 's.contains("v")',
    's.doesNotContain("v")', 's like "%v_"', 's.matches("regex")', 's.regexGroup("re", 1)', "s.lower()",
    "s.upper()", "s.length()", "concat(a, b)", "s.trim()", "a.includes(v)", "a.intersects([1])",
    "a.intersection([1])", "a.subsetOf([1])", "a.supersetOf([1])", "a.distinct()", "a.count()", "a.first(1)",
    "a.last(1)", "a.topN(v, 3)", "a.bottomN(v, 3)", "a.head()", "a.sum()", "a.average()", "a.min()", "a.max()",
    "a.isEmpty()", "a.isNotEmpty()", 'm.get("key")', "m.keys()", "m.values()", 'm.containsKey("k")',
    "a + b - c * d / e % f", "abs(x)", "round(x)", "floor(x)", "ceil(x)", "now()", "today()", "currentYear()",
    "currentMonth()", "currentDayOfMonth()", "d.getYear()", "d.getMonth()", "d.getDayOfMonth()",
    "t occurs < 30 days before now", "t occurs today", "t occurs this month", "t occurs in last 7 days",
    "3 days", "2 hours", "1 month", "[1, 2]", '"text"', 'date("2020-01-31")', "date(2020, 1, 31)",
    'datetime("2020-01-31T10:00:00Z")', "true", "false", "null", "(a = 1)",
]


@pytest.mark.parametrize("text", CONCRETE)
def test_concrete_examples_parse_check_and_describe(text: str) -> None:
    tree = parse(text)
    check(tree)
    assert describe(tree)
    assert parse(to_text(tree)) == tree


@pytest.mark.parametrize("text", TEMPLATES)
def test_template_examples_parse(text: str) -> None:
    tree = parse(text)
    assert parse(to_text(tree)) == tree
