"""The hand-written SQL baselines and the naive evaluator: agreement, and exact PQL semantics."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from benchmarks.generate import Manifest
from benchmarks.segments import SUITE, Segment, Template, mix

from benchmarks import handwritten, naive

AS_OF = dt.datetime(2025, 6, 30)
DAY = dt.timedelta(days=1)


def test_one_pass_per_segment_and_naive_agree_on_the_suite(tiny_data: Path) -> None:
    one_pass = handwritten.count_one_pass(tiny_data, SUITE)
    assert list(one_pass) == [s.key for s in SUITE]
    assert handwritten.count_per_segment(tiny_data, SUITE) == one_pass
    assert naive.run_naive(tiny_data, SUITE).counts == one_pass
    assert all(0 < count < 2_000 for count in one_pass.values())  # every segment selects some, not all


def test_one_pass_and_naive_agree_member_by_member_on_the_mix(tiny_data: Path) -> None:
    segments = mix(100)
    sql_members = handwritten.members_one_pass(tiny_data, segments)
    profiles, events = naive.load(tiny_data)
    assert naive.members(profiles, events, segments, Manifest.load(tiny_data).as_of_time) == sql_members
    assert {k: len(v) for k, v in sql_members.items()} == handwritten.count_one_pass(tiny_data, segments)


def test_naive_sample_evaluates_a_prefix_and_extrapolates(tiny_data: Path) -> None:
    result = naive.run_naive(tiny_data, SUITE, sample=500)
    assert (result.profiles_evaluated, result.profiles_total, result.sampled) == (500, 2_000, True)
    assert result.extrapolated_seconds == pytest.approx(result.seconds * 4)
    profiles, events = naive.load(tiny_data, limit=500)
    assert set(events) <= {p["_profile_id"] for p in profiles}
    assert result.counts == naive.evaluate(profiles, events, SUITE, Manifest.load(tiny_data).as_of_time)


# --- exact semantics on hand-made profiles -------------------------------------------------------


def _event(
    pid: str,
    at: dt.datetime,
    kind: str,
    *,
    total: str | None = None,
    item: str | None = None,
    page: str | None = None,
    browser: str | None = None,
) -> dict[str, Any]:
    items = (
        [{"SKU": "SKU-1", "name": item, "quantity": 1, "priceTotal": Decimal(total or "1")}] if item else None
    )
    return {
        "_profile_id": pid,
        "_id": f"{pid}-{at.isoformat()}",
        "timestamp": at,
        "eventType": kind,
        "commerce": {"order": {"priceTotal": Decimal(total), "currencyCode": "USD"}} if total else None,
        "productListItems": items,
        "web": {"webPageDetails": {"name": page, "URL": None}} if page else None,
        "environment": {"browserDetails": {"name": browser}} if browser else None,
        "_ingestTime": AS_OF,
    }


def _person(last: str | None, born: dt.date | None, gender: str | None) -> dict[str, Any]:
    return {"name": {"firstName": "X", "lastName": last}, "birthDate": born, "gender": gender}


PROFILES = [
    {
        "_profile_id": "A",
        "person": _person("McAdams", dt.date(1985, 5, 5), "male"),
        "homeAddress": {"country": "US", "city": "Austin", "postalCode": None, "state": "TX"},
        "personalEmail": {"address": "ann@yahoo.com"},
        "loyalty": {"tier": "gold", "points": 100},
    },
    {
        "_profile_id": "B",
        "person": _person("Schmidt", None, None),  # gender missing: `not (gender = x)` holds
        "homeAddress": {"country": "DE", "postalCode": "10115"},
        "personalEmail": {"address": "b@gmail.com"},
    },
    {
        "_profile_id": "C",
        "person": _person("Dubois", dt.date(1990, 1, 1), "male"),
        "homeAddress": {"country": "FR", "postalCode": "75001"},
        "loyalty": {"tier": "platinum", "points": 30000},
    },
    {"_profile_id": "D"},  # nothing at all
    {
        "_profile_id": "E",
        "person": _person("MCGREGOR", dt.date(1979, 12, 31), "female"),
        "homeAddress": {"country": "US", "postalCode": "78701", "state": "TX"},
        "personalEmail": {"address": "e@YAHOO.com"},
        "loyalty": {"tier": "gold", "points": 25000},
    },
]
EVENTS = [
    _event("A", AS_OF - 30 * DAY, "commerce.productViews"),  # exactly 30 days before: inside the window
    _event("A", AS_OF - 3 * DAY, "commerce.productListAdds"),
    _event("A", AS_OF - 2 * DAY, "commerce.purchases", total="200.00", item="Trail Tent", browser="Chrome"),
    _event("A", AS_OF - DAY, "commerce.productViews", browser="Safari"),
    _event(
        "A",
        AS_OF - DAY + dt.timedelta(hours=1),
        "commerce.purchases",
        total="300.00",
        item="Cap",
        browser="Safari",
    ),  # spend is exactly 500.00: not over 500
    _event("B", AS_OF - 10 * DAY, "commerce.productViews"),
    _event(
        "B", AS_OF - 9 * DAY, "commerce.purchases", total="500.01", item="Trail Backpack"
    ),  # exactly 24 h later
    _event("C", AS_OF - 30 * DAY - dt.timedelta(seconds=1), "commerce.productViews"),  # just outside 30 days
    _event("C", AS_OF - 5 * DAY, "commerce.productViews"),
    _event("C", AS_OF - 4 * DAY + dt.timedelta(seconds=1), "commerce.purchases", total="100.00", item="Cap"),
    _event(
        "E", AS_OF - 100 * DAY, "commerce.purchases", total="900.00", item="Trail Tent"
    ),  # outside 90 days
    _event("E", AS_OF - 20 * DAY, "commerce.purchases", total="10.00", item="Cap"),
    _event("E", AS_OF - 3 * DAY, "commerce.productListAdds", page="Deals"),
]
EXTRA = (
    Segment(
        "t-bought",
        "bought a trail tent in 30 days",
        Template.BOUGHT_PRODUCT,
        {"product": "trail tent", "days": 30},
    ),
    Segment(
        "t-deals", "saw Deals in 7 days", Template.PAGE_VISITS, {"page": "Deals", "days": 7, "at_least": 1}
    ),
    Segment(
        "t-safari",
        "two Safari events in 7 days",
        Template.BROWSER_VISITS,
        {"browser": "Safari", "days": 7, "at_least": 2},
    ),
    Segment("t-points", "100 to 25000 points", Template.POINTS_BETWEEN, {"low": 100, "high": 25000}),
    Segment(
        "t-state",
        "no state but a postal code",
        Template.MISSING_FIELDS,
        {"missing": ("homeAddress.state", "homeAddress.state"), "present": "homeAddress.postalCode"},
    ),
    Segment(
        "t-both",
        "US and loyal, not a viewer",
        Template.IN_SEGMENTS,
        {"all_of": ("bench-01", "bench-04"), "none_of": ("bench-06",)},
    ),
)
EXPECTED = {
    "bench-01": {"A", "E"},
    "bench-02": {"A"},
    "bench-03": {"A"},
    "bench-04": {"A", "B", "E"},
    "bench-05": {"A", "B"},
    "bench-06": {"A"},
    "bench-07": {"B"},
    "bench-08": {"E"},
    "bench-09": {"A", "B"},
    "bench-10": {"B"},
    "t-bought": {"A"},
    "t-deals": {"E"},
    "t-safari": {"A"},
    "t-points": {"A", "E"},
    "t-state": {"B", "C"},
    "t-both": {"E"},
}


@pytest.fixture(scope="module")
def crafted(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand-made profiles and events above, in the generated files' exact schemas."""
    directory = tmp_path_factory.mktemp("crafted")
    (directory / "plain").mkdir()
    for name, rows in (("profiles", PROFILES), ("events", EVENTS)):
        schema = pq.read_schema(tiny_data / f"plain/{name}.parquet")
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), directory / f"plain/{name}.parquet")
    manifest = dataclasses.replace(Manifest.load(tiny_data), profiles=len(PROFILES), events=len(EVENTS))
    manifest.save(directory)
    return directory


