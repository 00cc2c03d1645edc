"""array-functions.md's ``person.filter(age >= 21)``: an object filtered by a condition is the list of that
object when the condition holds on it, else empty; as a segment, "people who are 21 or older". DuckDB, Spark
and Python read it alike."""

from __future__ import annotations

import pyarrow as pa
import pytest

from openseg.engines.base import Engine
from openseg.engines.duckdb import DuckDBEngine
from openseg.pql import parse
from openseg.pql.checker import check
from openseg.pql.errors import PqlError
from openseg.pql.to_python import compile_predicate
from openseg.segmentation.planner import arrow_paths, plan_segments
from openseg.xdm.schema import Schema
from tests.pql.datagen import AS_OF

PERSON = pa.struct([("age", pa.int64()), ("name", pa.struct([("firstName", pa.string())]))])
PROFILES = pa.table({
    "_profile_id": ["ann", "bob", "cat", "dan"],
    "person": pa.array([{"age": 30, "name": {"firstName": "Ann"}}, {"age": 18, "name": {"firstName": "Bob"}},
                        None, {"age": None, "name": {"firstName": "Dan"}}], type=PERSON),
})
EVENTS = pa.table({"_profile_id": pa.array([], pa.string()), "_id": pa.array([], pa.string()),
                   "timestamp": pa.array([], pa.timestamp("us", tz="UTC")), "eventType": pa.array([], pa.string())})
SCHEMA = Schema.from_arrow(PROFILES.schema, EVENTS.schema)

EXPECTED = {
    "person.filter(age >= 21)": {"ann"},  # the page's example: people who are 21 or older
    "person[age >= 21]": {"ann"},
    "not person.filter(age >= 21)": {"bob", "cat", "dan"},
    "person.filter(age < 21).count() = 1": {"bob"},
    "person.filter(not (age >= 21)).count() = 0": {"ann", "cat"},  # a missing person is no list item
    'person.filter(name.firstName.startsWith("D")).map(age).count() = 1': {"dan"},
    "person.filter(age >= 21).head().isNotNull()": {"ann"},
}


def _python(text: str) -> set[str]:
    predicate = compile_predicate(parse(text), AS_OF)
    return {row["_profile_id"] for row in PROFILES.to_pylist() if predicate(row, [])}


def _engine(engine: Engine, dialect: str) -> dict[str, set[str]]:
    segments = [(f"s{i}", parse(text)) for i, text in enumerate(EXPECTED)]
    plan = plan_segments(segments, AS_OF, dialect, has_path=arrow_paths(PROFILES.schema, EVENTS.schema))
    rows = engine.run(plan.query, {"profiles": PROFILES, "events": EVENTS}).to_pylist()
    return {text: {row["_profile_id"] for row in rows if row[plan.columns[f"s{i}"]]}
            for i, text in enumerate(EXPECTED)}


def test_an_object_filter_checks_as_a_condition() -> None:
    assert check(parse("person.filter(age >= 21)"), SCHEMA).is_condition


def test_a_map_is_still_not_filtered() -> None:
    with pytest.raises(PqlError, match="identityMap is a map of arrays of objects; a list \\(xEvent or an array field\\) is needed here"):
        check(parse('identityMap.filter(x => x = "a")'))


@pytest.mark.parametrize("text", list(EXPECTED))
def test_python_reads_the_object_as_a_list_of_itself(text: str) -> None:
    assert _python(text) == EXPECTED[text]


def test_duckdb_agrees() -> None:
    assert _engine(DuckDBEngine(threads=1), "duckdb") == EXPECTED


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_spark_agrees(spark_engine: Engine) -> None:
    assert _engine(spark_engine, "spark") == EXPECTED
