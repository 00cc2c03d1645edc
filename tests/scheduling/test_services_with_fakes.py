"""The scheduling services and the scheduler loop on in-memory fakes of their ports: no database.

The same behaviour is pinned over HTTP and real stores (SQLite, PostgreSQL) by
``tests/api/test_schedules.py``; these tests reach the corners that are awkward there: a job service
that refuses, a crash in the middle of a tick, the transaction left behind by each error.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from openseg.errors import BadRequest, Conflict, NotFound, OpensegError
from openseg.scheduling import schedules
from openseg.scheduling.model import Schedule, to_ms
from openseg.scheduling.scheduler import tick
from tests.scheduling.fakes import FakeServices, FakeStore, FakeUnitOfWork, Scope, StartedJob

HERE = Scope()
ELSEWHERE = Scope(sandbox_id="sandbox-dev")
START = datetime(2026, 3, 1, tzinfo=UTC)
BODY = {"name": "nightly", "type": "batch_segmentation", "properties": {"segments": ["*"]},
        "schedule": "0 0 1 * * ?", "state": "inactive"}


@pytest.fixture
def store() -> FakeStore:
    return FakeStore(segment_ids={HERE.sandbox_id: {"seg-us", "seg-fr"}})


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The services' wall clock (creation and update times), moved by the test."""
    now = [to_ms(START)]
    monkeypatch.setattr(schedules, "now_ms", lambda: now[0])
    return now


def create(store: FakeStore, **changes: object) -> Schedule:
    return schedules.create_schedule(FakeUnitOfWork(store), HERE, {**BODY, **changes})


# -- the services behind /config/schedules -------------------------------------------------------------

def test_create_stores_the_schedule_and_commits(store: FakeStore, frozen_clock: list[int]) -> None:
    uow = FakeUnitOfWork(store)
    created = schedules.create_schedule(uow, HERE, {**BODY, "name": "  nightly  "})
    assert uow.commits == 1 and store.schedules == {created.id: created}
    assert (created.org_id, created.sandbox_id, created.name, created.state) == (HERE.org_id, HERE.sandbox_id,
                                                                                  "nightly", "inactive")
    assert created.created == created.updated == created.effective_from == frozen_clock[0]
    assert created.next_run is None and created.last_fire is None  # an inactive schedule never runs


def test_an_active_schedule_knows_its_next_run(store: FakeStore, frozen_clock: list[int]) -> None:
    created = create(store, state="active", schedule="0 15 10 * * ?")
    assert created.next_run == to_ms(START.replace(hour=10, minute=15))


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"name": " "}, "name", "'name' is required"),
    ({"type": "streaming"}, "type", "'type' must be one of"),
    ({"properties": {"segments": []}}, "properties.segments", "must list segment ids"),
    ({"properties": {"segments": ["seg-us", "seg-nope"]}}, "properties.segments", "unknown segment definitions: seg-nope"),
    ({"schedule": "0 0/30 * * * ?"}, "schedule", "fires 48 times within 24 hours"),
    ({"state": "paused"}, "state", "'state' must be active or inactive"),
])
def test_create_refuses_an_invalid_body_and_writes_nothing(store: FakeStore, changes: dict[str, object], field: str,
                                                           message: str) -> None:
    uow = FakeUnitOfWork(store)
    with pytest.raises(BadRequest, match=message) as refused:
        schedules.create_schedule(uow, HERE, {**BODY, **changes})
    assert refused.value.field == field
    assert uow.commits == 0 and store.schedules == {}


def test_segment_ids_are_known_only_in_their_sandbox(store: FakeStore) -> None:
    with pytest.raises(BadRequest, match="unknown segment definitions: seg-us"):
        schedules.create_schedule(FakeUnitOfWork(store), ELSEWHERE, {**BODY, "properties": {"segments": ["seg-us"]}})
    assert create(store, properties={"segments": ["seg-us"]}).properties == {"segments": ["seg-us"]}


def test_one_schedule_of_each_type_per_sandbox(store: FakeStore) -> None:
    first = create(store)
    with pytest.raises(Conflict, match=first.id) as conflict:
        create(store, name="again")
    assert conflict.value.report == {"existingScheduleId": first.id}
    assert list(store.schedules) == [first.id]
    schedules.create_schedule(FakeUnitOfWork(store), ELSEWHERE, BODY)  # another sandbox may have its own
    assert len(store.schedules) == 2


def test_export_schedules_are_checked_by_the_export_service(store: FakeStore) -> None:
    export = {**BODY, "type": "export", "properties": {"destination": {"datasetId": "nope"}}}
    with pytest.raises(BadRequest, match="properties: 'destination.datasetId'"):
        schedules.create_schedule(FakeUnitOfWork(store, bad_export="'destination.datasetId' is unknown"), HERE, export)
    assert store.schedules == {}
    assert schedules.create_schedule(FakeUnitOfWork(store), HERE, export).type == "export"


