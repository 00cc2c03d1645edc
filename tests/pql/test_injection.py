"""User input never becomes SQL: strings are literals, field names are quoted identifiers or refused."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from openseg.engines.duckdb import DuckDBEngine
from openseg.pql import PqlError, check, parse
from openseg.segmentation.planner import plan_segments

AS_OF = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PROFILES = pa.table({
    "_profile_id": ["a", "b"],
    "homeAddress": [{"country": "US"}, {"country": "x'); DROP TABLE profiles; --"}],
})
EVENTS = pa.table({"_profile_id": pa.array([], pa.string()), "_id": pa.array([], pa.string()),
                   "timestamp": pa.array([], pa.timestamp("us")), "eventType": pa.array([], pa.string())})


def _members(text: str, profiles: pa.Table = PROFILES) -> list[str]:
    plan = plan_segments([("s", parse(text))], AS_OF, "duckdb")
    rows = DuckDBEngine().run(plan.query, {"profiles": profiles, "events": EVENTS}).to_pylist()
    return sorted(r["_profile_id"] for r in rows if r[plan.columns["s"]])


@pytest.mark.parametrize("payload", [
    "x'); DROP TABLE profiles; --",
    "' OR '1'='1",
    'US" OR "1"="1',
    "\\'; SELECT 1; --",
])
def test_strings_are_literals(payload: str) -> None:
    escaped = payload.replace("\\", "\\\\").replace('"', '\\"')
    expected = ["b"] if payload == "x'); DROP TABLE profiles; --" else []
    assert _members(f'homeAddress.country = "{escaped}"') == expected
    assert _members('homeAddress.country = "US"') == ["a"]  # the relation is intact afterwards


def test_segment_ids_are_literals() -> None:
    assert _members("inSegment(\"x' OR 1=1 --\")") == []


def test_field_names_are_checked_then_quoted() -> None:
    hostile = '`homeAddress"; DROP TABLE profiles; --`.country = "US"'
    with pytest.raises(PqlError, match="unknown field"):
        check(parse(hostile))
    # Even unchecked, a field name is a quoted identifier: it names a column, it never runs.
    odd = pa.table({"_profile_id": ["a"], 'homeAddress"; DROP TABLE profiles; --': [{"country": "US"}]})
    assert _members(hostile, odd) == ["a"]
