"""Query Service queries are bounded: time, memory and threads per query (issue #19, fair and bounded work).

A query over its time or memory limit is stopped and FAILED with a message naming the limit and the setting
that sets it; an endless recursive CTE meets one of the two. The limits come from the settings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from openseg.catalog.read_only_sql import QueryLimitExceeded, check_read_only, run_query
from openseg.container import Services
from tests.api.flows import person
from tests.api.test_segment_jobs import load_people
from tests.conftest import Org, own_home

ENDLESS = "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t"


def test_a_query_over_its_time_limit_is_stopped_naming_the_limit(tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(QueryLimitExceeded) as stopped:
        run_query("SELECT count(*) FROM range(1000000000000)", {}, tmp_path, timeout=0.5)
    assert time.perf_counter() - started < 10
    assert str(stopped.value) == ("the query ran longer than its time limit (0.5 s, OPENSEG_QUERY_TIMEOUT) "
                                  "and was stopped")


def test_a_query_over_its_memory_limit_is_stopped_naming_the_limit(tmp_path: Path) -> None:
    with pytest.raises(QueryLimitExceeded) as stopped:
        run_query("SELECT list(range) FROM range(200000000)", {}, tmp_path, memory_limit="64MB")
    assert str(stopped.value) == ("the query needed more memory than its limit (64MB, OPENSEG_QUERY_MEMORY_LIMIT) "
                                  "and was stopped")


def test_an_endless_recursive_query_is_bounded(tmp_path: Path) -> None:
    check_read_only(ENDLESS, set())  # recursion is SQL the Query Service takes ...
    started = time.perf_counter()
    with pytest.raises(QueryLimitExceeded):  # ... and the limits bound it
        run_query(ENDLESS, {}, tmp_path, timeout=1, memory_limit="64MB")
    assert time.perf_counter() - started < 10


def test_a_query_uses_the_threads_it_is_given(tmp_path: Path) -> None:
    for threads in (1, 2):
        result = run_query("SELECT current_setting('threads') AS threads", {}, tmp_path, threads=threads)
        assert result.table.to_pylist() == [{"threads": threads}]


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[tuple[Services, Org, TestClient]]:
    with own_home(tmp_path, query_timeout=0.5, query_memory_limit="64MB") as served:
        yield served


def test_the_service_applies_its_settings_and_the_failure_says_which(
        strict: tuple[Services, Org, TestClient]) -> None:
    services, org, client = strict
    assert services.worker is not None
    load_people(client, org, services.worker.run_until_idle, [person(i) for i in range(3)])
    query = client.post("/data/foundation/query/queries", headers=org.headers(),
                        json={"dbName": "prod:all", "sql": ENDLESS})
    assert query.status_code == 202, query.text
    services.worker.run_until_idle()
    failed = client.get(f"/data/foundation/query/queries/{query.json()['id']}", headers=org.headers()).json()
    assert failed["state"] == "FAILED"
    (error,) = failed["errors"]
    assert error["message"] in (
        "the query ran longer than its time limit (0.5 s, OPENSEG_QUERY_TIMEOUT) and was stopped",
        "the query needed more memory than its limit (64MB, OPENSEG_QUERY_MEMORY_LIMIT) and was stopped")
    fine = client.post("/data/foundation/query/queries", headers=org.headers(),
                       json={"dbName": "prod:all", "sql": "SELECT count(*) AS n FROM people"})
    services.worker.run_until_idle()
    assert client.get(f"/data/foundation/query/queries/{fine.json()['id']}", headers=org.headers()).json()["state"] == "SUCCESS"
