"""Streaming and edge eligibility as AEP decides it for new and edited definitions since 20 May 2025.

Each test quotes the rule it pins, from the pages quoted in shared/design/streaming.md §2:
STREAMING = help/segmentation/methods/streaming-segmentation.md@027b04f,
STREAMING_API = help/segmentation/api/streaming-segmentation.md@ad58a75 (older page, resolves a contradiction),
EDGE = help/segmentation/methods/edge-segmentation.md@6ffcd3c.
"""

from __future__ import annotations

from openseg.pql import ast, evaluation_info, parse
from openseg.pql.capabilities import is_profile_only

ON = {"enabled": True}
WITHIN_DAY = 'CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", false)) WHEN(today)])'
NO_WINDOW = "AEP needs the event condition to be within 24 hours (e.g. timestamp occurs today)"


def off(reason: str) -> dict[str, object]:
    return {"enabled": False, "reason": reason}


def continuous(text: str, **context: object) -> dict[str, object]:
    return evaluation_info(parse(text), **context)["continuous"]  # type: ignore[arg-type]


def synchronous(text: str, **context: object) -> dict[str, object]:
    return evaluation_info(parse(text), **context)["synchronous"]  # type: ignore[arg-type]


PROFILE_ONLY = {"profile-seg"}.__contains__


def test_streaming_takes_the_four_query_types_of_the_page() -> None:
    """STREAMING, "Eligible query types": single event within 24 h, profile only, single event with a profile
    attribute within 24 h, multiple events within 24 h (each example verbatim but for the ellipses)."""
    assert continuous(WITHIN_DAY) == ON
    assert continuous('homeAddress.country.equals("US", false)') == ON
    assert continuous(f'workAddress.country.equals("US", false) and {WITHIN_DAY}') == ON
    assert continuous('CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("emailClicked", false)) WHEN(today), '
                      'C1: WHAT(eventType.equals("commerce.checkouts", false)) WHEN(today)])') == ON


def test_a_single_event_with_no_time_window_is_batch() -> None:
    """STREAMING, moved to batch: "A single event with no time window"."""
    assert continuous('xEvent[eventType = "commerce.checkouts"]') == off(NO_WINDOW)
    assert continuous('chain(xEvent, timestamp, [C0: WHAT(eventType = "commerce.checkouts")])') == off(
        "AEP streams a single event only within 24 hours; this step has no such window")


def test_a_single_event_with_a_window_longer_than_a_day_is_batch() -> None:
    """STREAMING, moved to batch: "A single event with a time window longer than 24 hours"; guidelines: "The
    lookback window is limited to one day" (so yesterday, a day that ended up to 48 hours ago, is out)."""
    assert continuous('xEvent[eventType = "a" and timestamp occurs <= 3 days before now]') == off(NO_WINDOW)
    assert continuous('xEvent[eventType = "a" and timestamp occurs yesterday]') == off(NO_WINDOW)
    assert continuous('xEvent[eventType = "a" and timestamp occurs <= 24 hours before now]') == ON
    assert continuous('chain(xEvent, timestamp, [C0: WHAT(eventType = "a") WHEN(<= 2 days before now)])') == off(
        "AEP streams a single event only within 24 hours; this step has no such window")


def test_an_event_negated_as_a_whole_is_not_streamed() -> None:
    """STREAMING, guidelines: "Queries with at least one negated event are supported. However, the entire
    event cannot be a negation"."""
    negated = 'not (xEvent[eventType = "a" and timestamp occurs today])'
    assert continuous(negated) == off("AEP does not stream an event condition that is negated as a whole")
    sequence = ('chain(xEvent, timestamp, [C0: WHAT(eventType = "a") WHEN(today), '
                'C1: not WHAT(eventType = "b") WHEN(<= 1 hour after C0)])')
    assert continuous(sequence) == ON


def test_in_segment_streams_beside_an_event_only_for_profile_only_definitions() -> None:
    """STREAMING: `inSegment("<profile-based batch audience>") and CHAIN(... WHEN(<= 24 hours before now)])`
    "*will* be evaluated using streaming segmentation"; STREAMING_API: "if the segment contained in the
    inSegment event is profile only, the segment definition will be enabled for streaming segmentation"."""
    text = ('inSegment("profile-seg") and CHAIN(xEvent, timestamp, '
            '[C0: WHAT(eventType = "commerce.checkouts") WHEN(<= 24 hours before now)])')
    assert continuous(text, profile_only=PROFILE_ONLY) == ON
    assert continuous(text.replace("profile-seg", "event-seg"), profile_only=PROFILE_ONLY) == off(
        "AEP streams inSegment beside an event only when the referenced definition is profile only; "
        "ups:event-seg is not")
    # STREAMING, not eligible: "AAM segments or traits".
    assert continuous(text.replace('"profile-seg"', '"aam", "trait-1"'), profile_only=PROFILE_ONLY) == off(
        "AEP streams inSegment beside an event only when the referenced definition is profile only; "
        "aam:trait-1 is not")


