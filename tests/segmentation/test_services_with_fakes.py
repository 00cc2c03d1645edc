"""The segment definition and segment job services on in-memory fakes of their ports: no database.

The same behaviour is pinned over HTTP and real stores by ``tests/api/test_definitions.py``,
``test_segment_jobs.py`` and ``test_eligibility_api.py``; these tests reach what is awkward there: the
transaction each error leaves behind (a default merge policy created, then the body refused), the
versions kept, the job and its queued work written together or not at all.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from openseg.errors import BadRequest, Conflict, NotFound
from openseg.profiles.model import MergePolicy
from openseg.segmentation import definitions, jobs
from openseg.segmentation.model import SegmentDefinition
from openseg.xdm.schema import Schema
from tests.segmentation.fakes import FakeStore, FakeUnitOfWork, Scope

HERE = Scope()
ELSEWHERE = Scope(sandbox_id="sandbox-dev")
SCHEMA = Schema.standard()
NOW = 1_760_000_000_000
US = 'homeAddress.country = "US"'


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The services' wall clock, moved by the test."""
    now = [NOW]
    monkeypatch.setattr(definitions, "now_ms", lambda: now[0])
    monkeypatch.setattr(jobs, "now_ms", lambda: now[0])
    return now


def body(name: str, pql: str = US, **extra: Any) -> dict[str, Any]:
    return {"name": name, "expression": {"type": "PQL", "format": "pql/text", "value": pql}, **extra}


def define(store: FakeStore, name: str, pql: str = US, *, scope: Scope = HERE, **extra: Any) -> SegmentDefinition:
    return definitions.create_definition(FakeUnitOfWork(store), scope, body(name, pql, **extra), lambda: SCHEMA)


def edge_policy(store: FakeStore, scope: Scope = HERE, *, version: int = 1) -> MergePolicy:
    policy = replace(MergePolicy.default_for(scope.org_id, scope.sandbox_id, policy_id=f"edge-{scope.sandbox_id}",
                                             now=NOW), name="edge", is_default=False, is_active_on_edge=True,
                     version=version)
    store.policies[policy.id] = policy
    return policy


# -- definitions ----------------------------------------------------------------------------------------

def test_create_stores_version_one_under_the_default_policy_made_on_first_need(store: FakeStore) -> None:
    uow = FakeUnitOfWork(store)
    created = definitions.create_definition(uow, HERE, body("  US  ", description="d"), lambda: SCHEMA)
    assert uow.commits == 1 and store.definitions == {created.id: created}
    (policy,) = store.policies.values()
    assert policy.is_default and policy.sandbox_id == HERE.sandbox_id and created.merge_policy_id == policy.id
    assert (created.name, created.description, created.pql, created.version) == ("US", "d", US, 1)
    assert created.created == created.updated == NOW
    assert store.versions == {(created.id, 1): created}
    assert created.evaluation_info["synchronous"]["enabled"] is False  # the default policy is not on the edge
    second = define(store, "again")
    assert second.merge_policy_id == policy.id and len(store.policies) == 1  # one default, made once


def test_a_refused_body_writes_nothing_not_even_the_default_policy(store: FakeStore) -> None:
    uow = FakeUnitOfWork(store)
    # The default policy is made before lifecycleState is read; the refusal takes it back with the rest.
    with pytest.raises(BadRequest) as refused:
        definitions.create_definition(uow, HERE, body("US", lifecycleState=""), lambda: SCHEMA)
    assert refused.value.field == "lifecycleState"
    assert uow.commits == 0 and store == FakeStore()


def test_a_taken_name_is_refused_before_the_schema_is_read(store: FakeStore) -> None:
    define(store, "US")

    def no_schema() -> Schema:
        raise AssertionError("the schema is not needed to refuse a taken name")

    with pytest.raises(Conflict):
        definitions.create_definition(FakeUnitOfWork(store), HERE, body("US"), no_schema)
    assert define(store, "US", scope=ELSEWHERE).name == "US"  # a name is unique per sandbox


