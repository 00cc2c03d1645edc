"""The fake and the metadata store keep the same contract for the export services' ports.

The service tests (``test_services_with_fakes.py``) are only as good as the fake is faithful; these pin
what both units of work do with datasets, export jobs and an export's batches (SQLite always, PostgreSQL
when configured), as ``tests/segmentation/test_repository_contract.py`` does for segment jobs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from openseg.bootstrap import build_services
from openseg.config import Settings
from openseg.exports.model import ExportJob
from openseg.exports.ports import ExportsUnitOfWork
from openseg.store.models import Batch, DataFile, Dataset
from openseg.store.models import ExportJob as ExportJobRow
from openseg.store.tenancy import create_sandbox, find_sandbox
from tests.conftest import BACKENDS, make_org
from tests.exports.fakes import FakeUnitOfWork, Scope, StoredBatch, StoredDataset
from tests.profiles.test_repository_contract import SCHEMAS


@dataclass(frozen=True)
class World:
    """Fresh units of work on one store, two sandboxes of one org, and what the ports never create.

    ``dataset(scope, kind)`` stores a dataset and returns its id; ``job(scope)`` an export job (its id);
    ``batch(scope, dataset id, status, origin)`` a batch (its id). ``read(batch id)`` is what the store
    holds of a batch, as a :class:`StoredBatch`.
    """

    units: Callable[[], ExportsUnitOfWork]
    here: Scope
    elsewhere: Scope
    dataset: Callable[[Scope, str], str]
    job: Callable[[Scope], int]
    batch: Callable[[Scope, str, str, str], str]
    read: Callable[[str], StoredBatch]


def new_id() -> str:
    return uuid.uuid4().hex


def new_job(scope: Scope, job_id: int) -> ExportJob:
    return ExportJob(id=job_id, org_id=scope.org_id, sandbox_id=scope.sandbox_id,
                     request={"destination": {"datasetId": "d"}}, status="NEW", request_id="r", errors=[],
                     metrics={"totalTime": {"startTimeInMs": 1_000}}, destination={"datasetId": "d", "batchId": "b"},
                     origin="api", created=1_000, updated=1_000)


@pytest.fixture(params=["fake", *BACKENDS])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "fake":
        unit = FakeUnitOfWork()
        store = unit.store

        def fake_dataset(scope: Scope, kind: str) -> str:
            dataset_id = new_id()
            store.datasets[dataset_id] = StoredDataset(scope.org_id, scope.sandbox_id, kind)
            return dataset_id

        def fake_job(scope: Scope) -> int:
            job_id = len(store.jobs) + 1
            store.jobs[job_id] = new_job(scope, job_id)
            return job_id

        def fake_batch(scope: Scope, dataset_id: str, status: str, origin: str) -> str:
            batch_id = new_id()
            store.export_batches[batch_id] = StoredBatch(dataset_id, status, origin, updated=1_000)
            return batch_id

        yield World(lambda: unit, Scope(), Scope(sandbox_id="sandbox-dev"), fake_dataset, fake_job, fake_batch,
                    lambda batch_id: store.export_batches[batch_id])
        return
    url = f"sqlite:///{tmp_path / 'openseg.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    services = build_services(Settings(home=tmp_path / "home", database_url=url, lake=tmp_path / "home" / "lake"))
    try:
        org = make_org(services)
        with services.db.session() as session:
            prod = find_sandbox(session, org.org_id, "prod")
            assert prod is not None
            dev = create_sandbox(session, org.org_id, "dev")

        def dataset(scope: Scope, kind: str) -> str:
            dataset_id = new_id()
            with services.db.session() as session:
                session.add(Dataset(id=dataset_id, org_id=scope.org_id, sandbox_id=scope.sandbox_id, name=dataset_id,
                                    schema_ref={"id": SCHEMAS[kind]}, created=1_000, updated=1_000))
            return dataset_id

        def job(scope: Scope) -> int:
            with services.db.session() as session:
                row = ExportJobRow(**{k: v for k, v in new_job(scope, 0).__dict__.items() if k != "id"})
                session.add(row)
                session.flush()
                return row.id

        def batch(scope: Scope, dataset_id: str, status: str, origin: str) -> str:
            batch_id = new_id()
            with services.db.session() as session:
                session.add(Batch(id=batch_id, org_id=scope.org_id, sandbox_id=scope.sandbox_id, dataset_id=dataset_id,
                                  status=status, origin=origin, created=1_000, updated=1_000))
            return batch_id

        def read(batch_id: str) -> StoredBatch:
            with services.db.session() as session:
                found = session.get(Batch, batch_id)
                assert found is not None
                files = session.scalars(select(DataFile).where(DataFile.batch_id == batch_id).order_by(DataFile.id))
                return StoredBatch(found.dataset_id, found.status, found.origin, found.updated, found.started,
                                   found.completed, tuple((f.path, f.records) for f in files))

        yield World(services.uow, Scope(org.org_id, prod.id), Scope(org.org_id, dev.id), dataset, job, batch, read)
    finally:
        services.db.dispose()


def test_a_dataset_has_a_kind_in_its_own_sandbox_only(world: World) -> None:
    union, events = world.dataset(world.here, "union"), world.dataset(world.here, "event")
    profiles = world.dataset(world.here, "profile")
    with world.units() as uow:
        assert [uow.datasets.kind(world.here, d) for d in (union, events, profiles)] == ["union", "event", "profile"]
        assert uow.datasets.kind(world.elsewhere, union) is None
        assert uow.datasets.kind(Scope("OTHER@AdobeOrg", world.here.sandbox_id), union) is None
        assert uow.datasets.kind(world.here, new_id()) is None


def test_export_jobs_are_read_and_written_back(world: World) -> None:
    job_id = world.job(world.here)
    with world.units() as uow:
        job = uow.export_jobs.get(job_id)
        assert job == new_job(world.here, job_id)
        assert uow.export_jobs.get(job_id + 1_000_000) is None
        job.status, job.metrics, job.updated = "PROCESSING", {"totalTime": {"startTimeInMs": 1_000}, "x": 1}, 2_000
        job.errors = [{"code": "c", "msg": "m"}]
        uow.export_jobs.update(job)
        # not committed: the stored job stays as it was
    with world.units() as uow:
        assert uow.export_jobs.get(job_id) == new_job(world.here, job_id)
        changed = replace(new_job(world.here, job_id), status="SUCCEEDED", updated=3_000)
        uow.export_jobs.update(changed)
        uow.commit()
    with world.units() as uow:
        assert uow.export_jobs.get(job_id) == changed


def test_an_export_abandons_only_the_batches_still_loading(world: World) -> None:
    dataset_id = world.dataset(world.here, "union")
    loading, done = (world.batch(world.here, dataset_id, status, "export") for status in ("loading", "success"))
    with world.units() as uow:
        uow.export_batches.abandon([loading, done, new_id()], "aborted", now=5_000)
        uow.commit()
    assert world.read(loading) == StoredBatch(dataset_id, "aborted", "export", updated=5_000, completed=5_000)
    assert world.read(done) == StoredBatch(dataset_id, "success", "export", updated=1_000)


def test_publishing_an_export_replaces_the_last_one(world: World, tmp_path: Path) -> None:
    dataset_id, other = world.dataset(world.here, "union"), world.dataset(world.here, "union")
    earlier = world.batch(world.here, dataset_id, "success", "export")
    ingested = world.batch(world.here, dataset_id, "success", "ingestion")
    failed = world.batch(world.here, dataset_id, "failed", "export")
    elsewhere = world.batch(world.here, other, "success", "export")
    reserved = world.batch(world.here, dataset_id, "loading", "export")
    directory = tmp_path / "published"
    directory.mkdir()
    for name, rows in (("part-00000.parquet", 2), ("part-00001.parquet", 1)):
        pq.write_table(pa.table({"n": list(range(rows))}), directory / name)
    with world.units() as uow:
        uow.export_batches.replace_exported(dataset_id, now=7_000)
        uow.export_batches.publish(reserved, str(directory), [("part-00000.parquet", 2), ("part-00001.parquet", 1)],
                                   started=6_000, now=7_000)
        uow.commit()
    assert world.read(earlier) == StoredBatch(dataset_id, "replaced", "export", updated=7_000)
    for untouched, status, origin in ((ingested, "success", "ingestion"), (failed, "failed", "export")):
        assert world.read(untouched) == StoredBatch(dataset_id, status, origin, updated=1_000)
    assert world.read(elsewhere) == StoredBatch(other, "success", "export", updated=1_000)
    assert world.read(reserved) == StoredBatch(
        dataset_id, "success", "export", updated=7_000, started=6_000, completed=7_000,
        files=((str(directory / "part-00000.parquet"), 2), (str(directory / "part-00001.parquet"), 1)))


def test_export_jobs_are_numbered_by_the_store_and_paged_newest_first(world: World) -> None:
    here = world.here
    with world.units() as uow:
        uow.export_jobs.add(replace(new_job(here, 0), created=500))
        # not committed: never stored
    with world.units() as uow:
        assert uow.export_jobs.page(here.sandbox_id, statuses=("NEW",), before=None, skip=0, limit=10) == []
        made = [uow.export_jobs.add(replace(new_job(scope, 0), created=created, status=status))
                for scope, created, status in ((here, 1_000, "NEW"), (here, 3_000, "FAILED"), (here, 1_000, "NEW"),
                                               (here, 2_000, "DELETED"), (world.elsewhere, 9_000, "NEW"))]
        uow.commit()
    first, failed, second, deleted, other = made
    assert first.id < failed.id < second.id < deleted.id < other.id
    assert made[0] == replace(new_job(here, first.id), created=1_000)
    live = ("NEW", "FAILED")
    with world.units() as uow:
        assert uow.export_jobs.get(deleted.id) == deleted

        def page(statuses: tuple[str, ...] = live, before: tuple[int, int] | None = None, skip: int = 0,
                 limit: int = 10) -> list[int]:
            return [j.id for j in uow.export_jobs.page(here.sandbox_id, statuses=statuses, before=before, skip=skip,
                                                       limit=limit)]

        assert page() == [failed.id, second.id, first.id]  # by creation time, then id, both descending
        assert page(("NEW",)) == [second.id, first.id]
        assert page(limit=2) == [failed.id, second.id]
        assert page(skip=1, limit=1) == [second.id]
        assert page(before=(1_000, second.id)) == [first.id]
        assert page(before=(3_000, failed.id)) == [second.id, first.id]
        assert page(before=(3_000, failed.id + 1_000)) == [failed.id, second.id, first.id]


def test_a_reserved_batch_is_loading_until_its_export_publishes(world: World) -> None:
    dataset_id = world.dataset(world.here, "union")
    with world.units() as uow:
        first = uow.export_batches.reserve(world.here, dataset_id, now=4_000)
        second = uow.export_batches.reserve(world.here, dataset_id, now=4_000)
        uow.commit()
    assert first != second
    assert world.read(first) == world.read(second) == StoredBatch(dataset_id, "loading", "export", updated=4_000)