def test_every_evaluator_finds_exactly_the_expected_members(crafted: Path) -> None:
    segments = SUITE + EXTRA
    assert handwritten.members_one_pass(crafted, segments) == EXPECTED
    profiles, events = naive.load(crafted)
    assert naive.members(profiles, events, segments, AS_OF) == EXPECTED
    counts = {key: len(members) for key, members in EXPECTED.items()}
    assert handwritten.count_per_segment(crafted, segments) == counts
    assert naive.run_naive(crafted, segments).counts == counts


def test_literals_are_quoted_by_sqlglot() -> None:
    assert handwritten.literal("O'Brien") == "'O''Brien'"
    assert handwritten.literal(["DE", "FR"]) == "['DE', 'FR']"
    assert handwritten.literal(Decimal("499.99")) == "499.99"
    assert handwritten.literal(dt.datetime(2025, 6, 1, 12)) == "CAST('2025-06-01 12:00:00' AS TIMESTAMP)"
    assert handwritten.literal(dt.timedelta(hours=24)) == "INTERVAL '86400' SECOND"
    with pytest.raises(TypeError, match="no SQL literal"):
        handwritten.literal(object())


def test_the_events_scan_is_shared_by_segments_with_the_same_aggregate() -> None:
    twice = (SUITE[5], dataclasses.replace(SUITE[5], key="copy"))
    sql, keys = handwritten.one_pass_sql(twice, AS_OF)
    assert keys == ["bench-06", "copy"]
    assert sql.count("count_if(e.eventType") == 1