def test_the_merge_policy_must_be_the_sandboxes_own(store: FakeStore) -> None:
    theirs = edge_policy(store, ELSEWHERE)
    with pytest.raises(BadRequest, match="does not exist in this sandbox") as refused:
        define(store, "US", mergePolicyId=theirs.id)
    assert refused.value.field == "mergePolicyId"
    ours = edge_policy(store)
    on_edge = define(store, "US", mergePolicyId=ours.id)
    assert on_edge.merge_policy_id == ours.id and on_edge.evaluation_info["synchronous"] == {"enabled": True}


def test_in_segment_names_existing_definitions_and_makes_no_cycle(store: FakeStore) -> None:
    with pytest.raises(BadRequest) as unknown:
        define(store, "nowhere", 'inSegment("missing")')
    assert unknown.value.report["unknownSegments"] == ["missing"]
    base = define(store, "base")
    user = define(store, "user", f'inSegment("{base.id}")')
    assert user.dependencies == [base.id]
    with pytest.raises(BadRequest) as cycle:
        definitions.update_definition(FakeUnitOfWork(store), HERE, base.id,
                                      {"expression": body("", f'inSegment("{user.id}")')["expression"]},
                                      lambda: SCHEMA)
    assert cycle.value.report["cycle"] == [base.id, user.id, base.id]
    assert store.definitions[base.id] == base and set(store.versions) == {(base.id, 1), (user.id, 1)}


def test_an_update_is_a_new_version_kept_beside_the_old(store: FakeStore, frozen_clock: list[int]) -> None:
    created = define(store, "US", labels=["a"])
    frozen_clock[0] += 5_000
    uow = FakeUnitOfWork(store)
    updated, dependents = definitions.update_definition(uow, HERE, created.id,
                                                        {"name": "US residents", "ttlInDays": 7}, lambda: SCHEMA)
    assert uow.commits == 1 and dependents == []
    assert updated == replace(created, name="US residents", ttl_in_days=7, version=2, updated=NOW + 5_000)
    assert store.definitions[created.id] == updated
    assert store.versions == {(created.id, 1): created, (created.id, 2): updated}


def test_eligibility_is_recomputed_only_when_the_expression_or_policy_changes(store: FakeStore) -> None:
    created = define(store, "US")
    stale = {"batch": {"enabled": True}}
    store.definitions[created.id] = replace(created, evaluation_info=stale)
    renamed, _ = definitions.update_definition(FakeUnitOfWork(store), HERE, created.id, {"name": "renamed"},
                                               lambda: SCHEMA)
    assert renamed.evaluation_info == stale
    moved, _ = definitions.update_definition(FakeUnitOfWork(store), HERE, created.id,
                                             {"mergePolicyId": edge_policy(store).id}, lambda: SCHEMA)
    assert moved.evaluation_info["synchronous"] == {"enabled": True}
    asked_off, _ = definitions.update_definition(FakeUnitOfWork(store), HERE, created.id,
                                                 {"evaluationInfo": {"continuous": {"enabled": False}}}, lambda: SCHEMA)
    assert asked_off.evaluation_info["continuous"] == {"enabled": False}


def test_an_update_refused_midway_changes_nothing(store: FakeStore) -> None:
    created = define(store, "US")
    taken = define(store, "taken")
    with pytest.raises(Conflict):
        definitions.update_definition(FakeUnitOfWork(store), HERE, created.id, {"name": taken.name}, lambda: SCHEMA)
    with pytest.raises(BadRequest) as refused:
        definitions.update_definition(FakeUnitOfWork(store), HERE, created.id,
                                      {"description": "new", "labels": "not a list"}, lambda: SCHEMA)
    assert refused.value.field == "labels"
    assert store.definitions[created.id] == created and (created.id, 2) not in store.versions
    same_name, _ = definitions.update_definition(FakeUnitOfWork(store), HERE, created.id, {"name": " US "},
                                                 lambda: SCHEMA)
    assert same_name.name == "US" and same_name.version == 2


