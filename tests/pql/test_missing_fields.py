"""A field the schema knows but the data never held reads as null in every function, on every engine: a
date function over it is false, never an engine error (issue #19: ``age(person.birthDate) >= 18`` on data
without birth dates failed every job of its sandbox with a binder error)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openseg.engines.duckdb import DuckDBEngine
from openseg.pql import parse
from openseg.segmentation.planner import arrow_paths, plan_segments

AS_OF = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)
#: PQL is two-valued: a condition on an unknown value is false, so its negation holds for everyone.
ON_MISSING_DATES = {
    "age(person.birthDate) >= 18": [],
    "person.birthDate.getYear() = 1990": [],
    "person.birthDate.getMonth() = 6": [],
    "person.birthDate.getDayOfMonth() = 15": [],
    "person.birthDate.anniversary()": [],
    "not (age(person.birthDate) >= 18)": ["a", "b"],
}


@pytest.mark.parametrize("pql", ON_MISSING_DATES)
def test_date_functions_over_a_field_the_data_never_held(pql: str, tmp_path: Path) -> None:
    profiles, events = tmp_path / "profiles.parquet", tmp_path / "events.parquet"
    pq.write_table(pa.table({"_profile_id": ["a", "b"], "homeAddress": [{"country": "US"}, {"country": "FR"}]}),
                   profiles)
    pq.write_table(pa.table({"_profile_id": pa.array([], pa.string()), "timestamp": pa.array([], pa.timestamp("us"))}),
                   events)
    plan = plan_segments([("s", parse(pql))], as_of=AS_OF, dialect="duckdb",
                         has_path=arrow_paths(pq.read_schema(profiles), pq.read_schema(events)))
    result = DuckDBEngine(threads=1).run(plan.query, {"profiles": str(profiles), "events": str(events)})
    members = sorted(row["_profile_id"] for row in result.to_pylist() if row[plan.columns["s"]])
    assert members == ON_MISSING_DATES[pql]
