"""The fake and the metadata store keep the same contract: one set of tests runs on both.

The service tests (``test_services_with_fakes.py``) are only as good as the fake is faithful; these pin
what both units of work do with segment definitions, merge policies, segment jobs and queued work (SQLite
always, PostgreSQL when configured), as ``tests/scheduling/test_repository_contract.py`` does for schedules.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sqlalchemy import select

from openseg.bootstrap import build_services
from openseg.config import Settings
from openseg.profiles.model import MergePolicy
from openseg.segmentation.model import Preview, SegmentDefinition, SegmentJob
from openseg.segmentation.ports import SegmentationUnitOfWork
from openseg.store.models import SegmentDefinitionVersion, WorkItem
from openseg.store.tenancy import create_sandbox, find_sandbox
from tests.conftest import BACKENDS, make_org
from tests.segmentation.fakes import FakeUnitOfWork, Scope


@dataclass(frozen=True)
class World:
    """Fresh units of work on one store, two sandboxes of one org, and what the ports write but never read."""

    units: Callable[[], SegmentationUnitOfWork]
    here: Scope
    elsewhere: Scope
    versions: Callable[[str], list[tuple[int, str]]]  # (version, name) kept of a definition, oldest first
    queued: Callable[[set[str]], list[tuple[str, str]]]  # (kind, ref id) of the queued work on these ids


@pytest.fixture(params=["fake", *BACKENDS])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "fake":
        unit = FakeUnitOfWork()
        store = unit.store
        yield World(lambda: unit, Scope(), Scope(sandbox_id="sandbox-dev"),
                    lambda definition_id: sorted((v, d.name) for (i, v), d in store.versions.items() if i == definition_id),
                    lambda ids: [item for item in store.queued if item[1] in ids])
        return
    url = f"sqlite:///{tmp_path / 'openseg.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    services = build_services(Settings(home=tmp_path / "home", database_url=url, lake=tmp_path / "home" / "lake"))
    try:
        org = make_org(services)
        with services.db.session() as session:
            prod = find_sandbox(session, org.org_id, "prod")
            assert prod is not None
            dev = create_sandbox(session, org.org_id, "dev")

        def versions(definition_id: str) -> list[tuple[int, str]]:
            with services.db.session() as session:
                return [(v.version, v.name) for v in session.scalars(
                    select(SegmentDefinitionVersion).where(SegmentDefinitionVersion.definition_id == definition_id)
                    .order_by(SegmentDefinitionVersion.version))]

        def queued(ids: set[str]) -> list[tuple[str, str]]:
            with services.db.session() as session:
                return [(i.kind, i.ref_id) for i in session.scalars(
                    select(WorkItem).where(WorkItem.ref_id.in_(ids)).order_by(WorkItem.id))]

        yield World(services.uow, Scope(org.org_id, prod.id), Scope(org.org_id, dev.id), versions, queued)
    finally:
        services.db.dispose()


def ids(*names: str) -> dict[str, str]:
    """Ids unique to the test (the PostgreSQL schema outlives it) that still sort by ``names``; at most 36
    characters, as the store's id columns."""
    tag = uuid.uuid4().hex[:16]
    return {name: f"{name}-{tag}" for name in names}


def definition(scope: Scope, definition_id: str, *, created: int = 1_000, name: str | None = None,
               dependencies: tuple[str, ...] = ()) -> SegmentDefinition:
    return SegmentDefinition(
        id=definition_id, org_id=scope.org_id, sandbox_id=scope.sandbox_id, name=name or definition_id,
        description=None, expression={"type": "PQL", "format": "pql/text", "value": "age > 30"}, pql="age > 30",
        schema_name="_xdm.context.profile", merge_policy_id="policy-1", ttl_in_days=30,
        evaluation_info={"batch": {"enabled": True}}, labels=[], dependencies=list(dependencies),
        lifecycle_state="published", version=1, created=created, updated=created)


def job(scope: Scope, job_id: str, *, created: int, status: str = "QUEUED") -> SegmentJob:
    return SegmentJob(id=job_id, org_id=scope.org_id, sandbox_id=scope.sandbox_id, compute_job_id=1, request_id="r",
                      status=status, segments=[{"segmentId": "a"}], errors=[], metrics={}, origin="api",
                      created=created, updated=created)


