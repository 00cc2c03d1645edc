"""``event_horizon`` bounds how old an event can be and still count: streaming segmentation and the edge leave
the profile store's older events unread (``streaming_target.StoresSegmentationTarget.profiles``), so a bound
too short would be a silent wrong answer. Every corpus expression with a horizon qualifies exactly the same
profiles over the events younger than it, at the time the horizon was applied and at later times."""

from __future__ import annotations

import datetime as dt

import pytest

from openseg.pql import parse
from openseg.pql._time import as_instant
from openseg.pql.capabilities import event_horizon
from tests.pql.datagen import AS_OF, Dataset, load_corpus, python_members

CORPUS = load_corpus()
#: Beside the corpus: windows of other lengths and shapes over the generated events.
WINDOWED = (
    'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 1 days before now]',
    'not xEvent[timestamp occurs < 3 days before now and eventType = "web.webpagedetails.pageViews"]',
    'xEvent[timestamp occurs this day].count() > 0',
    'xEvent[timestamp occurs this hour]',
    'exists X from xEvent where X.timestamp occurs <= 2 days before now',
    'xEvent[timestamp occurs <= 7 days before now].count() = 1 and xEvent[timestamp occurs <= 1 days before now].count() = 0',
)


@pytest.mark.parametrize("later", [dt.timedelta(0), dt.timedelta(seconds=1), dt.timedelta(hours=1),
                                   dt.timedelta(days=2)])
def test_events_older_than_the_horizon_change_no_answer(dataset: Dataset, later: dt.timedelta) -> None:
    bounded = 0
    for segment_id, text in [(e.segment_id, e.text) for e in CORPUS] + [(f"w{n}", t) for n, t in enumerate(WINDOWED)]:
        node = parse(text)
        horizon = event_horizon(node)
        if horizon is None:
            continue
        bounded += 1
        cutoff = AS_OF - horizon
        younger = Dataset(profiles=dataset.profiles, events=[e for e in dataset.events if _younger(e, cutoff)])
        at = AS_OF + later
        expected = python_members(dataset, [(segment_id, node)], at)
        assert python_members(younger, [(segment_id, node)], at) == expected, f"{text} (horizon {horizon})"
    assert bounded >= 40  # the corpus's windows, event-free expressions among them


def _younger(event: dict[str, object], cutoff: dt.datetime) -> bool:
    """Whether the store would keep ``event`` (one without a timestamp is kept: its group's statistics may not
    rule it out)."""
    timestamp = event.get("timestamp")
    return not isinstance(timestamp, dt.date) or as_instant(timestamp) >= cutoff


@pytest.mark.parametrize(("text", "expected"), [
    ('xEvent[eventType = "a" and timestamp occurs <= 1 hours before now]', dt.timedelta(hours=1)),
    ('not xEvent[timestamp occurs < 30 minutes before now and eventType = "a"]', dt.timedelta(minutes=30)),
    ('xEvent[timestamp occurs this day].count() > 1', dt.timedelta(days=1)),
    ('exists X from xEvent where X.timestamp occurs <= 2 days before now', dt.timedelta(days=2)),
    ('select X from xEvent where X.timestamp occurs <= 5 minutes before now', dt.timedelta(minutes=5)),
    # Two windows over one list: the narrower bounds it; over two lists: the wider.
    ('xEvent[timestamp occurs <= 2 hours before now and timestamp occurs <= 1 hours before now]',
     dt.timedelta(hours=1)),
    ('xEvent[timestamp occurs <= 2 hours before now] and xEvent[timestamp occurs <= 3 days before now]',
     dt.timedelta(days=3)),
    ('homeAddress.country = "US"', dt.timedelta(0)),
])
def test_a_window_ending_now_on_every_event_list_bounds_the_horizon(text: str, expected: dt.timedelta) -> None:
    assert event_horizon(parse(text)) == expected


@pytest.mark.parametrize("text", [
    'xEvent[eventType = "a"]',
    'xEvent.count() > 3',
    'xEvent[eventType = "a" or timestamp occurs <= 1 hours before now]',  # one side of an 'or' bounds nothing
    'xEvent[timestamp occurs >= 1 hours before now]',  # older than an hour: any age
    'xEvent[timestamp occurs <= 1 months before now]',  # a calendar length: not fixed
    'xEvent[timestamp occurs <= 1 hours after now]',
    'xEvent[timestamp occurs <= 1 hours before today]',
    'xEvent[timestamp occurs last day]',
    'xEvent[commerce.order.orderDate occurs <= 1 hours before now]',  # another time than the event's
    'xEvent.all(timestamp occurs <= 1 hours before now)',
    'chain(xEvent, timestamp, [A: WHAT(eventType = "a") WHEN(<= 1 hours before now)])',
])
def test_any_unbounded_use_of_the_events_has_no_horizon(text: str) -> None:
    assert event_horizon(parse(text)) is None