def test_segments_of_segments_alone_do_not_stream() -> None:
    """STREAMING lists no segment-of-segments query type (only inSegment beside a streaming event)."""
    assert continuous('inSegment("profile-seg")', profile_only=PROFILE_ONLY) == off(
        "AEP streams inSegment only beside an event within 24 hours, not segments of segments "
        "(rules of 20 May 2025)")


def test_counts_and_several_separate_events_stay_batch() -> None:
    """STREAMING lists one event, or "Multiple events" as one time-ordered sequence: "A strict
    time-ordering condition must exist between the events"."""
    assert continuous('xEvent[eventType = "a" and timestamp occurs today].count() >= 3') == off(
        "AEP evaluates counts of events only in batch")
    assert continuous('xEvent[eventType = "a" and timestamp occurs today] and '
                      'xEvent[eventType = "b" and timestamp occurs today]') == off(
        "AEP streams at most one event condition or one sequence; this has 2")


def test_edge_takes_profile_only_single_events_within_a_day_and_segments_of_segments() -> None:
    """EDGE, eligible: "Single event within a time window of less than 24 hours", "Profile only", "Single
    event with a profile attribute within a relative window of less than 24 h", and segment of segments:
    "one or more batch or edge segments"."""
    assert synchronous(WITHIN_DAY) == ON
    assert synchronous('homeAddress.country = "US"') == ON
    assert synchronous(f'workAddress.country = "US" and {WITHIN_DAY}') == ON
    assert synchronous('inSegment("batch-seg") or inSegment("edge-seg")') == ON
    assert synchronous('xEvent[eventType = "a"]') == off(NO_WINDOW)


def test_edge_refuses_an_event_with_in_segment_unless_profile_only() -> None:
    """EDGE, not eligible: "A single event combined with inSegment, unless the referenced definition is
    profile-only"."""
    text = f'inSegment("profile-seg") and {WITHIN_DAY}'
    assert synchronous(text, profile_only=PROFILE_ONLY) == ON
    assert synchronous(text.replace("profile-seg", "event-seg"), profile_only=PROFILE_ONLY) == off(
        "AEP evaluates on the edge inSegment beside an event only when the referenced definition is profile "
        "only; ups:event-seg is not")


def test_edge_needs_a_merge_policy_active_on_edge() -> None:
    """EDGE: "The definition must be tied to a merge policy that is active on edge"."""
    reason = "AEP evaluates on the edge only with a merge policy that is active on edge (isActiveOnEdge: true)"
    assert synchronous('homeAddress.country = "US"', active_on_edge=False) == off(reason)
    assert synchronous('homeAddress.country = "US"', active_on_edge=True) == ON


def test_edge_refuses_sequences_and_negated_events() -> None:
    """EDGE's current list has no multiple-event or negated-event type (the older page's had them)."""
    assert synchronous('chain(xEvent, timestamp, [C0: WHAT(eventType = "a") WHEN(today), '
                       'C1: WHAT(eventType = "b") WHEN(<= 1 hour after C0)])') == off(
        "AEP does not evaluate sequences of several events on the edge")
    assert synchronous(f"not ({WITHIN_DAY})") == off(
        "AEP evaluates on the edge one event within 24 hours, not its negation")


def test_profile_only_follows_references() -> None:
    """A definition is profile only when it reads no events and refers only to profile-only definitions."""
    assert is_profile_only(parse('homeAddress.country = "US" and inSegment("profile-seg")'), PROFILE_ONLY)
    assert not is_profile_only(parse('inSegment("event-seg")'), PROFILE_ONLY)
    assert not is_profile_only(parse('inSegment("aam", "profile-seg")'), PROFILE_ONLY)
    assert not is_profile_only(parse("xEvent.count() > 0"))
    assert is_profile_only(ast.Compare(ast.CompareOp.EQ, ast.NumberLiteral(1), ast.NumberLiteral(1)))
