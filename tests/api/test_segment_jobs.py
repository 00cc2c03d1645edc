"""The seed's on-demand evaluation: segment jobs, their metrics, membership across runs, cancel, recovery."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openseg.container import Services
from openseg.segmentation.jobs import RUN_SEGMENT_JOB
from openseg.store.models import SegmentJob, WorkItem
from openseg.worker.queue import enqueue
from tests.api.aep import assert_aep_error
from tests.api.flows import EVENT, create_dataset, event, json_lines, person, upload_batch
from tests.api.test_definitions import define
from tests.conftest import Org

JOBS = "/data/core/ups/segment/jobs"


def load_people(client: TestClient, org: Org, drain: Callable[[], int], people: list[dict[str, Any]],
                events: list[dict[str, Any]] | None = None, dataset_id: str | None = None) -> str:
    dataset_id = dataset_id or create_dataset(client, org.headers())
    upload_batch(client, org.headers(), dataset_id, {"people.json": json_lines(people)})
    if events:
        events_id = create_dataset(client, org.headers(), "events", EVENT)
        upload_batch(client, org.headers(), events_id, {"events.json": json_lines(events)})
    drain()
    return dataset_id


def run_job(client: TestClient, org: Org, drain: Callable[[], int], *segment_ids: str) -> dict[str, Any]:
    created = client.post(JOBS, headers=org.headers(), json=[{"segmentId": s} for s in segment_ids])
    assert created.status_code == 200, created.text
    drain()
    job = client.get(f"{JOBS}/{created.json()['id']}", headers=org.headers()).json()
    assert job["status"] == "SUCCEEDED", job
    return dict(job)


def test_seed_on_demand_flow(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    people = [person(i) for i in range(10)]  # odd i live in the US
    # commerce.purchases: profile 0 twice, profile 1 once, profile 2 three times
    purchases = [event(i, p) for i, p in [(0, 0), (3, 0), (6, 1), (9, 2), (12, 2), (15, 2)]]
    load_people(client, org, drain, people, purchases)
    us = define(client, org, "US", 'homeAddress.country = "US"')
    buyers = define(client, org, "buyers", 'xEvent[eventType = "commerce.purchases"].count() >= 2')

    created = client.post(JOBS, headers=org.headers(), json=[{"segmentId": us["id"]}, {"segmentId": buyers["id"]}])
    assert created.status_code == 200
    job = created.json()
    assert job["status"] == "QUEUED" and job["profileInstanceId"] == "ups"
    assert [s["segmentId"] for s in job["segments"]] == [us["id"], buyers["id"]]
    assert job["segments"][0]["segment"] == {
        "id": us["id"], "version": 1,
        "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "US"'},
        "mergePolicy": {"id": us["mergePolicyId"], "version": 1},
    }
    assert job["_links"] == {"cancel": {"href": f"/segment/jobs/{job['id']}", "method": "DELETE"},
                             "checkStatus": {"href": f"/segment/jobs/{job['id']}", "method": "GET"}}
    assert isinstance(job["creationTime"], int) and job["imsOrgId"] == org.org_id
    # segmentation.yaml requires metrics (with totalTime and profileSegmentationTime) on a new job too.
    assert job["metrics"] == {"totalTime": {"startTimeInMs": job["creationTime"]}, "profileSegmentationTime": {}}
    assert job["updateEpoch"] == job["updateTime"] // 1000 and job["schema"] == {"name": "_xdm.context.profile"}

    drain()
    done = client.get(f"{JOBS}/{job['id']}", headers=org.headers()).json()
    assert done["status"] == "SUCCEEDED" and done["errors"] == []
    metrics = done["metrics"]
    assert metrics["totalProfiles"] == 10
    assert metrics["segmentedProfileCounter"] == {us["id"]: 5, buyers["id"]: 2}
    assert metrics["segmentedProfileByNamespaceCounter"] == {us["id"]: {"email": 5}, buyers["id"]: {"email": 2}}
    assert metrics["segmentedProfileByStatusCounter"] == {
        us["id"]: {"realized": 5, "existing": 0, "exited": 0},
        buyers["id"]: {"realized": 2, "existing": 0, "exited": 0},
    }
    for timing in ("totalTime", "profileSegmentationTime"):
        t = metrics[timing]
        assert t["endTimeInMs"] - t["startTimeInMs"] == t["totalTimeInMs"] >= 0
    # openseg's extension: what each segment's part of the one-pass plan cost. "US" reads profiles only;
    # "buyers" also reads the events scan (all 6 purchases, 3 profiles with some). The final stage
    # reads the 10 profiles and the scan's 3 rows, and is shared by both.
    cost = metrics["openseg:segmentCost"]
    assert list(cost) == [us["id"], buyers["id"]]
    final = {"name": "segments", "relation": "profiles", "rows": 10, "rowsScanned": 13, "sharedBy": 2}
    scan = {"name": "ev", "relation": "events", "rows": 3, "rowsScanned": 6, "sharedBy": 1}
    assert [{k: v for k, v in stage.items() if k != "seconds"} for stage in cost[us["id"]]["stages"]] == [final]
    assert [{k: v for k, v in stage.items() if k != "seconds"} for stage in cost[buyers["id"]]["stages"]] == [
        scan, final]
    assert cost[us["id"]]["rowsScanned"] == 7 and cost[buyers["id"]]["rowsScanned"] == 6 + 6
    scan_seconds, final_seconds = (stage["seconds"] for stage in cost[buyers["id"]]["stages"])
    assert cost[us["id"]]["seconds"] == pytest.approx(final_seconds / 2, abs=1e-5)
    assert cost[buyers["id"]]["seconds"] == pytest.approx(scan_seconds + final_seconds / 2, abs=1e-5)


def test_star_runs_every_definition_and_list_pages(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    load_people(client, org, drain, [person(i) for i in range(4)])
    ids = [define(client, org, f"s{i}", f"loyalty.points >= {i * 10}")["id"] for i in range(3)]
    job = run_job(client, org, drain, "*")
    assert [s["segmentId"] for s in job["segments"]] == ids
    assert job["metrics"]["segmentedProfileCounter"] == {ids[0]: 4, ids[1]: 3, ids[2]: 2}
    second = run_job(client, org, drain, ids[0])
    listed = client.get(f"{JOBS}?limit=1", headers=org.headers()).json()
    assert [j["id"] for j in listed["children"]] == [second["id"]]
    assert listed["_page"]["totalCount"] == 2
    assert listed["_links"]["next"]["href"] == f"{JOBS}?start=1&limit=1"
    succeeded = client.get(f"{JOBS}?status=SUCCEEDED", headers=org.headers()).json()
    assert succeeded["_page"]["totalCount"] == 2


def test_membership_realized_existing_exited(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    dataset_id = load_people(client, org, drain, [person(1), person(2)])
    us = define(client, org, "US", 'homeAddress.country = "US"')
    first = run_job(client, org, drain, us["id"])
    assert first["metrics"]["segmentedProfileByStatusCounter"][us["id"]] == {"realized": 1, "existing": 0, "exited": 0}
    load_people(client, org, drain, [person(3)], dataset_id=dataset_id)  # a second US resident arrives
    second = run_job(client, org, drain, us["id"])
    assert second["metrics"]["segmentedProfileByStatusCounter"][us["id"]] == {"realized": 1, "existing": 1, "exited": 0}
    moved = person(1)
    moved["homeAddress"] = {"country": "FR"}
    load_people(client, org, drain, [moved], dataset_id=dataset_id)  # person 1 moves to France
    third = run_job(client, org, drain, us["id"])
    assert third["metrics"]["segmentedProfileByStatusCounter"][us["id"]] == {"realized": 0, "existing": 1, "exited": 1}
    assert third["metrics"]["segmentedProfileCounter"][us["id"]] == 1


def test_bad_job_requests(client: TestClient, org: Org) -> None:
    assert_aep_error(client.post(JOBS, headers=org.headers(), json=[]), 400, detail_contains="non-empty array")
    assert_aep_error(client.post(JOBS, headers=org.headers(), json=[{"segmentId": "nope"}]), 400,
                     detail_contains="not found in this sandbox: nope")
    assert_aep_error(client.get(f"{JOBS}/nope", headers=org.headers()), 404, detail_contains="segment job 'nope'")


def test_cancelled_job_writes_no_membership(client: TestClient, services: Services, org: Org,
                                            drain: Callable[[], int]) -> None:
    load_people(client, org, drain, [person(1)])
    us = define(client, org, "US", 'homeAddress.country = "US"')
    job = client.post(JOBS, headers=org.headers(), json=[{"segmentId": us["id"]}]).json()
    assert client.delete(f"{JOBS}/{job['id']}", headers=org.headers()).status_code == 204
    drain()
    cancelled = client.get(f"{JOBS}/{job['id']}", headers=org.headers()).json()
    assert cancelled["status"] == "CANCELLED" and "segmentedProfileCounter" not in cancelled.get("metrics", {})
    assert not list((services.settings.home / "membership").rglob("*.parquet"))
    # AEP's DELETE is "cancel or delete": on a job that has ended it deletes the record.
    assert client.delete(f"{JOBS}/{job['id']}", headers=org.headers()).status_code == 204
    assert_aep_error(client.get(f"{JOBS}/{job['id']}", headers=org.headers()), 404, detail_contains=job["id"])


def test_cancel_while_processing(client: TestClient, services: Services, org: Org, drain: Callable[[], int],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    load_people(client, org, drain, [person(1)])
    us = define(client, org, "US", 'homeAddress.country = "US"')
    job = client.post(JOBS, headers=org.headers(), json=[{"segmentId": us["id"]}]).json()
    from openseg.segmentation import job_execution

    real = job_execution.evaluate_segments

    def cancel_midway(*args: Any, **kwargs: Any) -> Any:
        assert client.delete(f"{JOBS}/{job['id']}", headers=org.headers()).status_code == 204
        assert client.get(f"{JOBS}/{job['id']}", headers=org.headers()).json()["status"] == "CANCELLING"
        return real(*args, **kwargs)

    monkeypatch.setattr(job_execution, "evaluate_segments", cancel_midway)
    drain()
    assert client.get(f"{JOBS}/{job['id']}", headers=org.headers()).json()["status"] == "CANCELLED"
    assert not list((services.settings.home / "membership").rglob("*.parquet"))


def test_a_running_job_shows_its_progress_and_a_cancel_stops_it_at_the_next_stage(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    load_people(client, org, drain, [person(i) for i in range(3)], [event(i, i % 3) for i in range(6)])
    buyers = define(client, org, "buyers", 'xEvent[eventType = "commerce.purchases"].count() >= 2')
    job = client.post(JOBS, headers=org.headers(), json=[{"segmentId": buyers["id"]}]).json()
    from openseg.engines.duckdb import DuckDBEngine
    from openseg.segmentation import membership

    seen: list[dict[str, Any]] = []
    real = DuckDBEngine.materialize_staged

    def watched(self: DuckDBEngine, connection: Any, stages: Any, final: Any, tables: Any, name: str,
                on_stage: Any) -> Any:
        def after(run: Any) -> None:
            on_stage(run)
            polled = client.get(f"{JOBS}/{job['id']}", headers=org.headers()).json()
            seen.append({"status": polled["status"], **polled["metrics"]["openseg:progress"]})
            assert client.delete(f"{JOBS}/{job['id']}", headers=org.headers()).status_code == 204
        return real(self, connection, stages, final, tables, name, after)

    diffs: list[object] = []
    monkeypatch.setattr(DuckDBEngine, "materialize_staged", watched)
    monkeypatch.setattr(membership.MembershipDiffer, "diff", lambda *a: diffs.append(a))
    drain()
    # The plan has 2 stages (the events scan, then every segment's condition), then the diff and the files.
    policy = buyers["mergePolicyId"]
    assert seen == [{"status": "PROCESSING", "mergePolicyId": policy, "mergePolicy": 1, "mergePolicies": 1,
                     "step": "ev", "stepsDone": 1, "stepsTotal": 4}]
    assert client.get(f"{JOBS}/{job['id']}", headers=org.headers()).json()["status"] == "CANCELLED"
    assert diffs == [] and not list((services.settings.home / "membership").rglob("*.parquet"))


def test_job_over_deleted_merge_policy_fails_readably(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    load_people(client, org, drain, [person(1)])
    policy = client.post("/data/core/ups/config/mergePolicies", headers=org.headers(), json={
        "name": "temp", "identityGraph": {"type": "none"}, "attributeMerge": {"type": "timestampOrdered"}}).json()
    us = define(client, org, "US", 'homeAddress.country = "US"', mergePolicyId=policy["id"])
    job = client.post(JOBS, headers=org.headers(), json=[{"segmentId": us["id"]}]).json()
    default = client.get("/data/core/ups/config/mergePolicies?default=true", headers=org.headers()).json()
    client.patch(f"/data/core/ups/segment/definitions/{us['id']}", headers=org.headers(),
                 json={"mergePolicyId": default["children"][0]["id"]})
    assert client.delete(f"/data/core/ups/config/mergePolicies/{policy['id']}", headers=org.headers()).status_code == 200
    drain()
    failed = client.get(f"{JOBS}/{job['id']}", headers=org.headers()).json()
    assert failed["status"] == "FAILED"
    assert failed["errors"] == [{"code": "0090000011",
                                 "msg": f"merge policy '{policy['id']}' of segment(s) {us['id']} no longer exists"}]


def test_job_interrupted_by_a_crash_finishes_after_restart(client: TestClient, services: Services, org: Org,
                                                          drain: Callable[[], int]) -> None:
    load_people(client, org, drain, [person(1), person(3)])
    us = define(client, org, "US", 'homeAddress.country = "US"')
    job = client.post(JOBS, headers=org.headers(), json=[{"segmentId": us["id"]}]).json()
    assert services.worker is not None
    # A worker that died mid-job: its item is running, the job PROCESSING, its heartbeat long gone.
    item = services.worker.queue.claim("dead-host:1:0")
    assert item is not None and item.ref_id == job["id"]
    with services.db.session() as session:
        session.get(SegmentJob, job["id"]).status = "PROCESSING"  # type: ignore[union-attr]
        session.get(WorkItem, item.id).heartbeat = 0  # type: ignore[union-attr]
    assert drain() == 0  # nothing is queued: the job looks stuck
    assert services.worker.recover() == 1  # the restarted worker re-queues the abandoned item
    drain()
    finished = client.get(f"{JOBS}/{job['id']}", headers=org.headers()).json()
    assert finished["status"] == "SUCCEEDED"
    assert finished["metrics"]["segmentedProfileByStatusCounter"][us["id"]] == {"realized": 2, "existing": 0,
                                                                                 "exited": 0}


def test_history_answers_who_was_in_at_a_time(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    dataset_id = load_people(client, org, drain, [person(1), person(3)])
    us = define(client, org, "US", 'homeAddress.country = "US"')
    first = run_job(client, org, drain, us["id"])
    moved = person(1)
    moved["homeAddress"] = {"country": "FR"}
    load_people(client, org, drain, [moved], dataset_id=dataset_id)
    second = run_job(client, org, drain, us["id"])
    members = f"/data/core/ups/segment/definitions/{us['id']}/members"

    def at(ms: int) -> list[str]:
        from datetime import UTC, datetime

        stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")
        body = client.get(f"{members}?at={stamp}", headers=org.headers()).json()
        return [m["entityId"] for m in body["members"]]

    entered = first["metrics"]["profileSegmentationTime"]["endTimeInMs"]
    left = second["metrics"]["profileSegmentationTime"]["endTimeInMs"]
    assert at(entered - 60_000) == []
    assert at(entered + 1) == ["email:p1@example.com", "email:p3@example.com"]
    assert at(left + 1) == ["email:p3@example.com"]
    history = client.get("/data/core/ups/access/membership-history?entityId=p1@example.com&entityIdNS=email",
                         headers=org.headers()).json()
    assert history["profileId"] == "email:p1@example.com"
    (stay,) = history["history"]
    assert stay["segmentId"] == us["id"]
    assert (stay["enteredByJob"], stay["exitedByJob"]) == (first["id"], second["id"])
    assert stay["enteredAt"] < stay["exitedAt"]
    # one precision for every instant, so times sort as text too (a whole second once lost its ".000")
    instant = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
    assert instant.fullmatch(stay["enteredAt"]) and instant.fullmatch(stay["exitedAt"])
    missing = client.get("/data/core/ups/access/membership-history?entityId=nobody@x&entityIdNS=email",
                         headers=org.headers())
    assert_aep_error(missing, 404, detail_contains="no profile has identity email:nobody@x")


def test_fields_the_data_never_held_read_as_missing(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    load_people(client, org, drain, [{"identityMap": {"email": [{"id": "solo@x"}]}, "homeAddress": {"city": "Oslo"}}])
    absent = define(client, org, "state", 'homeAddress.state = "CA"')
    negated = define(client, org, "not gold", 'not (loyalty.tier = "gold")')
    no_events = define(client, org, "no buyers", 'xEvent[commerce.order.priceTotal > 10].count() = 0')
    job = run_job(client, org, drain, absent["id"], negated["id"], no_events["id"])
    assert job["metrics"]["segmentedProfileCounter"] == {absent["id"]: 0, negated["id"]: 1, no_events["id"]: 1}


def test_deleting_a_finished_job_removes_its_record_and_keeps_its_membership(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> None:
    load_people(client, org, drain, [person(1), person(2), person(3)])
    us = define(client, org, "US", 'homeAddress.country = "US"')
    first = run_job(client, org, drain, us["id"])
    second = run_job(client, org, drain, us["id"])
    members = f"/data/core/ups/segment/definitions/{us['id']}/members"
    before = client.get(members, headers=org.headers()).json()["members"]
    assert [m["entityId"] for m in before] == ["email:p1@example.com", "email:p3@example.com"]

    assert client.delete(f"{JOBS}/{first['id']}", headers=org.headers()).status_code == 204
    assert_aep_error(client.get(f"{JOBS}/{first['id']}", headers=org.headers()), 404, detail_contains=first["id"])
    assert_aep_error(client.delete(f"{JOBS}/{first['id']}", headers=org.headers()), 404)
    listed = client.get(JOBS, headers=org.headers()).json()
    assert [j["id"] for j in listed["children"]] == [second["id"]] and listed["_page"]["totalCount"] == 1
    assert client.get(f"{JOBS}?status=SUCCEEDED", headers=org.headers()).json()["_page"]["totalCount"] == 1
    # What the job produced stays: the members it made (its history), and each profile's membership.
    assert client.get(members, headers=org.headers()).json()["members"] == before
    history = client.get("/data/core/ups/access/membership-history?entityId=p1@example.com&entityIdNS=email",
                         headers=org.headers()).json()["history"]
    assert [stay["enteredByJob"] for stay in history] == [first["id"]]
    entity = client.get("/data/core/ups/access/entities", headers=org.headers(), params={
        "schema.name": "_xdm.context.profile", "entityId": "p1@example.com", "entityIdNS": "email"}).json()
    (profile,) = entity.values()
    assert profile["entity"]["segmentMembership"]["ups"][us["id"]]["status"] == "existing"
    # A later job still numbers on: compute job ids are never given twice.
    third = run_job(client, org, drain, us["id"])
    assert third["computeJobId"] == second["computeJobId"] + 1
    # Its work item replayed (a crash between a job's end and its item's) runs nothing.
    with services.db.session() as session:
        enqueue(session, RUN_SEGMENT_JOB, first["id"])
    assert drain() == 1
    with services.db.session() as session:
        stored = session.get(SegmentJob, first["id"])
        assert stored is not None and stored.status == "DELETED_SUCCESS"


def test_bulk_get_answers_each_job(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    """segmentation.yaml: 207 with one entry per id, as a single GET shows the job; others are not found."""
    load_people(client, org, drain, [person(1)])
    us = define(client, org, "US", 'homeAddress.country = "US"')
    done = run_job(client, org, drain, us["id"])
    queued = client.post(JOBS, headers=org.headers(), json=[{"segmentId": us["id"]}]).json()
    client.post("/data/foundation/sandbox-management/sandboxes", headers=org.headers(), json={"name": "dev"})
    ids = [done["id"], queued["id"], "nope"]
    response = client.post(f"{JOBS}/bulk-get", headers=org.headers(), json={"ids": [{"id": i} for i in ids]})
    assert response.status_code == 207, response.text
    assert response.json() == {"results": {
        done["id"]: client.get(f"{JOBS}/{done['id']}", headers=org.headers()).json(),
        queued["id"]: client.get(f"{JOBS}/{queued['id']}", headers=org.headers()).json(),
        "nope": {"errors": {"404": [{"code": 404, "message": "segment job 'nope' was not found"}]}}}}
    from_dev = client.post(f"{JOBS}/bulk-get", headers=org.headers("dev"), json={"ids": [{"id": done["id"]}]})
    assert from_dev.json() == {"results": {done["id"]: {"errors": {"404": [
        {"code": 404, "message": f"segment job '{done['id']}' was not found"}]}}}}
    assert client.delete(f"{JOBS}/{done['id']}", headers=org.headers()).status_code == 204
    deleted = client.post(f"{JOBS}/bulk-get", headers=org.headers(), json={"ids": [{"id": done["id"]}]}).json()
    assert list(deleted["results"][done["id"]]) == ["errors"]
    assert_aep_error(client.post(f"{JOBS}/bulk-get", headers=org.headers(), json={"ids": [{"id": 5}]}), 400,
                     detail_contains="'ids' must be a list")
    nul = client.post(f"{JOBS}/bulk-get", headers=org.headers(), json={"ids": [{"id": "a"}, {"id": "a\u0000b"}]})
    assert assert_aep_error(nul, 400, detail_contains="'ids[1].id' holds a NUL")["report"]["field"] == "ids[1].id"
