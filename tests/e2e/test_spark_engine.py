"""OPENSEG_ENGINE=spark runs the same segment jobs as DuckDB and gets the same members."""

from __future__ import annotations

from pathlib import Path

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


def _counts(tmp_path: Path, engine: str) -> dict[str, int]:
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
    by_id = job["metrics"]["segmentedProfileCounter"]
    return {name: by_id[segment_id] for name, segment_id in ids.items()}


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_spark_engine_matches_duckdb(tmp_path: Path) -> None:
    duckdb_counts = _counts(tmp_path, "duckdb")
    assert duckdb_counts == {"US": 4, "not US": 4, "buyers": 2, "spend": 3, "viewed": 5}
    assert _counts(tmp_path, "spark") == duckdb_counts
