"""OPENSEG_ENGINE=spark runs the same segment jobs as DuckDB and gets the same members."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from openseg.api.app import create_app
from openseg.bootstrap import build_services
from openseg.config import Settings
from openseg.profiles.store import resolve_store
from openseg.segmentation.membership import MembershipStore
from tests.api.flows import event, json_lines, person, upload_batch
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


T1, T2 = 1_790_000_000_000, 1_790_086_400_000  # two evaluation times, a day apart (ms)


def _membership_of_two_jobs(tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Two jobs on ``engine`` (the second after two people moved out of the US, one moved in and one
    arrived; it leaves "US" out and adds a segment reading "US" from the first job's membership), and the
    membership files they left, with segment and job ids replaced by names so that two runs compare."""
    home = tmp_path / engine
    settings = Settings(home=home, database_url=f"sqlite:///{home}/openseg.db", lake=home / "lake", engine=engine)
    services = build_services(settings)
    org = make_org(services)
    clock = [T1]
    monkeypatch.setattr("openseg.segmentation.job_execution.now_ms", lambda: clock[0])
    assert services.worker is not None
    drain = services.worker.run_until_idle
    with TestClient(create_app(services, run_worker=False)) as client:
        people = load_people(client, org, drain, [person(i) for i in range(8)], [event(i, i % 5) for i in range(20)])
        names = {define(client, org, name, pql)["id"]: name for name, pql in EXPRESSIONS.items()}
        first = run_job(client, org, drain, *names)["id"]
        moved = [person(i, homeAddress={"country": "FR", "city": "Paris"}) for i in (1, 3)] + [
            person(0, homeAddress={"country": "US", "city": "Boston"}), person(9)]
        upload_batch(client, org.headers(), people, {"people.json": json_lines(moved)})
        drain()
        us = next(segment_id for segment_id, name in names.items() if name == "US")
        names[define(client, org, "US then", f'inSegment("{us}") and homeAddress.country = "FR"')["id"]] = "US then"
        clock[0] = T2
        second = run_job(client, org, drain, *(segment_id for segment_id in names if segment_id != us))["id"]
    services.db.dispose()
    jobs = {first: "job 1", second: "job 2"}
    [root] = (home / "membership").glob("*/*")

    def rows(path: Path) -> list[dict[str, Any]]:
        table = pq.read_table(path)
        named = [{key: names.get(value, jobs.get(value, value)) if key in ("segment_id", "job_id") else value
                  for key, value in row.items()} for row in table.to_pylist()]
        return sorted(named, key=lambda row: [str(value) for value in row.values()])

    files: dict[str, Any] = {}
    for job_id, job in jobs.items():
        state = json.loads((root / "states" / f"{job_id}.json").read_text())
        files[job] = {
            "layout": {kind: (root / kind / f"{job_id}.parquet").is_dir() for kind in ("snapshots", "pairs", "history")},
            "schemas": {kind: [(f.name, str(f.type)) for f in pq.read_schema(next(iter(_parts(root / kind / f"{job_id}.parquet"))))]
                        for kind in ("snapshots", "pairs", "history")},
            "snapshot": rows(root / "snapshots" / f"{job_id}.parquet"),
            "pairs": rows(root / "pairs" / f"{job_id}.parquet"),
            "history": rows(root / "history" / f"{job_id}.parquet"),
            "segments": {names[s]: entry for s, entry in state["segments"].items()},
        }
    # Lookups (``/access/entities``) read either layout.
    last = MembershipStore(root).state(str(root / "states" / f"{second}.json"))
    profiles = sorted({row["_profile_id"] for row in files["job 2"]["snapshot"]} | {"nobody"})
    files["lookup"] = {p: {names[s]: pair for s, pair in segments.items()}
                       for p, segments in MembershipStore(root).lookup(last, profiles).items()}
    return files