def test_definitions_committed_are_read_back(world: World) -> None:
    here, elsewhere, named = world.here, world.elsewhere, ids("0", "a", "b", "x")
    first = definition(here, named["b"], created=2_000)
    second = definition(here, named["a"], created=3_000, dependencies=(first.id,))
    tie = definition(here, named["0"], created=2_000)
    other = definition(elsewhere, named["x"], name=first.name)  # a name is unique per sandbox only
    with world.units() as uow:
        for each in (first, second, tie, other):
            uow.segment_definitions.add(each)
        uow.commit()
    with world.units() as uow:
        assert uow.segment_definitions.get(first.id) == first and uow.segment_definitions.get("nope") is None
        assert uow.segment_definitions.in_sandbox(here.sandbox_id) == [tie, first, second]  # by creation, then id
        assert uow.segment_definitions.in_sandbox(elsewhere.sandbox_id) == [other]
        changed = replace(first, name="renamed", description="d", labels=["x"], dependencies=["y"],
                          evaluation_info={"batch": {"enabled": False}}, version=2, updated=9_000)
        uow.segment_definitions.update(changed)
        uow.segment_definitions.remove(second.id)
        uow.commit()
    with world.units() as uow:
        assert uow.segment_definitions.get(first.id) == changed and uow.segment_definitions.get(second.id) is None
        assert uow.segment_definitions.in_sandbox(here.sandbox_id) == [tie, changed]
    assert world.versions(first.id) == [(1, first.name), (2, "renamed")]  # every version is kept
    assert world.versions(second.id) == [(1, second.name)]  # and stays when its definition goes


def test_leaving_without_commit_writes_nothing(world: World) -> None:
    here, named = world.here, ids("kept", "lost", "job")
    kept = definition(here, named["kept"])
    with world.units() as uow:
        uow.segment_definitions.add(kept)
        uow.commit()
    with pytest.raises(RuntimeError), world.units() as uow:
        uow.segment_definitions.update(replace(kept, name="lost", version=2))
        uow.segment_definitions.add(definition(here, named["lost"]))
        uow.segment_jobs.add(job(here, named["job"], created=1))
        uow.work_queue.enqueue("segment_job", named["job"])
        raise RuntimeError("boom")
    with world.units() as uow:
        uow.segment_definitions.remove(kept.id)
    with world.units() as uow:
        assert uow.segment_definitions.in_sandbox(here.sandbox_id) == [kept]
        assert uow.segment_jobs.get(named["job"]) is None
    assert world.versions(kept.id) == [(1, kept.name)]
    assert world.queued({named["job"]}) == []


def test_merge_policies(world: World) -> None:
    here, elsewhere, named = world.here, world.elsewhere, ids("p1", "p2", "p3")
    default = MergePolicy.default_for(here.org_id, here.sandbox_id, policy_id=named["p2"], now=2_000)
    older = replace(default, id=named["p1"], name="by dataset", is_default=False, is_active_on_edge=True,
                    attribute_merge={"type": "dataSetPrecedence", "data": {"order": ["d1"]}}, version=3, created=1_000)
    other = replace(default, id=named["p3"], sandbox_id=elsewhere.sandbox_id)
    with world.units() as uow:
        # What each sandbox was created with (the metadata store creates a sandbox with its default policy).
        born_here, born_elsewhere = uow.merge_policies.in_sandbox(here.sandbox_id), uow.merge_policies.in_sandbox(elsewhere.sandbox_id)
    with world.units() as uow:
        for policy in (default, older, other):
            uow.merge_policies.add(policy)
        uow.commit()
    with world.units() as uow:
        assert uow.merge_policies.get(older.id) == older and uow.merge_policies.get("nope") is None
        assert uow.merge_policies.in_sandbox(here.sandbox_id) == [older, default, *born_here]  # by creation
        assert uow.merge_policies.in_sandbox(elsewhere.sandbox_id) == [other, *born_elsewhere]