def test_reads_see_only_the_scope_and_show_dependents(store: FakeStore, frozen_clock: list[int]) -> None:
    base = define(store, "base")
    frozen_clock[0] += 1
    user = define(store, "user", f'inSegment("{base.id}")')
    theirs = define(store, "theirs", scope=ELSEWHERE)
    assert definitions.read_definition(FakeUnitOfWork(store), HERE, base.id) == (base, [user.id])
    for elsewhere in (theirs.id, "missing"):
        with pytest.raises(NotFound):
            definitions.get_definition(FakeUnitOfWork(store), HERE, elsewhere)
    with pytest.raises(NotFound):
        definitions.get_definition(FakeUnitOfWork(store), Scope(org_id="OTHER@AdobeOrg"), base.id)
    found = definitions.read_definitions(FakeUnitOfWork(store), HERE, [user.id, theirs.id, base.id, "missing"])
    assert list(found.items()) == [(user.id, (user, [])), (base.id, (base, [user.id]))]
    assert definitions.list_definitions(FakeUnitOfWork(store), HERE, start=1, limit=5) == ([(user, [])], 2)


def test_a_definition_in_use_is_not_deleted(store: FakeStore) -> None:
    base = define(store, "base")
    user = define(store, "user", f'inSegment("{base.id}")')
    with pytest.raises(Conflict) as refused:
        definitions.delete_definition(FakeUnitOfWork(store), HERE, base.id)
    assert refused.value.report["dependents"] == [user.id]
    definitions.delete_definition(FakeUnitOfWork(store), HERE, user.id)
    definitions.delete_definition(FakeUnitOfWork(store), HERE, base.id)
    assert store.definitions == {} and set(store.versions) == {(base.id, 1), (user.id, 1)}  # versions stay


def test_a_proposed_expression_is_checked_as_a_patch_would_and_nothing_is_written(store: FakeStore) -> None:
    base = define(store, "base")
    user = define(store, "user", f'inSegment("{base.id}")')
    before = copy.deepcopy(store)
    uow = FakeUnitOfWork(store)
    analysis = definitions.check_expression(uow, HERE, base.id, body("", "person.birthYear > 1980")["expression"],
                                           lambda: SCHEMA)
    assert analysis.text == "person.birthYear > 1980" and uow.commits == 0
    with pytest.raises(BadRequest, match="cycle"):
        definitions.check_expression(uow, HERE, base.id, body("", f'inSegment("{user.id}")')["expression"],
                                     lambda: SCHEMA)
    with pytest.raises(NotFound):  # an unknown segment whatever the expression
        definitions.check_expression(uow, HERE, "missing", None, lambda: SCHEMA)
    assert store == before


# -- jobs -----------------------------------------------------------------------------------------------

def test_a_job_snapshots_its_definitions_and_is_queued_with_them(store: FakeStore) -> None:
    policy = edge_policy(store, version=4)
    us = define(store, "US", mergePolicyId=policy.id)
    uow = FakeUnitOfWork(store)
    job = jobs.create_job(uow, HERE, [{"segmentId": us.id}], origin="demo")
    assert uow.commits == 1 and store.jobs == {job.id: job} and store.queued == [(jobs.RUN_SEGMENT_JOB, job.id)]
    assert (job.status, job.origin, job.compute_job_id, job.created) == ("QUEUED", "demo", 1, NOW)
    assert job.segments == [{"segmentId": us.id, "segment": {
        "id": us.id, "version": 1, "expression": us.expression, "mergePolicy": {"id": policy.id, "version": 4}}}]
    later = jobs.create_job(FakeUnitOfWork(store), HERE, [{"segmentId": us.id}])
    theirs = jobs.create_job(FakeUnitOfWork(store), ELSEWHERE, [{"segmentId": define(store, "x", scope=ELSEWHERE).id}])
    assert (later.compute_job_id, theirs.compute_job_id) == (2, 3)  # counted over the org's sandboxes