def test_more_than_five_merge_policies_refuse_an_active_schedule(store: FakeStore) -> None:
    store.merge_policies[HERE.sandbox_id] = 6
    with pytest.raises(BadRequest, match="more than 5 merge policies; this sandbox has 6") as refused:
        create(store, state="active")
    assert refused.value.report["guardrail"] == "maxMergePoliciesForScheduledEvaluation"
    inactive = create(store)
    with pytest.raises(BadRequest, match="more than 5 merge policies"):
        schedules.update_schedule(FakeUnitOfWork(store), HERE, inactive.id,
                                  [{"op": "add", "path": "/state", "value": "active"}])
    assert store.schedules[inactive.id] == inactive


def test_get_and_list_see_only_their_sandbox(store: FakeStore, frozen_clock: list[int]) -> None:
    ids = []
    for kind in ("batch_segmentation", "export"):
        frozen_clock[0] += 1000
        ids.append(create(store, type=kind, properties={"segments": ["*"]}).id)
    assert schedules.get_schedule(FakeUnitOfWork(store), HERE, ids[0]).id == ids[0]
    for scope in (ELSEWHERE, Scope(org_id="OTHER@AdobeOrg")):
        with pytest.raises(NotFound):
            schedules.get_schedule(FakeUnitOfWork(store), scope, ids[0])
    page, total = schedules.list_schedules(FakeUnitOfWork(store), HERE, start=1, limit=10)
    assert ([s.id for s in page], total) == ([ids[1]], 2)
    assert schedules.list_schedules(FakeUnitOfWork(store), ELSEWHERE, start=0, limit=10) == ([], 0)


def test_a_new_time_or_an_activation_owes_no_past_fire(store: FakeStore, frozen_clock: list[int]) -> None:
    created = create(store)
    frozen_clock[0] += 3_600_000
    uow = FakeUnitOfWork(store)
    activated = schedules.update_schedule(uow, HERE, created.id, [{"op": "add", "path": "/state", "value": "active"}])
    assert uow.commits == 1 and store.schedules[created.id] == activated
    assert activated.effective_from == activated.updated == frozen_clock[0] > created.effective_from
    assert activated.next_run == to_ms(START + timedelta(days=1, hours=1))
    frozen_clock[0] += 1000
    renamed = schedules.update_schedule(FakeUnitOfWork(store), HERE, created.id,
                                        [{"op": "replace", "path": "/name", "value": "daily"}])
    assert (renamed.name, renamed.effective_from, renamed.updated) == ("daily", activated.effective_from, frozen_clock[0])
    frozen_clock[0] += 1000
    retimed = schedules.update_schedule(FakeUnitOfWork(store), HERE, created.id,
                                        [{"op": "replace", "path": "/schedule", "value": "0 15 10 * * ?"}])
    assert retimed.effective_from == frozen_clock[0]
    assert retimed.next_run == to_ms(START.replace(hour=10, minute=15))
    deactivated = schedules.update_schedule(FakeUnitOfWork(store), HERE, created.id,
                                            [{"op": "replace", "path": "/state", "value": "inactive"}])
    assert deactivated.next_run is None and deactivated.effective_from == retimed.effective_from


def test_a_refused_patch_changes_nothing(store: FakeStore) -> None:
    created = create(store)
    with pytest.raises(BadRequest, match="'/type' cannot be changed"):
        schedules.update_schedule(FakeUnitOfWork(store), HERE, created.id,
                                  [{"op": "replace", "path": "/type", "value": "export"}])
    with pytest.raises(NotFound):
        schedules.update_schedule(FakeUnitOfWork(store), ELSEWHERE, created.id, [])
    assert store.schedules == {created.id: created}


def test_delete(store: FakeStore) -> None:
    created = create(store)
    with pytest.raises(NotFound):
        schedules.delete_schedule(FakeUnitOfWork(store), ELSEWHERE, created.id)
    uow = FakeUnitOfWork(store)
    schedules.delete_schedule(uow, HERE, created.id)
    assert uow.commits == 1 and store.schedules == {}
    with pytest.raises(NotFound):
        schedules.delete_schedule(FakeUnitOfWork(store), HERE, created.id)


# -- the scheduler loop --------------------------------------------------------------------------------

