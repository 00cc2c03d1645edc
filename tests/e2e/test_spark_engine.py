"""OPENSEG_ENGINE=spark runs the same segment jobs as DuckDB and gets the same members."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openseg.api.app import create_app
from openseg.bootstrap import build_services
from openseg.config import Settings
from tests.api.flows import event, person
from tests.api.test_definitions import define
from tests.api.test_segment_jobs import load_people, run_job
from tests.conftest import make_org

EXPRESSIONS = {
    "US": 'homeAddress.country = "US"',
    "not US": 'not (homeAddress.country = "US")',
    "buyers": 'xEvent[eventType = "commerce.purchases"].count() >= 2',
    "spend": 'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 20',
    "viewed": 'xEvent.exists(eventType = "web.webpagedetails.pageViews")',
}


def _job(tmp_path: Path, engine: str) -> tuple[dict[str, str], dict[str, Any]]:
    home = tmp_path / engine
    settings = Settings(home=home, database_url=f"sqlite:///{home}/openseg.db", lake=home / "lake", engine=engine)
    services = build_services(settings)
    org = make_org(services)
    assert services.worker is not None
    with TestClient(create_app(services, run_worker=False)) as client:
        load_people(client, org, services.worker.run_until_idle, [person(i) for i in range(8)],
                    [event(i, i % 5) for i in range(20)])
        ids = {name: define(client, org, name, pql)["id"] for name, pql in EXPRESSIONS.items()}
        job = run_job(client, org, services.worker.run_until_idle, *ids.values())
    services.db.dispose()
    return ids, job["metrics"]


def _stages(ids: dict[str, str], metrics: dict[str, Any]) -> dict[str, list[tuple[str, int, int | None]]]:
    cost = metrics["openseg:segmentCost"]
    return {name: [(s["name"], s["rows"], s["rowsScanned"]) for s in cost[segment_id]["stages"]]
            for name, segment_id in ids.items()}


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_spark_engine_matches_duckdb(tmp_path: Path) -> None:
    ids, on_duckdb = _job(tmp_path, "duckdb")
    counts = {name: on_duckdb["segmentedProfileCounter"][segment_id] for name, segment_id in ids.items()}
    assert counts == {"US": 4, "not US": 4, "buyers": 2, "spend": 3, "viewed": 5}
    spark_ids, on_spark = _job(tmp_path, "spark")
    assert {name: on_spark["segmentedProfileCounter"][segment_id] for name, segment_id in spark_ids.items()} == counts
    # Both engines run the plan stage by stage: the same stages, the same rows. DuckDB's profiler also
    # says how many rows each stage read; Spark reports null there.
    on_events = [("ev", 5, 20), ("segments", 8, 13)]
    assert _stages(ids, on_duckdb) == {"US": [("segments", 8, 13)], "not US": [("segments", 8, 13)],
                                       "buyers": on_events, "spend": on_events, "viewed": on_events}
    assert _stages(spark_ids, on_spark) == {name: [(stage, rows, None) for stage, rows, _ in stages]
                                            for name, stages in _stages(ids, on_duckdb).items()}
    assert all(c["seconds"] > 0 for c in on_spark["openseg:segmentCost"].values())
