"""Jobs, exports and profile builds say which engine ran them (``metrics["openseg:engine"]``; a merge policy's
``openseg:profileStore.engine`` for its last build). The Spark cluster reports its master and application
in tests/e2e/test_spark_cluster.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.api.flows import person
from tests.api.test_definitions import define
from tests.api.test_exports import export, union_dataset
from tests.api.test_segment_jobs import load_people, run_job
from tests.conftest import Org

POLICIES = "/data/core/ups/config/mergePolicies"


def engine_reports(client: TestClient, org: Org, drain: Callable[[], int]) -> dict[str, Any]:
    """Ingest people, run a segment job and an export; the engine each of them (and the build) reports."""
    load_people(client, org, drain, [person(i) for i in range(4)])
    segment = define(client, org, "US", 'homeAddress.country = "US"')
    job = run_job(client, org, drain, segment["id"])
    exported = export(client, org, drain, union_dataset(client, org), filter={"segments": [{"segmentId": segment["id"]}]})
    (policy,) = client.get(POLICIES, headers=org.headers()).json()["children"]
    store = client.get(f"{POLICIES}/{policy['id']}", headers=org.headers()).json()["openseg:profileStore"]
    assert job["metrics"]["segmentedProfileCounter"] == {segment["id"]: 2}
    assert exported["metrics"]["openseg:exportedProfiles"] == 2
    return {"job": job["metrics"]["openseg:engine"], "export": exported["metrics"]["openseg:engine"],
            "build": store["engine"]}


def test_duckdb_reports_itself_on_jobs_exports_and_builds(client: TestClient, org: Org,
                                                          drain: Callable[[], int]) -> None:
    assert engine_reports(client, org, drain) == {"job": {"name": "duckdb"}, "export": {"name": "duckdb"},
                                                  "build": {"name": "duckdb"}}
