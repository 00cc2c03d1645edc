"""evaluation_info mirrors AEP's evaluation types with reasons; segment_references lists inSegment ids."""

from __future__ import annotations

import pytest

from openseg.pql import evaluation_info, parse, segment_references

ON = {"enabled": True}


def off(reason: str) -> dict[str, object]:
    return {"enabled": False, "reason": reason}


CASES = [
    ('homeAddress.countryCode = "US"', ON, ON),
    # AEP's rules of 20 May 2025 (tests/pql/test_eligibility.py quotes them): a single event with no time
    # window is batch, and segments of segments do not stream.
    ('chain(xEvent, timestamp, [A: WHAT(eventType = "addToCart")])',
     off("AEP streams a single event only within 24 hours; this step has no such window"),
     off("AEP evaluates on the edge one event within 24 hours; this step has no such window")),
    ('CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", false)) WHEN(today)])', ON, ON),
    ('homeAddress.countryCode = "US" and xEvent[eventType = "a" and timestamp occurs <= 1 hour before now]', ON, ON),
    ('xEvent[eventType = "a"]',
     off("AEP needs the event condition to be within 24 hours (e.g. timestamp occurs today)"),
     off("AEP needs the event condition to be within 24 hours (e.g. timestamp occurs today)")),
    ('xEvent[eventType = "a"].count() >= 3', off("AEP evaluates counts of events only in batch"),
     off("AEP evaluates counts of events only in batch")),
    (('chain(xEvent, timestamp, [C0: WHAT(eventType = "a") WHEN(<= 3 days before now), '
     'C1: WHAT(eventType = "b") WHEN(<= 1 day after C0)])'),
     off("AEP streams a sequence of events only when each step is within 24 hours"),
     off("AEP does not evaluate sequences of several events on the edge")),
    ('inSegment("s1") and homeAddress.country = "US"',
     off("AEP streams inSegment only beside an event within 24 hours, not segments of segments "
         "(rules of 20 May 2025)"), ON),
    ('xEvent[eventType = "a"] and xEvent[eventType = "b"]',
     off("AEP streams at most one event condition or one sequence; this has 2"),
     off("AEP evaluates on the edge at most one event condition; this has 2")),
]


@pytest.mark.parametrize(("text", "continuous", "synchronous"), CASES, ids=[c[0][:50] for c in CASES])
def test_evaluation_info(text: str, continuous: dict[str, object], synchronous: dict[str, object]) -> None:
    assert evaluation_info(parse(text)) == {"batch": ON, "continuous": continuous, "synchronous": synchronous}


def test_segment_references_in_first_use_order() -> None:
    tree = parse('inSegment("b") and (inSegment("a") or not inSegment("b")) and inSegment("aam", "c")')
    assert segment_references(tree) == ("b", "a", "c")
    assert segment_references(parse('homeAddress.country = "US"')) == ()
