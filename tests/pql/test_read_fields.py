"""``read_fields`` names every top-level field an expression reads: streaming segmentation and the edge decode
only those columns of the profile store (``streaming_target.StoresSegmentationTarget.profiles``), so a field it
missed would be a silent wrong answer. Every corpus expression, evaluated by its Python predicate over profiles
and events cut down to those fields, qualifies exactly the profiles it qualifies over the whole records."""

from __future__ import annotations

from typing import Any

import pytest

from openseg.pql import parse
from openseg.pql.capabilities import read_fields
from openseg.streaming_target import EVENT_FIELDS, ROW_FIELDS
from tests.pql.datagen import Dataset, load_corpus, python_members

CORPUS = load_corpus()
#: What evaluation supplies beside the store's columns: membership (``segmentMembership.ups``).
SUPPLIED = ("segmentMembership",)


def _cut(record: dict[str, Any], fields: frozenset[str], kept: tuple[str, ...]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name in fields or name in kept or name in SUPPLIED}


def test_every_corpus_expression_qualifies_the_same_profiles_over_the_fields_it_reads(dataset: Dataset) -> None:
    cut_down = 0
    for entry in CORPUS:
        node = parse(entry.text)
        fields = read_fields(node)
        if fields is None:
            continue
        cut_down += 1
        narrow = Dataset(profiles=[_cut(p, fields, ROW_FIELDS) for p in dataset.profiles],
                         events=[_cut(e, fields, EVENT_FIELDS) for e in dataset.events])
        whole = python_members(dataset, [(entry.segment_id, node)])
        assert python_members(narrow, [(entry.segment_id, node)]) == whole, f"line {entry.line}: {entry.text}"
    assert cut_down >= len(CORPUS) * 0.9  # nearly every expression names its fields


@pytest.mark.parametrize(("text", "expected"), [
    ('homeAddress.country = "US" and xEvent[eventType = "a" and timestamp occurs <= 1 hours before now]',
     {"homeAddress", "country", "eventType", "timestamp"}),
    # Before the checker resolves it, an event variable is the path's first name: its field is the second.
    ('xEvent[X.eventType = "a"]', {"X", "eventType"}),
    ('select X from xEvent where X.commerce.order.priceTotal > 10', {"commerce", "order"}),
    ('person.name.firstName = "a" and inSegment("s1")', {"person", "name"}),
    # ``^`` reaches the profile from inside an event condition.
    ('xEvent[web.webPageDetails.name = ^.person.name.firstName]', {"web", "webPageDetails", "person", "name"}),
])
def test_read_fields_names_the_first_two_names_of_every_path(text: str, expected: set[str]) -> None:
    assert read_fields(parse(text)) == expected


def test_a_whole_record_reads_every_field() -> None:
    assert read_fields(parse('$1.person.name.firstName = "a" and xEvent[eventType = "a"]')) is not None
    assert read_fields(parse("$1 = $1")) is None
