"""describe() renders expressions as plain English."""

from __future__ import annotations

import pytest

from openseg.pql import describe, parse
from openseg.pql.describe import words

CASES = [
    ('homeAddress.country = "US"', 'home address country is "US"'),
    ('homeAddress.country != "US" or loyalty.points >= 100',
     'home address country is not "US" or loyalty points is at least 100'),
    ('not (homeAddress.country in ["US", "CA"])', 'not (home address country is one of "US", "CA")'),
    ('(a = 1 or b = 2) and c notIn [3]', "(a is 1 or b is 2) and c is none of 3"),
    ("person.birthDate = null", "person birth date is missing"),
    ('personalEmail.address.endsWith("@EXAMPLE.com", false)',
     'personal email address ends with "@EXAMPLE.com" (ignoring case)'),
    ('xEvent[eventType = "commerce.purchases" and timestamp occurs <= 30 days before now].count() >= 3',
     ('the number of events where event type is "commerce.purchases" and timestamp is within the last 30 days '
     "is at least 3")),
    ('xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 100',
     'the total commerce order price total of events where event type is "commerce.purchases" is greater than 100'),
    ('xEvent[eventType = "web"]', 'there is at least one of the events where event type is "web"'),
    ('exists E from xEvent where E.eventType = "x"', 'there is E in events where E\'s event type is "x"'),
    ('xEvent.all(eventType = "x")', 'for all of the events, event type is "x"'),
    ("person.birthDate occurs this month", "person birth date is this month"),
    ('loyalty.joinDate occurs between date("2020-01-01") and date("2020-12-31")',
     "loyalty join date is between 2020-01-01 and 2020-12-31"),
    ("loyalty.joinDate occurs > 2 years before today", "loyalty join date is more than 2 years before today"),
    (('chain(xEvent, timestamp, [C0: WHAT(eventType = "commerce.productViews") WHEN(<= 3 days before now), '
     'C1: WHAT(eventType = "commerce.purchases") WHEN(<= 1 day after C0) not])'),
     ('in order of timestamp: an event where event type is "commerce.productViews" (within the last 3 days) '
     '[step C0]; then no event where event type is "commerce.purchases" (at most 1 day after step C0) [step C1]')),
    ('inSegment("seg-1") and inSegment("aam", "x")', 'is in segment "seg-1" and is in segment "x" of aam'),
    ("age(person.birthDate) >= 18", "the age in years from person birth date is at least 18"),
    ('(Profile) => Profile.homeAddress.country = "US"', 'home address country is "US"'),
    ("scores.map(x => x * x).includes(100)", "x times x for each x of scores includes 100"),
    ('identityMap.email.id.includes("a")', 'identity map email id includes "a"'),
]


@pytest.mark.parametrize(("text", "english"), CASES, ids=[c[0][:50] for c in CASES])
def test_describes_in_english(text: str, english: str) -> None:
    assert describe(parse(text)) == english


def test_field_names_split_into_words() -> None:
    assert words("homeAddress") == "home address"
    assert words("webPageDetails") == "web page details"
    assert words("URL") == "URL"
    assert words("_id") == "id"
