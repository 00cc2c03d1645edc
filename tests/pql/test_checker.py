"""The checker names problems in words at the offending node, and types what it accepts."""

from __future__ import annotations

import pyarrow as pa
import pytest

from openseg.pql import PqlError, PqlErrors, check, parse
from openseg.xdm.schema import FieldType, Schema


def problem(text: str, schema: Schema | None = None) -> PqlError:
    with pytest.raises(PqlError) as caught:
        check(parse(text), schema, source=text)
    return caught.value


BIRTH_YEAR = Schema.standard().merge(
    Schema(FieldType.object(person=FieldType.object(birthYear=FieldType.integer())), FieldType.object())
)


def test_type_mismatch_names_both_sides() -> None:
    error = problem('person.birthYear = "1990"', BIRTH_YEAR)
    assert error.message == 'person.birthYear is a number; "1990" is a string'
    assert (error.line, error.col) == (1, 1)
    assert error.snippet() == 'person.birthYear = "1990"\n' + "^" * 25


def test_unknown_field_suggests_the_closest() -> None:
    error = problem('homeAddress.cuntry = "US"')
    assert error.message == "unknown field homeAddress.cuntry (did you mean homeAddress.country?)"


def test_unknown_top_level_field_without_close_match() -> None:
    assert problem("shoeSize > 3").message == "unknown field shoeSize"


MESSAGES = [
    # A field read through an array is the field of each item: a list, which a string does not equal.
    ('xEvent[productListItems.name = "x"].count() > 1',
     ('productListItems.name is an array of strings; "x" is a string (some item: '
      'productListItems.name.includes("x"))')),
    ('organizations.name.count() > 1', "organizations is an array of strings and has no field name"),
    ('homeAddress.country.city = "x"', "homeAddress.country is a string and has no field city"),
    ("homeAddress.country > 3", 'homeAddress.country is a string; 3 is a number'),
    ("loyalty.points + 1", "a segment is a condition (true or false), but this is a number"),
    ('person.name.firstName.getYear() = 2000', "person.name.firstName is a string; getYear() needs a date or a date and time"),
    ("loyalty.points like \"1%\"", "loyalty.points is a number; 'like' needs a string"),
    ('homeAddress.country occurs today', "homeAddress.country is a string; 'occurs' needs a date or a date and time"),
    ('xEvent[eventType = "a"].sum(eventType) > 1', "eventType is a string; sum() needs numbers"),
    ("homeAddress.country in [1, 2]", 'homeAddress.country is a string; [1, 2] is an array of numbers'),
    ('homeAddress.country and true', "homeAddress.country is a string; a condition (true or false) is needed here"),
    ('homeAddress.country.startsWith(1)', "1 is a number; the value of startsWith() must be a string"),
    ('xEvent[productListItems.topN(name, 1).exists(name = "Tent")].count() > 0',
     "name is a string; the value of topN() must be a number"),
    ("xEvent[productListItems.bottomN(p => p.SKU, 2).count() > 0].count() > 0",
     "SKU is a string; the value of bottomN() must be a number"),
    ('identityMap.email.includes(3)', "3 is a number; the value of includes() must be an object"),
]


@pytest.mark.parametrize(("text", "message"), MESSAGES, ids=[m[0] for m in MESSAGES])
def test_checker_messages(text: str, message: str) -> None:
    assert problem(text).message == message


def test_every_problem_is_reported() -> None:
    error = problem('homeAddress.cuntry = "US" and loyalty.tier > true')
    assert isinstance(error, PqlErrors)
    assert [e.message for e in error.errors] == [
        "unknown field homeAddress.cuntry (did you mean homeAddress.country?)",
        "loyalty.tier is a string; true is a boolean",
    ]
    assert [e.col for e in error.errors] == [1, 31]


ACCEPTED = [
    'homeAddress.country = "US"',
    'identityMap.containsKey("email")',
    'identityMap.email.exists(primary = true)',
    'segmentMembership.ups.`0c8a`.status in ["realized", "existing"]',
    "person.birthDate occurs this month",
    'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 100',
    'xEvent[productListItems.exists(name.equals("Tent", false))].count() > 0',
    'exists E from xEvent where E.commerce.order.priceTotal > 10 and E.timestamp occurs in last 7 days',
    "select X from xEvent where X.commerce.order.priceTotal > 100",
    'xEvent[eventType = "x"]',
    "age(person.birthDate) >= 18 and loyalty.points / 2 > 1.5",
    '(P) => P.loyalty.joinDate < date("2020-01-01")',
    'chain(xEvent, timestamp, [C0: WHAT(eventType = "a") WHEN(today)])',
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepts_well_typed_expressions(text: str) -> None:
    checked = check(parse(text))
    assert checked.type == FieldType.boolean()


def test_types_of_nodes_are_available() -> None:
    tree = parse('xEvent[eventType = "x"].sum(commerce.order.priceTotal) > 1')
    checked = check(tree)
    aggregate = tree.left  # type: ignore[attr-defined]
    assert checked.type_of(aggregate) == FieldType.number()
    assert checked.type_of(aggregate.value) == FieldType.number()
    assert checked.type_of(aggregate.source) == FieldType.array(Schema.standard().event)


def test_data_fields_extend_the_standard_schema() -> None:
    schema = Schema.from_arrow(pa.schema([("shoeSize", pa.int64())]), None)
    assert check(parse("shoeSize > 3"), schema).type == FieldType.boolean()