def _parts(path: Path) -> list[Path]:
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_spark_writes_the_same_membership_files_as_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_duckdb = _membership_of_two_jobs(tmp_path, "duckdb", monkeypatch)
    on_spark = _membership_of_two_jobs(tmp_path, "spark", monkeypatch)
    # DuckDB writes one file per result; Spark's executors write a directory of part files.
    assert on_duckdb["job 2"]["layout"] == {"snapshots": False, "pairs": False, "history": False}
    assert on_spark["job 2"]["layout"] == {"snapshots": True, "pairs": True, "history": True}
    for job in ("job 1", "job 2"):
        for part in ("schemas", "snapshot", "pairs", "history", "segments"):
            assert on_spark[job][part] == on_duckdb[job][part], (job, part)
    assert on_spark["lookup"] == on_duckdb["lookup"] and len(on_duckdb["lookup"]) == 9
    assert on_duckdb["lookup"]["nobody"] == {}
    # The second job: people 1 and 3 left the US (and, still US members in the first job's membership, entered
    # "US then"), person 0 moved in; the files hold entries, the exit and its pair.
    history = on_duckdb["job 2"]["history"]
    assert sorted((row["segment_id"], row["event"]) for row in history) == [
        ("US then", "entered"), ("US then", "entered"), ("not US", "entered"), ("not US", "entered"),
        ("not US", "exited")]
    assert [row["status"] for row in on_duckdb["job 2"]["pairs"]] == ["exited"]