def test_segment_jobs_and_their_queued_work(world: World) -> None:
    here, elsewhere = world.here, world.elsewhere
    named = ids("a", "b", "c", "d")
    jobs = [job(here, named["a"], created=1_000, status="SUCCEEDED"), job(here, named["b"], created=2_000),
            job(here, named["c"], created=2_000, status="PROCESSING"), job(elsewhere, named["d"], created=500)]
    with world.units() as uow:
        for each in jobs:
            uow.segment_jobs.add(each)
            uow.work_queue.enqueue("segment_job", each.id)
        uow.commit()
    a, b, c, _ = jobs
    with world.units() as uow:
        assert uow.segment_jobs.get(b.id) == b and uow.segment_jobs.get("nope") is None
        assert uow.segment_jobs.count_in_org(here.org_id) == 4  # every sandbox of the org
        page = uow.segment_jobs.page
        assert page(here.sandbox_id, start=0, limit=10, statuses=None, newest_first=False) == ([a, b, c], 3)
        assert page(here.sandbox_id, start=0, limit=2, statuses=None, newest_first=True) == ([c, b], 3)
        assert page(here.sandbox_id, start=1, limit=10, statuses=["QUEUED", "PROCESSING"],
                    newest_first=False) == ([c], 2)
        assert page(elsewhere.sandbox_id, start=0, limit=10, statuses=[], newest_first=False) == ([], 0)
        assert uow.segment_jobs.ids_in(here.sandbox_id, ("SUCCEEDED", "PROCESSING")) == {a.id, c.id}
        assert uow.segment_jobs.ids_in(here.sandbox_id, ("DELETED",)) == set()
        assert uow.segment_jobs.ids_in(elsewhere.sandbox_id, ("QUEUED",)) == {named["d"]}
        uow.segment_jobs.update_status(c.id, "CANCELLING", updated=7_000)
        uow.commit()
    with world.units() as uow:
        assert uow.segment_jobs.get(c.id) == replace(c, status="CANCELLING", updated=7_000)
    assert world.queued(set(named.values())) == [("segment_job", each.id) for each in jobs]


def test_a_job_the_worker_runs_is_written_back(world: World) -> None:
    here, named = world.here, ids("a")
    queued = job(here, named["a"], created=1_000)
    with world.units() as uow:
        uow.segment_jobs.add(queued)
        uow.commit()
    finished = replace(queued, status="SUCCEEDED", updated=9_000, metrics={"totalProfiles": 3},
                       errors=[{"code": "0090000012", "msg": "s2 failed", "segmentId": "s2"}])
    with world.units() as uow:
        assert uow.segment_jobs.get(queued.id) == queued
        uow.segment_jobs.update(finished)
        uow.commit()
    with world.units() as uow:
        assert uow.segment_jobs.get(queued.id) == finished
        uow.segment_jobs.update(replace(finished, metrics={"totalProfiles": 4}))
    with world.units() as uow:  # left without a commit: nothing written
        assert uow.segment_jobs.get(queued.id) == finished


def test_previews_are_added_read_and_removed(world: World) -> None:
    here, named = world.here, ids("a", "b")
    made = [Preview(id=named[key], org_id=here.org_id, sandbox_id=here.sandbox_id,
                    request={"predicateExpression": "age > 30"}, state="RESULT_READY",
                    result={"exact": True, "estimatedSize": n, "profiles": [{"entityId": "p1"}]},
                    created=1_000 + n, updated=1_000 + n) for n, key in enumerate("ab")]
    with world.units() as uow:
        for preview in made:
            uow.previews.add(preview)
        # not committed: never stored
    with world.units() as uow:
        assert uow.previews.get(made[0].id) is None
        for preview in made:
            uow.previews.add(preview)
        uow.commit()
    with world.units() as uow:
        assert [uow.previews.get(p.id) for p in made] == made
        uow.previews.remove(made[0].id)
        uow.previews.remove("nope")  # nothing to remove: nothing happens
        uow.commit()
    with world.units() as uow:
        assert uow.previews.get(made[0].id) is None and uow.previews.get(made[1].id) == made[1]
