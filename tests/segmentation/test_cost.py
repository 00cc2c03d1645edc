"""Splitting a one-pass plan's measured stages among its segments (``openseg:segmentCost``)."""

from __future__ import annotations

import datetime as dt

import pytest

from openseg.engines.base import StageRun
from openseg.pql import parse
from openseg.segmentation.cost import segment_costs
from openseg.segmentation.planner import plan_segments

AS_OF = dt.datetime(2024, 6, 15, 12, tzinfo=dt.UTC)
WEEK = 'xEvent[eventType = "{}" and timestamp occurs <= 7 days before now].count() > 0'
TEXTS = {
    "buy_week": WEEK.format("buy"),
    "view_week": WEEK.format("view"),
    "buy_ever": 'xEvent[eventType = "buy"].count() >= 2',
    "us": 'homeAddress.country = "US"',
}


def plan():  # type: ignore[no-untyped-def]
    return plan_segments([(s, parse(t)) for s, t in TEXTS.items()], AS_OF, "duckdb")


def test_shared_stages_are_split_evenly_and_the_shares_add_up() -> None:
    planned = plan()
    assert [(s.name, s.consumers) for s in planned.stages] == [
        ("ev0", ("buy_week", "view_week")), ("ev1", ("buy_ever",))]
    runs = [StageRun("ev0", 0.6, 40, 1001), StageRun("ev1", 0.3, 25, 500), StageRun("", 0.2, 100, 165)]
    cost = segment_costs(planned, runs)
    assert cost["buy_week"] == {
        "seconds": pytest.approx(0.3 + 0.05), "rowsScanned": 501 + 42,
        "stages": [
            {"name": "ev0", "relation": "events", "seconds": 0.6, "rows": 40, "rowsScanned": 1001, "sharedBy": 2},
            {"name": "segments", "relation": "profiles", "seconds": 0.2, "rows": 100, "rowsScanned": 165,
             "sharedBy": 4},
        ],
        "derivedColumns": 1, "sharedDerivedColumns": 0,
    }
    # Whole rows: 1001 splits 501/500, 165 splits 42/41/41/41 in the plan's segment order.
    assert [c["rowsScanned"] for c in cost.values()] == [501 + 42, 500 + 41, 500 + 41, 41]
    assert sum(c["rowsScanned"] for c in cost.values()) == 1001 + 500 + 165
    assert sum(c["seconds"] for c in cost.values()) == pytest.approx(1.1)
    assert cost["us"]["seconds"] == pytest.approx(0.05)
    assert [s["name"] for s in cost["us"]["stages"]] == ["segments"]


def test_rows_scanned_is_null_when_the_engine_does_not_report_it() -> None:
    runs = [StageRun("ev0", 0.6, 40), StageRun("ev1", 0.3, 25), StageRun("", 0.2, 100)]
    cost = segment_costs(plan(), runs)
    assert all(c["rowsScanned"] is None for c in cost.values())
    assert cost["buy_ever"]["seconds"] == pytest.approx(0.3 + 0.05)