def _exports(tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Three exports on ``engine`` after two jobs (person 1 left the US in the second; person 9 arrived), in
    part files of at most 3 rows: the exported rows (segment ids replaced by names, maps as dicts, sorted), the
    files' names and rows, their schema, and whether Spark wrote them."""
    from openseg.catalog import lake
    from tests.api.test_exports import export, union_dataset

    home = tmp_path / f"export-{engine}"
    settings = Settings(home=home, database_url=f"sqlite:///{home}/openseg.db", lake=home / "lake", engine=engine)
    services = build_services(settings)
    org = make_org(services)
    clock = [T1]
    monkeypatch.setattr("openseg.segmentation.job_execution.now_ms", lambda: clock[0])
    monkeypatch.setattr("openseg.exports.job_execution.FILE_ROWS", 3)
    assert services.worker is not None
    drain = services.worker.run_until_idle
    found: dict[str, Any] = {}
    with TestClient(create_app(services, run_worker=False)) as client:
        people = load_people(client, org, drain, [person(i) for i in range(8)], [event(i, i % 5) for i in range(20)])
        ids = {name: define(client, org, name, EXPRESSIONS[name])["id"] for name in ("US", "buyers", "spend")}
        run_job(client, org, drain, *ids.values())
        moved = [person(1, homeAddress={"country": "FR", "city": "Paris"}), person(9)]
        upload_batch(client, org.headers(), people, {"people.json": json_lines(moved)})
        drain()
        clock[0] = T2
        run_job(client, org, drain, *ids.values())
        dataset_id = union_dataset(client, org)
        requests = {
            "members": {"fields": "person.name.firstName,homeAddress.country", "filter": {"segments": [
                {"segmentId": ids["US"], "status": ["realized", "existing", "exited"]}, {"segmentId": ids["buyers"]}]},
                "additionalFields": {"eventList": {"fields": "eventType,commerce.order.priceTotal"}}},
            "everyone": {"filter": {"emptyProfiles": True}, "additionalFields": {"eventList": {}}},
            "nobody": {"filter": {"segments": [{"segmentId": ids["US"]}],
                                  "segmentQualificationTime": {"endTime": "2019-09-02T00:00:00Z"}}},
        }
        if engine == "spark":
            # The executors write the export: nothing per-profile may come back to the driver.
            from pyspark.sql import DataFrame

            def collected(*args: Any, **kwargs: Any) -> Any:
                raise AssertionError("an export collected rows to the driver")

            for method in ("toArrow", "collect", "toPandas", "toLocalIterator"):
                monkeypatch.setattr(DataFrame, method, collected)
        for name, body in requests.items():
            batch_id = export(client, org, drain, dataset_id, **body)["destination"]["batchId"]
            [folder] = settings.lake.glob(f"*/{dataset_id}/{batch_id}")
            parts = sorted(folder.iterdir())
            names = {segment_id: segment for segment, segment_id in ids.items()}
            rows = [_named(row, names) for part in parts for row in pq.read_table(part).to_pylist()]
            found[name] = {
                "rows": sorted(rows, key=repr),
                "files": [(part.name, pq.read_metadata(part).num_rows) for part in parts],
                "schema": [(field.name, str(field.type).replace(" not null", "")) for field in pq.read_schema(parts[0])],
                "by spark": {b"org.apache.spark.version" in (pq.read_metadata(part).metadata or {}) for part in parts},
            }
            assert [file for file, _ in found[name]["files"]] == [lake.part_name(i) for i in range(len(parts))]
    services.db.dispose()
    return found


def _named(value: Any, names: dict[str, str]) -> Any:
    """An exported value with maps (lists of pairs) as dicts and segment ids replaced by names."""
    if isinstance(value, list) and value and all(isinstance(item, tuple) for item in value):
        return {names.get(key, key): _named(item, names) for key, item in value}
    if isinstance(value, list):
        return [_named(item, names) for item in value]
    if isinstance(value, dict):
        return {key: _named(item, names) for key, item in value.items()}
    return value


def _stitched_store(tmp_path: Path, engine: str) -> dict[str, Any]:
    """People (four also known by an ECID), events by email or by ECID only (one ECID nobody has: an
    event-only profile), then a second batch (person 2 again, by ECID alone, and a new person), built on
    ``engine`` by the worker; the store's files and a job's counts. On Spark, every result the build's
    workspaces hand to this process and every file written for it are recorded."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _build_and_run(tmp_path, engine, monkeypatch)


def _build_and_run(tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from pyspark.sql.classic.dataframe import DataFrame
    from pyspark.sql.readwriter import DataFrameWriter

    from openseg.engines import parquet
    from openseg.profiles import refresh

    seen: dict[str, list[Any]] = {"fetched": [], "spark_writes": [], "arrow_writes": []}
    building = [False]

    def build(*args: Any, **kwargs: Any) -> Any:
        building[0] = True
        try:
            return original_build(*args, **kwargs)
        finally:
            building[0] = False

    def watch(method: Any, record: Any) -> Any:
        def watched(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = method(self, *args, **kwargs)
            if building[0]:
                record(self, args, result)
            return result
        return watched

    original_build = refresh.build_profile_store
    monkeypatch.setattr(refresh, "build_profile_store", build)
    monkeypatch.setattr(DataFrame, "toArrow", watch(DataFrame.toArrow, lambda _, __, table: seen["fetched"].append(
        table.num_rows)))
    monkeypatch.setattr(DataFrame, "collect", watch(DataFrame.collect, lambda _, __, rows: seen["fetched"].append(
        len(rows))))
    monkeypatch.setattr(DataFrameWriter, "parquet", watch(DataFrameWriter.parquet, lambda _, args, __: seen[
        "spark_writes"].append(Path(args[0]).name)))
    monkeypatch.setattr(parquet.BatchWriter, "__init__", watch(parquet.BatchWriter.__init__, lambda _, args, __: seen[
        "arrow_writes"].append(Path(args[0]).name)))

    # Batches complete at the same (made-up) times in both runs: their ingest times are in the store.
    ticks = iter(range(T1 - 86_400_000, T1, 1000))
    monkeypatch.setattr("openseg.catalog.processing.now_ms", lambda: next(ticks))
    monkeypatch.setattr("openseg.catalog.service.now_ms", lambda: next(ticks))
    home = tmp_path / engine
    settings = Settings(home=home, database_url=f"sqlite:///{home}/openseg.db", lake=home / "lake", engine=engine)
    services = build_services(settings)
    org = make_org(services)
    assert services.worker is not None
    drain = services.worker.run_until_idle
    with_ecid = [person(i, identityMap={"email": [{"id": f"p{i}@example.com", "primary": True}],
                                        "ECID": [{"id": f"c{i}"}]}) if i < 4 else person(i) for i in range(8)]
    by_ecid = [event(100 + i, 0, identityMap={"ECID": [{"id": ecid}]}) for i, ecid in enumerate(["c1", "c1", "c3", "c9"])]
    with TestClient(create_app(services, run_worker=False)) as client:
        people = load_people(client, org, drain, with_ecid, [event(i, i % 5) for i in range(20)] + by_ecid)
        later = [{"identityMap": {"ECID": [{"id": "c2", "primary": True}]}, "loyalty": {"points": 999}}, person(9)]
        upload_batch(client, org.headers(), people, {"people.json": json_lines(later)})
        drain()
        ids = {name: define(client, org, name, pql)["id"] for name, pql in EXPRESSIONS.items()}
        job = run_job(client, org, drain, *ids.values())
    services.db.dispose()
    [store] = [path for path in (home / "profiles").glob("*/[!.]*")]  # the pointer (not the builds, nor locks)
    built = resolve_store(store)

    def rows(name: str) -> list[dict[str, Any]]:
        named = [{**row, "_sources": ["people" if source == people else source for source in row["_sources"]]}
                 if "_sources" in row else row for row in pq.read_table(built / name).to_pylist()]
        return sorted(named, key=lambda row: [str(value) for value in row.values()])

    return {
        "files": {name: rows(name) for name in ("profiles.parquet", "events.parquet", "identities.parquet")},
        "schema": json.loads((built / "schema.json").read_text()),
        "stats": {k: v for k, v in json.loads((built / "manifest.json").read_text())["stats"].items()
                  if k not in ("seconds", "refresh")},
        "refresh": json.loads((built / "manifest.json").read_text())["stats"]["refresh"],
        "counts": {name: job["metrics"]["segmentedProfileCounter"][segment_id] for name, segment_id in ids.items()},
        "events_order": [(row["_profile_id"], row["timestamp"]) for row in pq.read_table(built / "events.parquet").to_pylist()],
        "seen": seen,
    }


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_spark_exports_the_same_rows_as_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_duckdb = _exports(tmp_path, "duckdb", monkeypatch)
    on_spark = _exports(tmp_path, "spark", monkeypatch)
    for name in ("members", "everyone", "nobody"):
        assert on_spark[name]["rows"] == on_duckdb[name]["rows"], name
        assert on_spark[name]["schema"] == on_duckdb[name]["schema"], name
        assert on_duckdb[name]["by spark"] == {False} and on_spark[name]["by spark"] == {True}, name
        for found in (on_duckdb, on_spark):  # parts of at most 3 rows, none empty unless the export is
            rows = [count for _, count in found[name]["files"]]
            assert sum(rows) == len(found[name]["rows"]), name
            assert rows == [0] or all(0 < count <= 3 for count in rows), name
    members = {row["person"]["name"]["firstName"]: row for row in on_duckdb["members"]["rows"]}
    # US: the odd ones, but First1 left at the second job and First9 arrived; buyers: First0 and First3.
    assert sorted(members) == ["First0", "First1", "First3", "First5", "First7", "First9"]
    assert members["First1"]["homeAddress"] == {"country": "FR"}
    assert members["First1"]["segmentMembership"]["ups"]["US"] == {
        "status": "exited", "lastQualificationTime": "2026-09-22T14:13:20.000Z"}
    assert members["First3"]["segmentMembership"]["ups"]["US"] == {
        "status": "existing", "lastQualificationTime": "2026-09-22T14:13:20.000Z"}
    assert [e["commerce"]["order"]["priceTotal"] for e in members["First0"]["eventList"]] == [10.5, 15.5, 20.5, 25.5]
    assert len(on_duckdb["everyone"]["rows"]) == 9 and on_duckdb["nobody"]["rows"] == []
    assert on_duckdb["nobody"]["files"] == on_spark["nobody"]["files"] == [("part-00000.parquet", 0)]


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_spark_builds_the_same_profile_store_as_duckdb(tmp_path: Path) -> None:
    on_duckdb = _stitched_store(tmp_path, "duckdb")
    on_spark = _stitched_store(tmp_path, "spark")
    for part in ("files", "schema", "stats", "counts"):
        assert on_spark[part] == on_duckdb[part], part
    # Stitched through the ECIDs: 8 people + person 9 + the event-only ECID c9; person 2's second record merged.
    profiles = {row["_profile_id"]: row for row in on_duckdb["files"]["profiles.parquet"]}
    assert len(profiles) == 10 and not profiles["ecid:c9"]["_hasProfileRecord"]
    assert profiles["ecid:c2"]["loyalty"] == {"points": 999} and profiles["ecid:c2"]["_sources"] == ["people"]
    # The second batch: DuckDB updated the store in place, Spark rebuilt it; the same store either way.
    assert (on_duckdb["refresh"], on_spark["refresh"]) == ("incremental", "full")
    # events.parquet is sorted by profile, then time, on both engines.
    assert on_spark["events_order"] == sorted(on_spark["events_order"]) == on_duckdb["events_order"]
    # On Spark nothing per-profile came back to this process: every result the builds fetched is one row (a
    # count, a sum of labels) or none (no graph over the guardrail); the executors wrote every store file.
    seen = on_spark["seen"]
    assert seen["fetched"] and set(seen["fetched"]) <= {0, 1}, seen["fetched"]
    assert seen["arrow_writes"] == []
    written = [".profiles.parquet.parts", ".identities.parquet.parts", ".events.parquet.parts", ".event_rids.parquet.parts"]
    assert seen["spark_writes"] == written * 2  # two builds
    assert on_duckdb["seen"]["spark_writes"] == []
