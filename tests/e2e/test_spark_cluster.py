"""A real Spark cluster: a standalone master and two workers started from the installed pyspark on loopback.

Ingestion, the merged-profile build, segment jobs and exports run with ``OPENSEG_ENGINE=spark`` against
``spark://127.0.0.1:PORT``; the executors run in the workers' JVMs, so every file is read and written by
another process than this one (the lake is on ``file://``, shared because the workers run on this machine).
The results are compared with DuckDB's on the same data, with the flows of tests/e2e/test_spark_engine.py.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from openseg.config import Settings
from openseg.engines.spark import get_spark_session, stop_spark_session
from openseg.engines.standalone import Cluster, standalone_cluster
from tests.e2e import test_spark_engine as flows

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]

WORKERS = 2
#: Each worker offers one core and 1 GiB; each runs one executor of 768 MiB (Spark's floor is 450 MiB).
WORKER_CORES, WORKER_MEMORY, EXECUTOR_MEMORY = 1, "1g", "768m"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A master and two workers; this process's Spark session stops before they do. Tiny data: two shuffle
    partitions, one per executor core."""
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster"), WORKERS, WORKER_CORES, WORKER_MEMORY,
                            EXECUTOR_MEMORY, shuffle_partitions=2, before_stop=stop_spark_session) as running:
        yield running


