"""The benchmark segment suite and the seeded 100-segment mix."""

from __future__ import annotations

from collections import Counter

import pytest
from benchmarks.segments import (
    SUITE,
    Segment,
    Template,
    evaluation_layers,
    mix,
    segment_id,
    with_dependencies,
)


def test_the_suite_has_ten_segments_covering_every_kind_of_condition() -> None:
    assert [s.key for s in SUITE] == [f"bench-{n:02d}" for n in range(1, 11)]
    assert Counter(s.template for s in SUITE)[Template.IN_SEGMENTS] == 1
    assert len({s.template for s in SUITE}) == 10


@pytest.mark.parametrize(
    ("key", "pql"),
    [
        ("bench-01", 'homeAddress.country = "US"'),
        (
            "bench-02",
            (
                'loyalty.tier in ["gold", "platinum"] and person.birthDate >= date("1980-01-01") '
                'and person.birthDate < date("1990-01-01")'
            ),
        ),
        ("bench-03", 'person.name.lastName.startsWith("Mc") or personalEmail.address.contains("@yahoo.")'),
        (
            "bench-04",
            (
                '(homeAddress.country = "US" and (loyalty.tier = "gold" or loyalty.points > 20000)) '
                'or (homeAddress.country in ["DE", "FR"] and not (person.gender = "male"))'
            ),
        ),
        (
            "bench-05",
            (
                "(person.birthDate.isNull() or homeAddress.postalCode.isNull()) "
                "and personalEmail.address.isNotNull()"
            ),
        ),
        (
            "bench-06",
            (
                'xEvent[eventType = "commerce.productViews" and timestamp occurs <= 30 days before now]'
                ".count() >= 2"
            ),
        ),
        (
            "bench-07",
            (
                'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 90 days before now]'
                ".sum(commerce.order.priceTotal) > 500"
            ),
        ),
        (
            "bench-08",
            (
                'xEvent[eventType = "commerce.productListAdds" and timestamp occurs <= 14 days before now]'
                '.count() > 0 and xEvent[eventType = "commerce.purchases" and timestamp occurs <= 14 days '
                "before now].count() = 0"
            ),
        ),
        (
            "bench-09",
            (
                'chain(xEvent, timestamp, [C0: WHAT(eventType = "commerce.productViews") WHEN(<= 30 days '
                'before now), C1: WHAT(eventType = "commerce.purchases") WHEN(<= 24 hours after C0)])'
            ),
        ),
    ],
)
def test_suite_pql_text(key: str, pql: str) -> None:
    assert next(s for s in SUITE if s.key == key).pql() == pql


def test_segment_of_segments_names_the_referenced_ids() -> None:
    bench10 = SUITE[9]
    assert bench10.references == ("bench-07", "bench-01")
    assert (
        bench10.pql()
        == f'inSegment("{segment_id("bench-07")}") and not inSegment("{segment_id("bench-01")}")'
    )
    assert (
        bench10.pql({"bench-07": "id-7", "bench-01": "id-1"}) == 'inSegment("id-7") and not inSegment("id-1")'
    )
    assert segment_id("bench-07") == SUITE[6].id and len(segment_id("bench-07")) == 36


def test_string_parameters_are_escaped_as_pql_literals() -> None:
    odd = Segment("odd", "odd", Template.NAME_OR_EMAIL, {"prefix": 'O"Brien\\', "fragment": "it's"})
    assert (
        odd.pql()
        == 'person.name.lastName.startsWith("O\\"Brien\\\\") or personalEmail.address.contains("it\'s")'
    )


def test_the_mix_is_seeded_and_uses_every_template() -> None:
    first = mix(100)
    assert first == mix(100) and first != mix(100, seed=8)
    assert len(first) == 100 and len({s.key for s in first}) == 100
    assert {s.template for s in first} == set(Template)
    product = next(s for s in first if s.template is Template.BOUGHT_PRODUCT)
    assert "productListItems.exists(name.equals(" in product.pql()


def test_mix_references_point_back_to_earlier_plain_segments() -> None:
    segments = mix(100)
    position = {s.key: i for i, s in enumerate(segments)}
    for segment in segments:
        for ref in segment.references:
            assert position[ref] < position[segment.key]
            assert segments[position[ref]].template is not Template.IN_SEGMENTS
    assert [len(layer) for layer in evaluation_layers(segments)] == [
        sum(not s.references for s in segments),
        sum(bool(s.references) for s in segments),
    ]


def test_layers_refuse_unknown_and_cyclic_references() -> None:
    loop_a = Segment("a", "a", Template.IN_SEGMENTS, {"all_of": ("b",), "none_of": ()})
    loop_b = Segment("b", "b", Template.IN_SEGMENTS, {"all_of": ("a",), "none_of": ()})
    with pytest.raises(ValueError, match="refers to itself"):
        evaluation_layers([loop_a, loop_b])
    with pytest.raises(ValueError, match="segment b is referred to but not part of the evaluation"):
        evaluation_layers([loop_a])


def test_dependencies_come_first_in_list_order() -> None:
    assert [s.key for s in with_dependencies(SUITE[9], SUITE)] == ["bench-01", "bench-07", "bench-10"]
    assert with_dependencies(SUITE[0], SUITE) == [SUITE[0]]
