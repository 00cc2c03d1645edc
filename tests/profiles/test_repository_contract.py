"""The fake and the metadata store keep the same contract for the profile services' ports.

The service tests (``test_services_with_fakes.py``) are only as good as the fake is faithful; these pin
what both units of work do with profile store records, the catalog's profile sources and the build queue
(SQLite always, PostgreSQL when configured), as ``tests/segmentation/test_repository_contract.py`` does
for segment definitions and jobs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sqlalchemy import select, update

from openseg.bootstrap import build_services
from openseg.clock import ms_to_datetime
from openseg.config import Settings
from openseg.profiles.model import MergePolicy, ProfileStoreRecord
from openseg.profiles.ports import ProfilesUnitOfWork
from openseg.profiles.sources import SourceFile
from openseg.segmentation.model import SegmentDefinition
from openseg.store.models import Batch, DataFile, Dataset, WorkItem
from openseg.store.tenancy import create_sandbox, find_sandbox
from openseg.streaming.model import STREAMED_ORIGIN
from tests.conftest import BACKENDS, make_org
from tests.profiles.fakes import FakeUnitOfWork, Scope, SourceBatch

SCHEMAS = {"profile": "https://ns.adobe.com/xdm/context/profile",
           "event": "https://ns.adobe.com/xdm/context/experienceevent",
           "union": "https://ns.adobe.com/xdm/context/profile__union"}


@dataclass(frozen=True)
class World:
    """Fresh units of work on one store, two sandboxes of one org, and what the ports read but never write.

    ``land(scope, batch id, dataset kind, profile-enabled, batch status, completed, file paths)`` stores a
    batch of a new dataset with one file per path, and returns the source files the ports should see of it.
    ``set_state(kind, ref id, state)`` moves the queue's items; ``file(path)`` is a file's (records, length);
    ``use(scope, segment id, policy id)`` stores a segment definition using that merge policy; ``stream(batch id)``
    marks a landed batch as one the streamer flushed from the stream log.
    """

    units: Callable[[], ProfilesUnitOfWork]
    here: Scope
    elsewhere: Scope
    land: Callable[[Scope, str, str, bool, str, int, list[str]], list[SourceFile]]
    set_state: Callable[[str, str, str], None]
    file: Callable[[str], tuple[int, int]]
    use: Callable[[Scope, str, str], None]
    stream: Callable[[str], None]


def _expected(batch_id: str, dataset_id: str, kind: str, completed: int, paths: list[str]) -> list[SourceFile]:
    return [SourceFile(path, dataset_id, batch_id, ms_to_datetime(completed), "event" if kind == "event" else "profile")
            for path in paths]


@pytest.fixture(params=["fake", *BACKENDS])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "fake":
        unit = FakeUnitOfWork()
        store = unit.store
        store.sandboxes["sandbox-dev"] = Scope().org_id

        def fake_land(scope: Scope, batch_id: str, kind: str, enabled: bool, status: str, completed: int,
                      paths: list[str]) -> list[SourceFile]:
            store.dataset_sandboxes[f"ds-{batch_id}"] = scope.sandbox_id
            if not enabled or kind == "union":  # not a profile source: the fake's catalog holds no more
                return []
            files = _expected(batch_id, f"ds-{batch_id}", kind, completed, paths)
            store.batches[batch_id] = SourceBatch(scope.sandbox_id, status, completed, files)
            for path in paths:
                store.file_sizes[path] = (10, 100)
            return files if status == "success" else []

        def fake_state(kind: str, ref_id: str, state: str) -> None:
            for item in store.queue:
                if item[:2] == [kind, ref_id]:
                    item[2] = state

        def fake_use(scope: Scope, segment_id: str, policy_id: str) -> None:
            store.policy_users[segment_id] = policy_id

        def fake_stream(batch_id: str) -> None:
            store.batches[batch_id].streamed = True

        yield World(lambda: unit, Scope(), Scope(sandbox_id="sandbox-dev"), fake_land, fake_state,
                    lambda path: store.file_sizes[path], fake_use, fake_stream)
        return
    url = f"sqlite:///{tmp_path / 'openseg.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    services = build_services(Settings(home=tmp_path / "home", database_url=url, lake=tmp_path / "home" / "lake"))
    try:
        org = make_org(services)
        with services.db.session() as session:
            prod = find_sandbox(session, org.org_id, "prod")
            assert prod is not None
            dev = create_sandbox(session, org.org_id, "dev")

        def land(scope: Scope, batch_id: str, kind: str, enabled: bool, status: str, completed: int,
                 paths: list[str]) -> list[SourceFile]:
            dataset_id = f"ds-{batch_id}"
            with services.db.session() as session:
                session.add(Dataset(id=dataset_id, org_id=scope.org_id, sandbox_id=scope.sandbox_id, name=dataset_id,
                                    schema_ref={"id": SCHEMAS[kind]},
                                    tags={"unifiedProfile": ["enabled:true" if enabled else "enabled:false"]},
                                    created=completed, updated=completed))
                session.flush()  # no ORM relationship orders the inserts: the dataset goes first
                session.add(Batch(id=batch_id, org_id=scope.org_id, sandbox_id=scope.sandbox_id, dataset_id=dataset_id,
                                  status=status, created=completed, updated=completed, completed=completed))
                session.flush()
                for index, path in enumerate(paths):
                    session.add(DataFile(id=f"{batch_id}-{index}", batch_id=batch_id, dataset_id=dataset_id,
                                         sandbox_id=scope.sandbox_id, org_id=scope.org_id, name=Path(path).name,
                                         path=path, length=100, records=10, created=completed))
            source = enabled and kind != "union" and status == "success"
            return _expected(batch_id, dataset_id, kind, completed, paths) if source else []

        def set_state(kind: str, ref_id: str, state: str) -> None:
            with services.db.session() as session:
                session.execute(update(WorkItem).where(WorkItem.kind == kind, WorkItem.ref_id == ref_id)
                                .values(status=state))

        def file(path: str) -> tuple[int, int]:
            with services.db.session() as session:
                found = session.scalars(select(DataFile).where(DataFile.path == path)).one()
                return found.records, found.length

        def use(scope: Scope, segment_id: str, policy_id: str) -> None:
            with services.uow() as uow:
                uow.segment_definitions.add(SegmentDefinition(
                    id=segment_id, org_id=scope.org_id, sandbox_id=scope.sandbox_id, name=segment_id, description=None,
                    expression={"type": "PQL", "format": "pql/text", "value": "age > 30"}, pql="age > 30",
                    schema_name="_xdm.context.profile", merge_policy_id=policy_id, ttl_in_days=30,
                    evaluation_info={"batch": {"enabled": True}}, labels=[], dependencies=[],
                    lifecycle_state="published", version=1, created=1_000, updated=1_000))
                uow.commit()

        def stream(batch_id: str) -> None:
            with services.db.session() as session:
                session.execute(update(Batch).where(Batch.id == batch_id).values(origin=STREAMED_ORIGIN))

        yield World(services.uow, Scope(org.org_id, prod.id), Scope(org.org_id, dev.id), land, set_state, file, use,
                    stream)
    finally:
        services.db.dispose()


def tag() -> str:
    """Ids unique to the test (the PostgreSQL schema outlives it): 12 hex digits."""
    return uuid.uuid4().hex[:12]


def test_profile_store_records_are_put_and_read_back(world: World) -> None:
    policy_id = f"mp-{tag()}"
    record = ProfileStoreRecord(merge_policy_id=policy_id, sandbox_id=world.here.sandbox_id)
    with world.units() as uow:
        assert uow.profile_stores.get(policy_id) is None
        uow.profile_stores.put(record)
        # not committed: gone when the unit of work ends
    with world.units() as uow:
        assert uow.profile_stores.get(policy_id) is None
        uow.profile_stores.put(record)
        uow.commit()
    built = replace(record, path="/lake/profiles/x", policy_version=2, built_at=5_000,
                    stats={"profiles": 3, "refresh": "full"}, membership_path="m/1", membership_job_id="job-1")
    with world.units() as uow:
        assert uow.profile_stores.get(policy_id) == record
        uow.profile_stores.put(built)
        uow.commit()
    with world.units() as uow:
        assert uow.profile_stores.get(policy_id) == built


def test_profile_sources_are_the_successful_files_of_profile_enabled_datasets(world: World) -> None:
    here, elsewhere, t = world.here, world.elsewhere, tag()
    late = world.land(here, f"b3{t}", "event", True, "success", 9_000, [f"/lake/{t}/e0", f"/lake/{t}/e1"])
    early = world.land(here, f"b1{t}", "profile", True, "success", 2_000, [f"/lake/{t}/p0"])
    assert world.land(here, f"b2{t}", "profile", True, "loading", 5_000, [f"/lake/{t}/loading"]) == []
    assert world.land(here, f"b4{t}", "profile", False, "success", 6_000, [f"/lake/{t}/disabled"]) == []
    assert world.land(here, f"b5{t}", "union", True, "success", 12_000, [f"/lake/{t}/export"]) == []
    other = world.land(elsewhere, f"b6{t}", "profile", True, "success", 20_000, [f"/lake/{t}/dev"])
    with world.units() as uow:
        assert uow.profile_sources.files(here.sandbox_id) == early + late  # by completion, then file id
        assert uow.profile_sources.files(elsewhere.sandbox_id) == other
        assert uow.profile_sources.newest_batch(here.sandbox_id) == 9_000  # the union export's batch is no source
        assert uow.profile_sources.newest_batch(here.sandbox_id, streamed=False) == 9_000
        assert uow.profile_sources.newest_batch(f"sandbox-{t}") == 0
    world.stream(f"b3{t}")  # the newest batch was flushed from the stream log
    with world.units() as uow:
        assert uow.profile_sources.newest_batch(here.sandbox_id) == 9_000
        assert uow.profile_sources.newest_batch(here.sandbox_id, streamed=False) == 2_000
    with world.units() as uow:
        assert uow.profile_sources.source_batch_sandbox(f"b2{t}") == here.sandbox_id  # whatever its status
        assert uow.profile_sources.source_batch_sandbox(f"b6{t}") == elsewhere.sandbox_id
        for not_a_source in (f"b4{t}", f"b5{t}", f"nope{t}"):
            assert uow.profile_sources.source_batch_sandbox(not_a_source) is None
        assert uow.profile_sources.org_of(elsewhere.sandbox_id) == elsewhere.org_id
        assert uow.profile_sources.org_of(f"sandbox-{t}") is None


def test_a_rewritten_file_records_its_new_size(world: World) -> None:
    t = tag()
    world.land(world.here, f"b1{t}", "profile", True, "success", 2_000, [f"/lake/{t}/a", f"/lake/{t}/b"])
    with world.units() as uow:
        uow.profile_sources.update_file(f"/lake/{t}/a", records=4, length=42)
        uow.commit()
    assert (world.file(f"/lake/{t}/a"), world.file(f"/lake/{t}/b")) == ((4, 42), (10, 100))


def test_the_queue_says_which_work_is_pending(world: World) -> None:
    sandbox, kind = f"sandbox-{tag()}", "build_profiles"
    with world.units() as uow:
        assert uow.work_queue.pending(kind, sandbox) == set()
        uow.work_queue.enqueue(kind, sandbox)
        assert uow.work_queue.pending(kind, sandbox) == {"queued"}  # seen in its own unit of work
        uow.commit()
    world.set_state(kind, sandbox, "running")
    with world.units() as uow:
        assert uow.work_queue.pending(kind, sandbox) == {"running"}
        uow.work_queue.enqueue(kind, sandbox)
        assert uow.work_queue.pending(kind, sandbox) == {"queued", "running"}
        assert uow.work_queue.pending("export_job", sandbox) == set()
        uow.commit()
    world.set_state(kind, sandbox, "done")
    with world.units() as uow:
        assert uow.work_queue.pending(kind, sandbox) == set()


def test_merge_policies_are_updated_and_removed_and_know_the_segments_using_them(world: World) -> None:
    here, t = world.here, tag()
    kept = MergePolicy.default_for(here.org_id, here.sandbox_id, policy_id=f"mp-a{t}", now=1_000)
    gone = replace(kept, id=f"mp-b{t}", name="second", is_default=False, created=2_000, updated=2_000)
    with world.units() as uow:  # what the sandbox was created with (the metadata store: its default policy)
        born = uow.merge_policies.in_sandbox(here.sandbox_id)
    with world.units() as uow:
        uow.merge_policies.add(kept)
        uow.merge_policies.add(gone)
        uow.commit()
    world.use(here, f"seg-{t}", kept.id)
    renamed = replace(kept, name="renamed", attribute_merge={"type": "dataSetPrecedence", "data": {"order": ["d"]}},
                      version=2, updated=3_000)
    with world.units() as uow:
        assert uow.merge_policies.users(kept.id) == {f"seg-{t}"}
        assert uow.merge_policies.users(gone.id) == set()
        uow.merge_policies.update(renamed)
        uow.merge_policies.remove(gone.id)
        uow.merge_policies.remove(f"mp-nope{t}")  # nothing to remove: nothing happens
        # not committed: both as they were when the unit of work ends
    with world.units() as uow:
        assert uow.merge_policies.in_sandbox(here.sandbox_id) == [kept, gone, *born]  # by creation
        uow.merge_policies.update(renamed)
        uow.merge_policies.remove(gone.id)
        uow.commit()
    with world.units() as uow:
        assert uow.merge_policies.get(kept.id) == renamed
        assert uow.merge_policies.get(gone.id) is None
        assert uow.merge_policies.in_sandbox(here.sandbox_id) == [renamed, *born]


def test_known_datasets_are_those_of_the_sandbox_of_any_kind(world: World) -> None:
    here, elsewhere, t = world.here, world.elsewhere, tag()
    world.land(here, f"b1{t}", "profile", True, "success", 2_000, [])
    world.land(here, f"b2{t}", "union", False, "loading", 3_000, [])
    world.land(elsewhere, f"b3{t}", "profile", True, "success", 4_000, [])
    asked = [f"ds-b1{t}", f"ds-b2{t}", f"ds-b3{t}", f"ds-nope{t}"]
    with world.units() as uow:
        assert uow.profile_sources.known_datasets(here.sandbox_id, asked) == {f"ds-b1{t}", f"ds-b2{t}"}
        assert uow.profile_sources.known_datasets(elsewhere.sandbox_id, asked) == {f"ds-b3{t}"}
        assert uow.profile_sources.known_datasets(here.sandbox_id, []) == set()
