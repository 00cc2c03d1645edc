"""A value expression (AEP's pages show ``orders.count()``, ``product1.price + product2.price``): not a segment,
but ``openseg pql eval`` prints it per profile and ``openseg pql sql`` compiles it; DuckDB, Spark and Python agree."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from openseg.engines.base import Engine
from openseg.engines.duckdb import DuckDBEngine
from openseg.pql import parse
from openseg.pql.checker import check
from openseg.pql.errors import PqlError
from openseg.pql.to_python import compile_value
from openseg.pql_cli import app
from openseg.segmentation.planner import plan_segments
from tests.pql.datagen import AS_OF, Dataset, membership_relation

VALUES = [
    "xEvent.count()",
    'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal)',
    "xEvent.average(commerce.order.priceTotal)",
    "xEvent.max(timestamp)",
    "loyalty.points + 1",
    "loyalty.points * 2 - loyalty.points / 4",
    "homeAddress.country",
    "favoriteCategories.count()",
    "scores.sum()",
    "person.birthDate",
    'if(homeAddress.country = "US", loyalty.points, 0)',
    'xEvent[eventType = "commerce.purchases" or inSegment("seg-gold") or inSegment("seg-churn") or '
    'inSegment("seg-vip") or inSegment("seg-x")].count()',
]


def _normal(value: Any) -> Any:
    if isinstance(value, decimal.Decimal | float) and not isinstance(value, bool):
        return round(float(value), 6)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return value


def _python_values(dataset: Dataset, text: str) -> dict[str, Any]:
    value = compile_value(parse(text), AS_OF)
    events = dataset.events_by_profile()
    return {p["_profile_id"]: _normal(value(p, events[p["_profile_id"]])) for p in dataset.profiles}


def _engine_values(engine: Engine, dialect: str, tables: dict[str, pa.Table]) -> dict[str, dict[str, Any]]:
    segments = [(f"v{i}", parse(text)) for i, text in enumerate(VALUES)]
    plan = plan_segments(segments, AS_OF, dialect, membership=membership_relation(), values=True)
    rows = engine.run(plan.query, tables).to_pylist()
    return {text: {row["_profile_id"]: _normal(row[plan.columns[f"v{i}"]]) for row in rows}
            for i, text in enumerate(VALUES)}


def test_value_expressions_check_as_values_and_a_segment_still_needs_a_condition() -> None:
    assert not check(parse("loyalty.points + 1"), value=True).is_condition
    assert check(parse("loyalty.points > 1"), value=True).is_condition
    with pytest.raises(PqlError, match="a segment is a condition"):
        check(parse("loyalty.points + 1"))


def test_duckdb_computes_each_value_as_python_does(duckdb_engine: DuckDBEngine, tables: dict[str, pa.Table],
                                                   dataset: Dataset) -> None:
    computed = _engine_values(duckdb_engine, "duckdb", tables)
    for text in VALUES:
        expected = _python_values(dataset, text)
        assert len({repr(v) for v in expected.values()}) > 1, text  # informative: not one value for everyone
        assert computed[text] == expected, text


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_spark_computes_each_value_as_python_does(spark_engine: Engine, tables: dict[str, pa.Table],
                                                  dataset: Dataset) -> None:
    computed = _engine_values(spark_engine, "spark", tables)
    for text in VALUES:
        assert computed[text] == _python_values(dataset, text), text


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_pql_sql_prints_the_sql_computing_a_value(dialect: str) -> None:
    result = CliRunner().invoke(app, ["sql", "xEvent.count()", "--dialect", dialect])
    assert result.exit_code == 0, result.output
    assert "COUNT(*)" in result.output and "AS value_0" in result.output and "> 0" not in result.output


def test_pql_sql_of_a_value_engines_cannot_compute_is_one_line() -> None:
    result = CliRunner().invoke(app, ["sql", 'xEvent[eventType = "a"].timestamp', "--dialect", "duckdb"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3


def test_pql_eval_prints_each_profiles_value(tmp_path: Path) -> None:
    profiles, events = tmp_path / "p.jsonl", tmp_path / "e.jsonl"
    profiles.write_text("\n".join(json.dumps(p) for p in [
        {"_id": "ann", "identityMap": {"email": [{"id": "ann@x"}]}, "loyalty": {"points": 12.5}},
        {"_id": "bob", "identityMap": {"ECID": [{"id": "1"}]}},
    ]))
    events.write_text("\n".join(json.dumps(e) for e in [
        {"_id": "e1", "eventType": "commerce.purchases", "timestamp": "2026-01-10T00:00:00Z",
         "identityMap": {"ECID": [{"id": "1"}]}, "commerce": {"order": {"priceTotal": 10.5}}},
        {"_id": "e2", "eventType": "commerce.purchases", "timestamp": "2026-01-11T00:00:00Z",
         "identityMap": {"ECID": [{"id": "1"}]}, "commerce": {"order": {"priceTotal": 2}}},
    ]))
    args = ["--profiles", str(profiles), "--events", str(events), "--now", "2026-01-20T00:00:00Z"]
    runner = CliRunner()
    assert runner.invoke(app, ["eval", "xEvent.count()", *args]).output == "ann\t0\nbob\t2\n"
    assert runner.invoke(app, ["eval", "loyalty.points + 1", *args]).output == "ann\t13.5\nbob\tnull\n"
    assert runner.invoke(app, ["eval", "xEvent.max(timestamp)", *args]).output == (
        'ann\tnull\nbob\t"2026-01-11T00:00:00Z"\n')
    assert runner.invoke(app, ["eval", "identityMap.keys()", *args]).output == 'ann\t["email"]\nbob\t["ECID"]\n'
    assert runner.invoke(app, ["eval", "loyalty.points > 1", *args]).output == "ann\n"  # a condition: who qualifies
