"""The seed's export flow and every filter of its table, read back through Data Access and Query Service."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from openseg.container import Services
from openseg.exports.jobs import RUN_EXPORT
from openseg.store.models import ExportJob
from openseg.worker.queue import enqueue
from tests.api.aep import assert_aep_error
from tests.api.flows import UNION, create_dataset, event, get_batch, person
from tests.api.test_definitions import define
from tests.api.test_segment_jobs import load_people, run_job
from tests.conftest import Org

EXPORTS = "/data/core/ups/export/jobs"


def union_dataset(client: TestClient, org: Org) -> str:
    response = client.post("/data/foundation/catalog/dataSets", headers=org.headers(), json={
        "name": "Segment Export",
        "schemaRef": {"id": UNION, "contentType": "application/vnd.adobe.xed+json;version=1"},
        "fileDescription": {"persisted": True, "containerFormat": "parquet", "format": "parquet"},
        "aspect": "production"})
    assert response.status_code == 201
    return str(response.json()[0].split("/")[-1])


def export(client: TestClient, org: Org, drain: Callable[[], int], dataset_id: str, **body: Any) -> dict[str, Any]:
    payload = {"destination": {"datasetId": dataset_id}, "schema": {"name": "_xdm.context.profile"}, **body}
    created = client.post(EXPORTS, headers=org.headers(), json=payload)
    assert created.status_code == 200, created.text
    drain()
    job = client.get(f"{EXPORTS}/{created.json()['id']}", headers=org.headers()).json()
    assert job["status"] == "SUCCEEDED", job
    return dict(job)


def batch_rows(client: TestClient, org: Org, batch_id: str) -> list[dict[str, Any]]:
    files = client.get(f"/data/foundation/export/batches/{batch_id}/files", headers=org.headers()).json()["data"]
    rows: list[dict[str, Any]] = []
    for entry in files:
        listing = client.get(f"/data/foundation/export/files/{entry['dataSetFileId']}", headers=org.headers()).json()
        for part in listing["data"]:
            content = client.get(part["_links"]["self"]["href"], headers=org.headers()).content
            rows.extend(pq.read_table(io.BytesIO(content)).to_pylist())
    return rows


def emails(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(dict(r["identityMap"])["email"][0]["id"] for r in rows)


def setup(client: TestClient, org: Org, drain: Callable[[], int]) -> tuple[str, str, str]:
    load_people(client, org, drain, [person(i) for i in range(6)], [event(0, 1), event(3, 1), event(6, 2)])
    us = define(client, org, "US", 'homeAddress.country = "US"')
    buyers = define(client, org, "buyers", 'xEvent[eventType = "commerce.purchases"].count() >= 1')
    run_job(client, org, drain, us["id"], buyers["id"])
    return us["id"], buyers["id"], union_dataset(client, org)


def test_seed_export_flow(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    us, _, dataset_id = setup(client, org, drain)
    created = client.post(EXPORTS, headers=org.headers(), json={
        "fields": "person.name.firstName,homeAddress.country",
        "filter": {"segments": [{"segmentId": us, "segmentNs": "UPS", "status": ["realized"]}]},
        "destination": {"datasetId": dataset_id, "segmentPerBatch": False},
        "schema": {"name": "_xdm.context.profile"}})
    assert created.status_code == 200
    job = created.json()
    assert isinstance(job["id"], int) and job["jobType"] == "BATCH" and job["status"] == "NEW"
    assert job["errors"] == []  # segmentation.yaml shows errors on every export job
    assert job["destination"]["datasetId"] == dataset_id and job["destination"]["segmentPerBatch"] is False
    batch_id = job["destination"]["batchId"]
    assert job["mergePolicy"]["version"] == 1
    drain()
    done = client.get(f"{EXPORTS}/{job['id']}", headers=org.headers()).json()
    assert done["status"] == "SUCCEEDED"
    for timing in ("totalTime", "profileExportTime", "aCPDatasetWriteTime"):
        t = done["metrics"][timing]
        assert t["endTimeInMs"] - t["startTimeInMs"] == t["totalTimeInMs"] >= 0
    listed = client.get(f"{EXPORTS}/", headers=org.headers()).json()
    assert [r["id"] for r in listed["records"]] == [job["id"]] and listed["link"] == {"next": ""}
    assert listed["page"]["sortField"] == "createdTime" and listed["page"]["sort"] == "desc"

    rows = batch_rows(client, org, batch_id)
    assert emails(rows) == ["p1@example.com", "p3@example.com", "p5@example.com"]
    first = next(r for r in rows if dict(r["identityMap"])["email"][0]["id"] == "p1@example.com")
    assert first["person"] == {"name": {"firstName": "First1"}}
    assert first["homeAddress"] == {"country": "US"}
    assert set(first) == {"person", "homeAddress", "identityMap", "segmentMembership"}
    membership = dict(dict(first["segmentMembership"])["ups"])
    assert membership[us]["status"] == "realized"
    assert get_batch(client, org.headers(), batch_id)["status"] == "success"

    query = client.post("/data/foundation/query/queries", headers=org.headers(), json={
        "sql": "SELECT person.name.firstName AS first, homeAddress.country AS country FROM segment_export ORDER BY 1",
        "name": "exported"})
    assert query.status_code == 202 and query.json()["state"] == "SUBMITTED"
    drain()
    state = client.get(f"/data/foundation/query/queries/{query.json()['id']}", headers=org.headers()).json()
    assert state["state"] == "SUCCESS" and state["rowCount"] == 3
    results = client.get(f"/data/foundation/query/queries/{query.json()['id']}/results?limit=2",
                         headers=org.headers()).json()
    assert results == {"columns": [{"name": "first", "type": "string"}, {"name": "country", "type": "string"}],
                       "rows": [["First1", "US"], ["First3", "US"]], "rowCount": 3}


def test_an_export_batch_ends_as_an_ingested_batch_does(client: TestClient, org: Org,
                                                         drain: Callable[[], int]) -> None:
    us, _, dataset_id = setup(client, org, drain)
    job = export(client, org, drain, dataset_id, filter={"segments": [{"segmentId": us}]})
    batch = get_batch(client, org.headers(), job["destination"]["batchId"])
    assert batch["status"] == "success" and batch["errors"] == []
    assert batch["metrics"] == {"recordsRead": 3, "recordsWritten": 3, "failedRecordCount": 0}
    assert batch["started"] <= batch["completed"] == batch["updated"]
    dataset = client.get(f"/data/foundation/catalog/dataSets/{dataset_id}", headers=org.headers()).json()[dataset_id]
    assert (dataset["lastBatchId"], dataset["lastBatchStatus"]) == (batch["id"], "success")
    assert dataset["updated"] == batch["completed"]
    (listed,) = client.get(f"/data/foundation/export/batches/{batch['id']}/files", headers=org.headers()).json()["data"]
    assert listed["dataSetFileId"] == f"{batch['id']}-00000" and listed["created"] == str(batch["completed"])


def test_segment_per_batch(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    us, buyers, dataset_id = setup(client, org, drain)
    job = export(client, org, drain, dataset_id, filter={"segments": [{"segmentId": us}, {"segmentId": buyers}]},
                 destination={"datasetId": dataset_id, "segmentPerBatch": True})
    batches = job["destination"]["batches"]
    assert [(b["segmentId"], b["segmentNs"], b["status"]) for b in batches] == [
        (us, "UPS", ["realized", "existing"]), (buyers, "UPS", ["realized", "existing"])]
    assert emails(batch_rows(client, org, batches[0]["batchId"])) == ["p1@example.com", "p3@example.com",
                                                                       "p5@example.com"]
    assert emails(batch_rows(client, org, batches[1]["batchId"])) == ["p1@example.com", "p2@example.com"]
    single = export(client, org, drain, dataset_id, filter={"segments": [{"segmentId": us}, {"segmentId": buyers}]})
    assert emails(batch_rows(client, org, single["destination"]["batchId"])) == [
        "p1@example.com", "p2@example.com", "p3@example.com", "p5@example.com"]


def test_status_filter_exited(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    dataset_id = load_people(client, org, drain, [person(1), person(3)])
    us = define(client, org, "US", 'homeAddress.country = "US"')["id"]
    run_job(client, org, drain, us)
    moved = person(1)
    moved["homeAddress"] = {"country": "FR"}
    load_people(client, org, drain, [moved], dataset_id=dataset_id)
    run_job(client, org, drain, us)
    target = union_dataset(client, org)
    exited = export(client, org, drain, target, filter={"segments": [{"segmentId": us, "status": ["exited"]}]})
    assert emails(batch_rows(client, org, exited["destination"]["batchId"])) == ["p1@example.com"]
    current = export(client, org, drain, target, filter={"segments": [{"segmentId": us}]})
    assert emails(batch_rows(client, org, current["destination"]["batchId"])) == ["p3@example.com"]


def test_qualification_time_window_and_empty_result(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    us, _, dataset_id = setup(client, org, drain)
    past = export(client, org, drain, dataset_id, filter={
        "segments": [{"segmentId": us}],
        "segmentQualificationTime": {"startTime": "2019-09-01T00:00:00Z", "endTime": "2019-09-02T00:00:00Z"}})
    assert batch_rows(client, org, past["destination"]["batchId"]) == []
    files = client.get(f"/data/foundation/export/batches/{past['destination']['batchId']}/files",
                       headers=org.headers()).json()["data"]
    assert len(files) == 1  # one zero-row file, so readers see an empty table
    recent = export(client, org, drain, dataset_id, filter={
        "segments": [{"segmentId": us}], "segmentQualificationTime": {"startTime": "2020-01-01T00:00:00Z"}})
    assert len(batch_rows(client, org, recent["destination"]["batchId"])) == 3
    aam = export(client, org, drain, dataset_id, filter={"segments": [{"segmentId": "x", "segmentNs": "AAM"}]})
    assert batch_rows(client, org, aam["destination"]["batchId"]) == []


def test_no_segment_filter_exports_everyone_and_empty_profiles(client: TestClient, org: Org,
                                                              drain: Callable[[], int]) -> None:
    _, _, dataset_id = setup(client, org, drain)
    everyone = export(client, org, drain, dataset_id)
    assert len(batch_rows(client, org, everyone["destination"]["batchId"])) == 6
    # An event from an identity with no profile record is an "empty profile".
    load_people(client, org, drain, [person(7)], [event(9, 40)])
    with_empty = export(client, org, drain, dataset_id, filter={"emptyProfiles": True})
    assert len(batch_rows(client, org, with_empty["destination"]["batchId"])) == 8
    without = export(client, org, drain, dataset_id, filter={"emptyProfiles": False})
    assert len(batch_rows(client, org, without["destination"]["batchId"])) == 7


def test_from_ingest_timestamp_and_event_list(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    us, _, dataset_id = setup(client, org, drain)
    future = export(client, org, drain, dataset_id, filter={"fromIngestTimestamp": "2999-01-01T00:00:00Z"})
    assert batch_rows(client, org, future["destination"]["batchId"]) == []
    with_events = export(client, org, drain, dataset_id, fields="homeAddress.country",
                         filter={"segments": [{"segmentId": us}]},
                         additionalFields={"eventList": {"fields": "eventType,commerce.order.priceTotal",
                                                         "filter": {"fromIngestTimestamp": "2000-01-01T00:00:00Z"}}})
    rows = {dict(r["identityMap"])["email"][0]["id"]: r for r in batch_rows(client, org,
                                                                             with_events["destination"]["batchId"])}
    events = rows["p1@example.com"]["eventList"]
    assert [e["eventType"] for e in events] == ["commerce.purchases", "commerce.purchases"]
    assert [e["commerce"]["order"]["priceTotal"] for e in events] == [10.5, 13.5]
    assert rows["p3@example.com"]["eventList"] == []
    none_since = export(client, org, drain, dataset_id, filter={"segments": [{"segmentId": us}]},
                        additionalFields={"eventList": {"filter": {"fromIngestTimestamp": "2999-01-01T00:00:00Z"}}})
    assert all(r["eventList"] == [] for r in batch_rows(client, org, none_since["destination"]["batchId"]))


def test_dataset_reflects_the_latest_export(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    us, buyers, dataset_id = setup(client, org, drain)
    first = export(client, org, drain, dataset_id, filter={"segments": [{"segmentId": us}]})
    export(client, org, drain, dataset_id, filter={"segments": [{"segmentId": buyers}]})
    assert get_batch(client, org.headers(), first["destination"]["batchId"])["status"] == "replaced"
    query = client.post("/data/foundation/query/queries", headers=org.headers(),
                        json={"sql": "SELECT count(*) AS n FROM segment_export"}).json()
    drain()
    assert client.get(f"/data/foundation/query/queries/{query['id']}/results",
                      headers=org.headers()).json()["rows"] == [[2]]


def test_validation_names_the_field(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    profile_dataset = create_dataset(client, org.headers())
    target = union_dataset(client, org)
    base = {"destination": {"datasetId": target}, "schema": {"name": "_xdm.context.profile"}}
    cases = [
        ({**base, "destination": {"datasetId": "nope"}}, "'destination.datasetId': dataset 'nope' does not exist"),
        ({**base, "destination": {"datasetId": profile_dataset}}, "not based on the profile union schema"),
        ({**base, "filter": {"fromIngestTimestamp": "yesterday"}}, "'filter.fromIngestTimestamp' must be an RFC 3339"),
        ({**base, "filter": {"segments": [{"segmentId": "nope"}]}}, "segment definition 'nope' does not exist"),
        ({**base, "filter": {"segments": [{"segmentId": "x", "segmentNs": "AAM", "status": ["gone"]}]}},
         "'filter.segments[0].status'"),
        ({"destination": {"datasetId": target}}, "'schema.name'"),
    ]
    for body, message in cases:
        assert_aep_error(client.post(EXPORTS, headers=org.headers(), json=body), 400, detail_contains=message)


def test_list_paging_and_cancel(client: TestClient, org: Org, services: Services, drain: Callable[[], int]) -> None:
    target = union_dataset(client, org)
    body = {"destination": {"datasetId": target}, "schema": {"name": "_xdm.context.profile"}}
    ids = [client.post(EXPORTS, headers=org.headers(), json=body).json()["id"] for _ in range(3)]
    page = client.get(f"{EXPORTS}?limit=2", headers=org.headers()).json()
    assert [r["id"] for r in page["records"]] == ids[:0:-1]
    assert page["link"]["next"] == f"/export/jobs/?limit=2&offset={page['page']['pageOffset']}"
    rest = client.get(f"{EXPORTS}?limit=2&offset={page['page']['pageOffset']}", headers=org.headers()).json()
    assert [r["id"] for r in rest["records"]] == [ids[0]] and rest["link"]["next"] == ""
    cancel = client.delete(f"{EXPORTS}/{ids[1]}", headers=org.headers())  # segmentation.yaml: 200 with a body
    assert (cancel.status_code, cancel.json()) == (200, {"status": True,
                                                         "message": "Export job has been marked for cancelling"})
    drain()
    cancelled = client.get(f"{EXPORTS}/{ids[1]}", headers=org.headers()).json()
    assert cancelled["status"] == "CANCELLED"
    only = client.get(f"{EXPORTS}?status=cancelled", headers=org.headers()).json()  # segmentation.yaml's filter
    assert [r["id"] for r in only["records"]] == [ids[1]]
    assert_aep_error(client.get(f"{EXPORTS}?status=DONE", headers=org.headers()), 400, detail_contains="'status'")
    assert get_batch(client, org.headers(), cancelled["destination"]["batchId"])["status"] == "aborted"


def test_query_service_is_read_only(client: TestClient, org: Org) -> None:
    union_dataset(client, org)
    for sql, message in [("DROP TABLE segment_export", "read-only"),
                         ("SELECT * FROM read_csv('/etc/passwd')", "table functions"),
                         ("SELECT * FROM other_table", "unknown table 'other_table'"),
                         ("SELECT 1; SELECT 2", "exactly one statement")]:
        assert_aep_error(client.post("/data/foundation/query/queries", headers=org.headers(), json={"sql": sql}),
                         400, detail_contains=message)


def test_a_failed_export_leaves_no_visible_batch(client: TestClient, org: Org, services: Services,
                                                 drain: Callable[[], int], monkeypatch: Any) -> None:
    us, _, dataset_id = setup(client, org, drain)
    from openseg.exports import job_execution

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(job_execution, "write_parts", broken)
    created = client.post(EXPORTS, headers=org.headers(), json={
        "filter": {"segments": [{"segmentId": us}]}, "destination": {"datasetId": dataset_id},
        "schema": {"name": "_xdm.context.profile"}}).json()
    drain()
    job = client.get(f"{EXPORTS}/{created['id']}", headers=org.headers()).json()
    assert job["status"] == "FAILED"
    assert "disk full" in job["errors"][0]["msg"]
    batch_id = job["destination"]["batchId"]
    assert get_batch(client, org.headers(), batch_id)["status"] == "failed"
    files = client.get(f"/data/foundation/export/batches/{batch_id}/files", headers=org.headers()).json()["data"]
    assert files == []
    assert not list(services.settings.lake.glob(f"*/{dataset_id}/*/*.parquet"))
    assert not list(services.settings.lake.glob(f"*/{dataset_id}/.*.partial"))


def test_export_schedule_fires_an_export(client: TestClient, org: Org, services: Services,
                                         drain: Callable[[], int]) -> None:
    from datetime import UTC, datetime, timedelta

    from openseg.scheduling.scheduler import tick
    from openseg.store.models import Schedule

    us, _, dataset_id = setup(client, org, drain)
    request = {"filter": {"segments": [{"segmentId": us}]}, "destination": {"datasetId": dataset_id},
               "schema": {"name": "_xdm.context.profile"}}
    bad = client.post("/data/core/ups/config/schedules", headers=org.headers(), json={
        "name": "bad", "type": "export", "schedule": "0 0 2 * * ?",
        "properties": {**request, "destination": {"datasetId": "nope"}}})
    assert_aep_error(bad, 400, detail_contains="properties: 'destination.datasetId'")
    schedule = client.post("/data/core/ups/config/schedules", headers=org.headers(), json={
        "name": "nightly export", "type": "export", "schedule": "0 0 2 * * ?", "state": "active",
        "properties": request}).json()
    start = datetime(2026, 3, 1, tzinfo=UTC)
    with services.db.session() as session:
        row = session.get(Schedule, schedule["id"])
        assert row is not None
        row.effective_from = int(start.timestamp() * 1000)
    tick(services, start + timedelta(hours=2, minutes=1))
    drain()
    listed = client.get(EXPORTS, headers=org.headers()).json()["records"]
    assert [r["status"] for r in listed] == ["SUCCEEDED"]
    assert emails(batch_rows(client, org, listed[0]["destination"]["batchId"])) == [
        "p1@example.com", "p3@example.com", "p5@example.com"]


def test_an_export_is_split_into_parts_of_at_most_file_rows(client: TestClient, org: Org, services: Services,
                                                             drain: Callable[[], int], monkeypatch: Any) -> None:
    from openseg.exports import job_execution

    _, _, dataset_id = setup(client, org, drain)
    monkeypatch.setattr(job_execution, "FILE_ROWS", 4)
    everyone = export(client, org, drain, dataset_id, fields="homeAddress.country")
    batch_id = everyone["destination"]["batchId"]
    [folder] = services.settings.lake.glob(f"*/{dataset_id}/{batch_id}")
    assert sorted(p.name for p in folder.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert [pq.read_metadata(folder / name).num_rows for name in ("part-00000.parquet", "part-00001.parquet")] == [4, 2]
    files = client.get(f"/data/foundation/export/batches/{batch_id}/files", headers=org.headers()).json()["data"]
    assert len(files) == 2 and len(batch_rows(client, org, batch_id)) == 6
    assert everyone["metrics"]["openseg:exportedProfiles"] == 6


def test_deleting_a_finished_export_removes_its_record_and_keeps_its_files(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> None:
    us, _, dataset_id = setup(client, org, drain)
    body = {"filter": {"segments": [{"segmentId": us}]}}
    first, last = export(client, org, drain, dataset_id, **body), export(client, org, drain, dataset_id, **body)
    deleted = client.delete(f"{EXPORTS}/{last['id']}", headers=org.headers())
    assert (deleted.status_code, deleted.json()) == (
        200, {"status": True, "message": f"Export job {last['id']} has been deleted"})
    assert_aep_error(client.get(f"{EXPORTS}/{last['id']}", headers=org.headers()), 404)
    assert_aep_error(client.delete(f"{EXPORTS}/{last['id']}", headers=org.headers()), 404)
    assert [r["id"] for r in client.get(EXPORTS, headers=org.headers()).json()["records"]] == [first["id"]]
    # The exported batch stays, and a new export never takes the deleted one's id.
    assert emails(batch_rows(client, org, last["destination"]["batchId"])) == [
        "p1@example.com", "p3@example.com", "p5@example.com"]
    assert get_batch(client, org.headers(), last["destination"]["batchId"])["status"] == "success"
    assert export(client, org, drain, dataset_id, **body)["id"] > last["id"]
    with services.db.session() as session:  # its work item replayed (after a crash) runs nothing
        enqueue(session, RUN_EXPORT, str(last["id"]))
    assert drain() == 1
    with services.db.session() as session:
        stored = session.get(ExportJob, last["id"])
        assert stored is not None and stored.status == "DELETED"