def test_star_is_every_definition_not_inactive(store: FakeStore, frozen_clock: list[int]) -> None:
    with pytest.raises(BadRequest, match="has none"):
        jobs.create_job(FakeUnitOfWork(store), HERE, [{"segmentId": "*"}])
    first = define(store, "first")
    frozen_clock[0] += 1
    define(store, "off", lifecycleState="inactive")
    frozen_clock[0] += 1
    last = define(store, "last")
    job = jobs.create_job(FakeUnitOfWork(store), HERE, [{"segmentId": "*"}, {"segmentId": first.id}])
    assert [s["segmentId"] for s in job.segments] == [first.id, last.id]


@pytest.mark.parametrize("request_body", [[], {"segmentId": "x"}, [{"segmentId": ""}], [{"segmentId": "missing"}]])
def test_a_refused_job_writes_nothing(store: FakeStore, request_body: object) -> None:
    define(store, "US")
    before = copy.deepcopy(store)
    with pytest.raises(BadRequest):
        jobs.create_job(FakeUnitOfWork(store), HERE, request_body)
    assert store == before


def test_queue_job_leaves_the_commit_to_the_caller(store: FakeStore) -> None:
    """As a schedule's fire does: the job is written with the fire, or not at all."""
    us = define(store, "US")
    uow = FakeUnitOfWork(store)
    with uow:
        job = jobs.queue_job(uow, HERE, [{"segmentId": us.id}], origin="schedule")
    assert uow.commits == 0 and store.jobs == {} and store.queued == []
    with uow:
        job = jobs.queue_job(uow, HERE, [{"segmentId": us.id}], origin="schedule")
        uow.commit()
    assert store.jobs == {job.id: job} and store.queued == [(jobs.RUN_SEGMENT_JOB, job.id)]


def test_jobs_are_listed_by_status_and_creation(store: FakeStore, frozen_clock: list[int]) -> None:
    us = define(store, "US")
    made = []
    for _ in range(3):
        made.append(jobs.create_job(FakeUnitOfWork(store), HERE, [{"segmentId": us.id}]))
        frozen_clock[0] += 1
    store.jobs[made[0].id] = replace(made[0], status="SUCCEEDED")
    listed = jobs.list_jobs(FakeUnitOfWork(store), HERE, start=0, limit=2, status=None, descending=True)
    assert listed == ([made[2], made[1]], 3)
    queued = jobs.list_jobs(FakeUnitOfWork(store), HERE, start=0, limit=10, status=" queued,Cancelled",
                            descending=False)
    assert queued == ([made[1], made[2]], 2)
    with pytest.raises(BadRequest, match="unknown status DONE") as refused:
        jobs.list_jobs(FakeUnitOfWork(store), HERE, start=0, limit=10, status="done", descending=False)
    assert refused.value.field == "status"


def test_cancel_stops_a_queued_job_at_once_and_asks_a_running_one(store: FakeStore,
                                                                   frozen_clock: list[int]) -> None:
    us = define(store, "US")
    queued = jobs.create_job(FakeUnitOfWork(store), HERE, [{"segmentId": us.id}])
    running = jobs.create_job(FakeUnitOfWork(store), HERE, [{"segmentId": us.id}])
    store.jobs[running.id] = running = replace(running, status="PROCESSING", metrics={"totalProfiles": 5})
    frozen_clock[0] += 10
    assert jobs.cancel_job(FakeUnitOfWork(store), HERE, queued.id) == replace(queued, status="CANCELLED",
                                                                               updated=NOW + 10)
    asked = jobs.cancel_job(FakeUnitOfWork(store), HERE, running.id)
    assert asked == replace(running, status="CANCELLING", updated=NOW + 10) == store.jobs[running.id]
    with pytest.raises(BadRequest, match="is CANCELLED"):
        jobs.cancel_job(FakeUnitOfWork(store), HERE, queued.id)
    with pytest.raises(NotFound):
        jobs.cancel_job(FakeUnitOfWork(store), ELSEWHERE, running.id)
    with pytest.raises(NotFound):
        jobs.get_job(FakeUnitOfWork(store), ELSEWHERE, running.id)
    assert jobs.get_job(FakeUnitOfWork(store), HERE, running.id) == asked
