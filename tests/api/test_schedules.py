"""The seed's scheduled evaluation: create, activate, change the time; guardrails; the scheduler."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from openseg.bootstrap import build_services
from openseg.container import Services
from openseg.scheduling.scheduler import tick
from openseg.store.models import Schedule, SegmentJob
from tests.api.aep import assert_aep_error
from tests.api.test_definitions import define
from tests.conftest import Org

PATH = "/data/core/ups/config/schedules"
SEED_BODY = {"name": "nightly", "type": "batch_segmentation", "properties": {"segments": ["*"]},
             "schedule": "0 0 1 * * ?", "state": "inactive"}


def _create(client: TestClient, org: Org, **changes: object) -> dict:
    response = client.post(PATH, headers=org.headers(), json={**SEED_BODY, **changes})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_seed_schedule_calls(client: TestClient, org: Org) -> None:
    created = _create(client, org)
    assert {k: created[k] for k in ("name", "state", "type", "schedule", "properties")} == {
        "name": "nightly", "state": "inactive", "type": "batch_segmentation", "schedule": "0 0 1 * * ?",
        "properties": {"segments": ["*"]}}
    assert created["imsOrgId"] == org.org_id
    assert created["sandbox"]["sandboxName"] == "prod" and created["sandbox"]["default"] is True
    assert created["createEpoch"] == created["updateEpoch"] and created["nextRun"] is None
    activate = client.post(f"{PATH}/{created['id']}", headers=org.headers(),
                           json=[{"op": "add", "path": "/state", "value": "active"}])
    assert activate.status_code == 204 and activate.content == b""
    retime = client.post(f"{PATH}/{created['id']}", headers=org.headers(),
                         json=[{"op": "add", "path": "/schedule", "value": "0 15 10 * * ?"}])
    assert retime.status_code == 204
    current = client.get(f"{PATH}/{created['id']}", headers=org.headers()).json()
    assert (current["state"], current["schedule"], current["frequency"]) == ("active", "0 15 10 * * ?", "daily")
    next_run = datetime.fromtimestamp(current["nextRun"] / 1000, UTC)
    assert (next_run.hour, next_run.minute, next_run.second) == (10, 15, 0)
    listed = client.get(PATH, headers=org.headers()).json()
    assert [c["id"] for c in listed["children"]] == [created["id"]]
    assert listed["children"][0]["frequency"] == "daily" and listed["_links"] == {"next": {"href": ""}}
    patched = client.patch(f"{PATH}/{created['id']}", headers=org.headers(),
                           json=[{"op": "replace", "path": "/state", "value": "inactive"}])
    assert patched.status_code == 204
    assert client.delete(f"{PATH}/{created['id']}", headers=org.headers()).status_code == 204
    assert_aep_error(client.get(f"{PATH}/{created['id']}", headers=org.headers()), 404)


@pytest.mark.parametrize(("cron", "message"), [
    ("0 0/30 * * * ?", "fires 48 times within 24 hours"),
    ("0 0 1 * *", "expression"),
    ("0 0 25 * * ?", "hour"),
])
def test_cron_is_checked(client: TestClient, org: Org, cron: str, message: str) -> None:
    response = client.post(PATH, headers=org.headers(), json={**SEED_BODY, "schedule": cron})
    assert_aep_error(response, 400, detail_contains=message)


def test_last_friday_is_accepted(client: TestClient, org: Org) -> None:
    assert _create(client, org, schedule="0 15 10 ? * 6L")["frequency"] == "monthly"


def test_one_schedule_of_each_type(client: TestClient, org: Org) -> None:
    first = _create(client, org)
    second = client.post(PATH, headers=org.headers(), json={**SEED_BODY, "name": "again"})
    assert_aep_error(second, 409, detail_contains=first["id"])


def test_more_than_five_merge_policies_refuse_scheduling(client: TestClient, org: Org) -> None:
    for i in range(5):  # the default one plus five
        client.post("/data/core/ups/config/mergePolicies", headers=org.headers(), json={
            "name": f"mp{i}", "identityGraph": {"type": "none"}, "attributeMerge": {"type": "timestampOrdered"}})
    refused = client.post(PATH, headers=org.headers(), json={**SEED_BODY, "state": "active"})
    assert_aep_error(refused, 400, detail_contains="more than 5 merge policies; this sandbox has 6")
    created = _create(client, org)  # an inactive schedule may exist
    activate = client.post(f"{PATH}/{created['id']}", headers=org.headers(),
                           json=[{"op": "add", "path": "/state", "value": "active"}])
    assert_aep_error(activate, 400, detail_contains="more than 5 merge policies")


def test_patch_refuses_other_paths(client: TestClient, org: Org) -> None:
    created = _create(client, org)
    bad = client.patch(f"{PATH}/{created['id']}", headers=org.headers(),
                       json=[{"op": "replace", "path": "/type", "value": "export"}])
    assert_aep_error(bad, 400, detail_contains="'/type' cannot be changed")


def _jobs(services: Services, org: Org) -> int:
    with services.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(SegmentJob)
                                  .where(SegmentJob.org_id == org.org_id)) or 0)


def _fire(services: Services, org: Org, now: datetime) -> int:
    """Run the scheduler at ``now``; how many jobs it created in ``org`` (other tests' orgs may share the
    metadata store)."""
    before = _jobs(services, org)
    tick(services, now)
    return _jobs(services, org) - before


def _activate_daily(client: TestClient, org: Org, services: Services, created_at: datetime, cron: str) -> str:
    define(client, org, "US", 'homeAddress.country = "US"')
    schedule = _create(client, org, schedule=cron, state="active")
    with services.db.session() as session:
        row = session.get(Schedule, schedule["id"])
        assert row is not None
        row.effective_from = int(created_at.timestamp() * 1000)
    return str(schedule["id"])


def test_daily_schedule_fires_once_a_day_across_a_restart(client: TestClient, org: Org, services: Services) -> None:
    start = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    schedule_id = _activate_daily(client, org, services, start, "0 0 1 * * ?")
    assert _fire(services, org, start + timedelta(minutes=30)) == 0
    assert _fire(services, org, start + timedelta(hours=1, seconds=5)) == 1
    assert _fire(services, org, start + timedelta(hours=1, minutes=1)) == 0  # the same fire is not repeated
    # A restart: a new process with the same store, then the next day's tick fires once.
    restarted = build_services(services.settings)
    assert _fire(restarted, org, start + timedelta(hours=2)) == 0
    assert _fire(restarted, org, start + timedelta(days=1, hours=1, minutes=3)) == 1
    # Down for three days: the missed fires are owed once, not three times.
    assert _fire(restarted, org, start + timedelta(days=4, hours=5)) == 1
    assert _jobs(services, org) == 3
    with services.db.session() as session:
        row = session.get(Schedule, schedule_id)
        assert row is not None and row.last_job_id is not None
    current = client.get(f"{PATH}/{schedule_id}", headers=org.headers()).json()
    assert current["lastRun"] == int((start + timedelta(days=4, hours=5)).timestamp() * 1000)
    restarted.db.dispose()


def test_last_friday_schedule_fires_on_the_last_friday(client: TestClient, org: Org, services: Services) -> None:
    start = datetime(2026, 4, 25, tzinfo=UTC)  # the day after April's last Friday
    _activate_daily(client, org, services, start, "0 15 10 ? * 6L")
    assert datetime(2026, 5, 22).weekday() == datetime(2026, 5, 29).weekday() == 4
    assert _fire(services, org, datetime(2026, 5, 22, 10, 16, tzinfo=UTC)) == 0  # a Friday, not the last one
    assert _fire(services, org, datetime(2026, 5, 29, 10, 14, tzinfo=UTC)) == 0
    assert _fire(services, org, datetime(2026, 5, 29, 10, 15, 30, tzinfo=UTC)) == 1
    assert _fire(services, org, datetime(2026, 6, 25, 10, 15, 30, tzinfo=UTC)) == 0  # June's is the 26th
    assert _fire(services, org, datetime(2026, 6, 26, 10, 15, 30, tzinfo=UTC)) == 1
    assert _jobs(services, org) == 2


def test_two_workers_fire_each_schedule_once(client: TestClient, org: Org, services: Services) -> None:
    """Row locks on PostgreSQL; on SQLite the conditional claim leaves the second writer nothing."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    _activate_daily(client, org, services, start, "0 0 1 * * ?")
    others = [build_services(services.settings) for _ in range(2)]
    created: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)

    def run(index: int) -> None:
        barrier.wait()
        try:
            created[index] = tick(others[index], start + timedelta(hours=1, minutes=1))
        except OperationalError:  # SQLite: a writer whose snapshot went stale gives up; nothing is lost
            created[index] = []

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _jobs(services, org) == 1
    for other in others:
        other.db.dispose()
