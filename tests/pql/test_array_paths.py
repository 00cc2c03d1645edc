"""A field read through an array of objects is that field of each item (array-functions.md's
``person.orders.storeId.distinct().count() > 1``), for tenant arrays too: the job's planner learns where the
arrays are from the data's Arrow schema (``planner.arrow_paths``), the Python evaluator from the values."""

from __future__ import annotations

import pyarrow as pa
import pytest

from openseg.engines.duckdb import DuckDBEngine
from openseg.pql import check, parse
from openseg.pql.errors import PqlError
from openseg.pql.to_python import compile_predicate
from openseg.segmentation.planner import arrow_paths, plan_segments
from openseg.xdm.schema import Schema
from tests.pql.datagen import AS_OF

ORDER = pa.struct([("storeId", pa.string()), ("price", pa.float64())])
PROFILES = pa.schema([("_profile_id", pa.string()),
                      ("_acme", pa.struct([("orders", pa.list_(ORDER))]))])
EVENTS = pa.schema([("_profile_id", pa.string()), ("_id", pa.string()), ("timestamp", pa.timestamp("us")),
                    ("eventType", pa.string())])
ROWS = [
    {"_profile_id": "two-stores", "_acme": {"orders": [{"storeId": "s1", "price": 10.0},
                                                       {"storeId": "s2", "price": 250.0}]}},
    {"_profile_id": "one-store", "_acme": {"orders": [{"storeId": "s1", "price": 5.0},
                                                      {"storeId": "s1", "price": 7.5}]}},
    {"_profile_id": "no-orders", "_acme": {"orders": []}},
    {"_profile_id": "missing", "_acme": None},
    {"_profile_id": "no-store", "_acme": {"orders": [{"storeId": None, "price": 1.0}]}},
]
EXPECTED = {
    "_acme.orders.storeId.distinct().count() > 1": {"two-stores"},
    '_acme.orders.storeId.includes("s1")': {"two-stores", "one-store"},
    "_acme.orders.price.sum() > 13": {"two-stores"},
    '_acme.orders.storeId = ["s1", "s1"]': {"one-store"},
    "_acme.orders.storeId.isNotEmpty() and not _acme.orders.storeId.includes(\"s2\")": {"one-store", "no-store"},
}


def test_tenant_array_fields_select_the_same_profiles_in_sql_and_python() -> None:
    schema = Schema.from_arrow(PROFILES, EVENTS)
    segments = [(text, parse(text)) for text in EXPECTED]
    for text, tree in segments:
        check(tree, schema, source=text)
    plan = plan_segments(segments, AS_OF, "duckdb", has_path=arrow_paths(PROFILES, EVENTS))
    tables = {"profiles": pa.Table.from_pylist(ROWS, schema=PROFILES),
              "events": pa.Table.from_pylist([], schema=EVENTS)}
    rows = DuckDBEngine(threads=1).run(plan.query, tables).to_pylist()
    by_sql = {text: {row["_profile_id"] for row in rows if row[plan.columns[text]]} for text in EXPECTED}
    by_python = {text: {row["_profile_id"] for row in ROWS if compile_predicate(tree, AS_OF)(row, [])}
                 for text, tree in segments}
    assert by_sql == by_python == EXPECTED


def test_the_checker_types_a_field_read_through_an_array_as_a_list() -> None:
    schema = Schema.from_arrow(PROFILES, EVENTS)
    with pytest.raises(PqlError, match=r'_acme.orders.storeId is an array of strings; "s1" is a string '
                                       r'\(some item: _acme.orders.storeId.includes\("s1"\)\)'):
        check(parse('_acme.orders.storeId = "s1"'), schema)