def active(store: FakeStore, schedule_id: str = "s-1", *, type_: str = "batch_segmentation",
           properties: dict[str, Any] | None = None, cron: str = "0 0 1 * * ?") -> Schedule:
    """An active schedule in effect since START (as the API tests set ``effective_from``)."""
    schedule = Schedule(id=schedule_id, org_id=HERE.org_id, sandbox_id=HERE.sandbox_id, name=schedule_id,
                        type=type_, properties=properties or {"segments": ["seg-us"]}, schedule=cron,
                        state="active", effective_from=to_ms(START), created=to_ms(START), updated=to_ms(START))
    store.schedules[schedule.id] = schedule
    return schedule


def fire(store: FakeStore, now: datetime, *, refuse_jobs: BaseException | None = None) -> list[str]:
    return tick(FakeServices(FakeUnitOfWork(store, refuse_jobs=refuse_jobs)), now)


def test_a_due_schedule_starts_its_job_once(store: FakeStore) -> None:
    active(store)
    assert fire(store, START + timedelta(minutes=30)) == []
    schedule = store.schedules["s-1"]
    assert schedule.next_run == to_ms(START + timedelta(hours=1)) and schedule.last_fire is None
    now = START + timedelta(hours=1, seconds=5)
    assert fire(store, now) == ["job-1"]
    assert store.jobs == [StartedJob("segment", HERE.org_id, HERE.sandbox_id, ("seg-us",), origin="schedule:s-1")]
    schedule = store.schedules["s-1"]
    assert (schedule.last_fire, schedule.last_run, schedule.last_job_id) == (to_ms(START + timedelta(hours=1)),
                                                                             to_ms(now), "job-1")
    assert schedule.next_run == to_ms(START + timedelta(days=1, hours=1))
    assert fire(store, START + timedelta(hours=1, minutes=1)) == []  # the same fire is not repeated
    assert fire(store, START + timedelta(days=4, hours=5)) == ["job-2"]  # three missed days: owed once
    assert len(store.jobs) == 2


def test_inactive_schedules_do_not_fire(store: FakeStore) -> None:
    schedule = active(store)
    store.schedules[schedule.id] = replace(schedule, state="inactive")
    assert fire(store, START + timedelta(days=2)) == []
    assert store.jobs == [] and store.schedules[schedule.id].last_fire is None


def test_an_export_schedule_starts_an_export(store: FakeStore) -> None:
    request = {"destination": {"datasetId": "ds-1"}}
    active(store, type_="export", properties=request)
    assert fire(store, START + timedelta(hours=1)) == ["job-1"]
    assert store.jobs == [StartedJob("export", HERE.org_id, HERE.sandbox_id, request=request, origin="schedule")]


def test_a_job_that_cannot_start_spends_its_fire_and_says_why(store: FakeStore) -> None:
    active(store)
    now = START + timedelta(hours=1)
    assert fire(store, now, refuse_jobs=OpensegError("segment definitions not found in this sandbox: seg-us")) == []
    schedule = store.schedules["s-1"]
    assert schedule.last_job_id == "error: segment definitions not found in this sandbox: seg-us"
    assert schedule.last_fire == to_ms(now) and store.jobs == []
    assert fire(store, now + timedelta(minutes=1)) == []  # not retried in a loop


def test_the_guardrail_is_checked_again_when_a_schedule_fires(store: FakeStore) -> None:
    active(store, "s-1")
    active(store, "s-2", type_="export", properties={"destination": {"datasetId": "ds-1"}})
    store.merge_policies[HERE.sandbox_id] = 7
    assert fire(store, START + timedelta(hours=2)) == []
    assert {s.last_job_id for s in store.schedules.values()} == {
        "error: scheduled evaluation is not available in a sandbox with m"}
    assert store.jobs == []


def test_one_schedule_failing_does_not_stop_the_others(store: FakeStore) -> None:
    active(store, "s-1", properties={"segments": ["seg-us"]})
    active(store, "s-2", type_="export", properties={"destination": {"datasetId": "ds-1"}})
    store.merge_policies[HERE.sandbox_id] = 1
    assert fire(store, START + timedelta(hours=2)) == ["job-1", "job-2"]
    assert [store.schedules[s].last_job_id for s in ("s-1", "s-2")] == ["job-1", "job-2"]


def test_a_crash_mid_tick_leaves_neither_the_fire_nor_the_job(store: FakeStore) -> None:
    """Only domain errors are recorded on the schedule; anything else rolls the whole tick back."""
    before = active(store)
    with pytest.raises(RuntimeError):
        fire(store, START + timedelta(hours=1), refuse_jobs=RuntimeError("the database went away"))
    assert store.schedules == {"s-1": before} and store.jobs == []
    assert fire(store, START + timedelta(hours=1, minutes=1)) == ["job-1"]  # the next tick fires it