@pytest.fixture
def on_cluster(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """The flows of test_spark_engine.py with their Spark runs sent to the cluster: the settings they build
    carry its master and session settings (DuckDB runs ignore them)."""
    monkeypatch.setattr(flows, "Settings", functools.partial(Settings, spark_master=cluster.master,
                                                             spark_conf=cluster.conf))
    return cluster


def test_the_cluster_builds_the_same_profile_store_as_duckdb(tmp_path: Path, on_cluster: Cluster) -> None:
    on_duckdb = flows._stitched_store(tmp_path, "duckdb")
    on_spark = flows._stitched_store(tmp_path, "spark")
    for part in ("files", "schema", "stats", "counts", "events_order"):
        assert on_spark[part] == on_duckdb[part], part
    assert len(on_duckdb["files"]["profiles.parquet"]) == 10
    # The executors wrote every store file; only counts came back to this process.
    assert set(on_spark["seen"]["fetched"]) <= {0, 1} and on_spark["seen"]["arrow_writes"] == []
    _assert_two_executors(on_cluster)


def _pipeline(tmp_path: Path, engine: str) -> dict[str, Any]:
    """The export flow of test_spark_engine.py (ingestion, builds, two segment jobs, three exports), and what it
    leaves: the exported rows, the two jobs' membership files (ids replaced by names), and the engine every job,
    export and build reported."""
    with pytest.MonkeyPatch.context() as monkeypatch:  # the recorders and the flow's own patches, for one run
        return _recorded_pipeline(tmp_path, engine, monkeypatch)


def _recorded_pipeline(tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from openseg.profiles import service
    from tests.api import test_exports

    names: dict[str, str] = {}
    jobs: dict[str, str] = {}
    engines: dict[str, list[dict[str, str]]] = {"job": [], "export": [], "build": []}

    def define(*args: Any, **kwargs: Any) -> dict[str, Any]:
        created: dict[str, Any] = original["define"](*args, **kwargs)
        names[created["id"]] = created["name"]
        return created

    def run_job(*args: Any, **kwargs: Any) -> dict[str, Any]:
        job: dict[str, Any] = original["run_job"](*args, **kwargs)
        jobs[job["id"]] = f"job {len(jobs) + 1}"
        engines["job"].append(job["metrics"]["openseg:engine"])
        return job

    def export(*args: Any, **kwargs: Any) -> dict[str, Any]:
        job: dict[str, Any] = original["export"](*args, **kwargs)
        engines["export"].append(job["metrics"]["openseg:engine"])
        return job

    def build_sandbox(*args: Any, **kwargs: Any) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = original["build_sandbox"](*args, **kwargs)  # what the merge policy's openseg:profileStore shows
        # The builds that built something (a job or an export first checks its store is up to date: "unchanged").
        engines["build"].extend(stats["engine"] for stats in results.values() if stats["refresh"] != "unchanged")
        return results

    original: dict[str, Any] = {"define": flows.define, "run_job": flows.run_job, "export": test_exports.export,
                "build_sandbox": service.build_sandbox}
    monkeypatch.setattr(flows, "define", define)
    monkeypatch.setattr(flows, "run_job", run_job)
    monkeypatch.setattr(test_exports, "export", export)
    monkeypatch.setattr(service, "build_sandbox", build_sandbox)
    found = flows._exports(tmp_path, engine, monkeypatch)
    [root] = (tmp_path / f"export-{engine}" / "membership").glob("*/*")

    def rows(path: Path) -> list[dict[str, Any]]:
        table = [{key: names.get(value, jobs.get(value, value)) if key in ("segment_id", "job_id") else value
                  for key, value in row.items()} for row in pq.read_table(path).to_pylist()]
        return sorted(table, key=lambda row: [str(value) for value in row.values()])

    found["membership"] = {name: {kind: rows(root / kind / f"{job_id}.parquet") for kind in ("snapshots", "pairs", "history")}
                           for job_id, name in jobs.items()}
    found["engines"] = engines
    return found


def assert_same_files(on_duckdb: dict[str, Any], on_spark: dict[str, Any]) -> None:
    """The pipeline wrote the same membership and export files on Spark as on DuckDB, Spark's by its executors."""
    assert on_spark["membership"] == on_duckdb["membership"]
    # The second job: First1 left the US (an exit and its pair), First9 arrived in it.
    assert sorted((row["segment_id"], row["event"]) for row in on_duckdb["membership"]["job 2"]["history"]) == [
        ("US", "entered"), ("US", "exited")]
    for name in ("members", "everyone", "nobody"):
        assert on_spark[name]["rows"] == on_duckdb[name]["rows"], name
        assert on_spark[name]["schema"] == on_duckdb[name]["schema"], name
        assert on_spark[name]["by spark"] == {True}, name
    assert [len(on_duckdb[name]["rows"]) for name in ("members", "everyone", "nobody")] == [6, 9, 0]


def test_the_cluster_writes_the_same_membership_and_export_files_as_duckdb(tmp_path: Path, on_cluster: Cluster) -> None:
    on_duckdb = _pipeline(tmp_path, "duckdb")
    on_spark = _pipeline(tmp_path, "spark")
    assert_same_files(on_duckdb, on_spark)
    # Every job, export and build names the engine: on Spark the cluster's master and the application the
    # master lists (one for the whole process).
    [app] = [app for app in on_cluster.status()["activeapps"] if app["name"] == "openseg"]
    spark = {"name": "spark", "master": on_cluster.master, "applicationId": app["id"]}
    assert on_spark["engines"] == {"job": [spark] * 2, "export": [spark] * 3, "build": [spark] * 2}
    assert on_duckdb["engines"] == {"job": [{"name": "duckdb"}] * 2, "export": [{"name": "duckdb"}] * 3,
                                    "build": [{"name": "duckdb"}] * 2}
    # OPENSEG_SPARK_CONF's settings win over openseg's own (four shuffle partitions).
    session = get_spark_session()
    assert session.conf.get("spark.sql.shuffle.partitions") == "2"
    assert session.sparkContext.getConf().get("spark.executor.memory") == EXECUTOR_MEMORY
    _assert_two_executors(on_cluster)


def _assert_two_executors(cluster: Cluster) -> None:
    """The application holds one executor core on each worker."""
    status = cluster.status()
    [app] = [app for app in status["activeapps"] if app["name"] == "openseg"]
    assert app["cores"] == WORKERS * WORKER_CORES
    assert [worker["coresused"] for worker in status["workers"] if worker["state"] == "ALIVE"] == [WORKER_CORES] * WORKERS
