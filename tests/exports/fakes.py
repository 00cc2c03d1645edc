"""In-memory fakes of the export services' ports (``openseg.exports.ports``), on the profile fakes.

An export's unit of work is a profile unit of work too (a job may build the store), so ``FakeStore`` and
``FakeUnitOfWork`` extend ``tests/profiles/fakes.py``'s with datasets, segment definitions, export jobs and
the destination's batches.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace

from openseg.exports.model import ExportJob
from openseg.scope import Tenancy
from openseg.segmentation.model import SegmentDefinition
from tests.profiles import fakes as profile_fakes
from tests.profiles.fakes import FakeSettings, Scope

__all__ = ["FakeServices", "FakeSettings", "FakeStore", "FakeUnitOfWork", "Scope", "StoredBatch", "StoredDataset"]


@dataclass(frozen=True)
class StoredDataset:
    org_id: str
    sandbox_id: str
    kind: str  # profile, event or union


@dataclass(frozen=True)
class StoredBatch:
    """A batch of a destination dataset; ``files`` what its publication recorded: (path, rows)."""

    dataset_id: str
    status: str
    origin: str = "export"
    updated: int = 0
    started: int | None = None
    completed: int | None = None
    files: tuple[tuple[str, int], ...] = ()


@dataclass
class FakeStore(profile_fakes.FakeStore):
    datasets: dict[str, StoredDataset] = field(default_factory=dict)
    definitions: dict[str, SegmentDefinition] = field(default_factory=dict)
    jobs: dict[int, ExportJob] = field(default_factory=dict)
    export_batches: dict[str, StoredBatch] = field(default_factory=dict)


class FakeDatasetRepository:
    def __init__(self, rows: dict[str, StoredDataset]) -> None:
        self.rows = rows

    def kind(self, scope: Tenancy, dataset_id: str) -> str | None:
        found = self.rows.get(dataset_id)
        if found is None or (found.org_id, found.sandbox_id) != (scope.org_id, scope.sandbox_id):
            return None
        return found.kind


class FakeSegmentDefinitionRepository:
    def __init__(self, rows: dict[str, SegmentDefinition]) -> None:
        self.rows = rows

    def get(self, definition_id: str) -> SegmentDefinition | None:
        return self.rows.get(definition_id)


class FakeExportJobRepository:
    def __init__(self, rows: dict[int, ExportJob]) -> None:
        self.rows = rows

    def add(self, job: ExportJob) -> ExportJob:
        number = max(self.rows, default=0) + 1  # the store numbers export jobs
        self.rows[number] = replace(job, id=number)
        return replace(job, id=number)

    def page(self, sandbox_id: str, *, statuses: Collection[str], before: tuple[int, int] | None, skip: int,
             limit: int) -> list[ExportJob]:
        found = sorted((j for j in self.rows.values() if j.sandbox_id == sandbox_id and j.status in statuses
                        and (before is None or (j.created, j.id) < before)),
                       key=lambda j: (j.created, j.id), reverse=True)
        return [replace(j) for j in found[skip:skip + limit]]

    def get(self, job_id: int) -> ExportJob | None:
        found = self.rows.get(job_id)
        return None if found is None else replace(found)  # a copy, as a row read again would be

    def update(self, job: ExportJob) -> None:
        assert job.id in self.rows, "only a stored job is updated"
        self.rows[job.id] = replace(job)


class FakeExportBatchRepository:
    def __init__(self, rows: dict[str, StoredBatch]) -> None:
        self.rows = rows

    def reserve(self, scope: Tenancy, dataset_id: str, *, now: int) -> str:
        batch_id = f"batch-{len(self.rows) + 1}"
        self.rows[batch_id] = StoredBatch(dataset_id, "loading", updated=now)
        return batch_id

    def abandon(self, batch_ids: list[str], status: str, *, now: int) -> None:
        for batch_id in batch_ids:
            batch = self.rows.get(batch_id)
            if batch is not None and batch.status == "loading":
                self.rows[batch_id] = replace(batch, status=status, updated=now, completed=now)

    def replace_exported(self, dataset_id: str, *, now: int) -> None:
        for batch_id, batch in list(self.rows.items()):
            if (batch.dataset_id, batch.origin, batch.status) == (dataset_id, "export", "success"):
                self.rows[batch_id] = replace(batch, status="replaced", updated=now)

    def publish(self, batch_id: str, directory: str, parts: list[tuple[str, int]], *, started: int, now: int) -> None:
        batch = self.rows[batch_id]
        self.rows[batch_id] = replace(batch, status="success", started=started, updated=now, completed=now,
                                      files=tuple((f"{directory}/{name}", rows) for name, rows in parts))


class FakeUnitOfWork(profile_fakes.FakeUnitOfWork):
    """``ExportsUnitOfWork`` over a :class:`FakeStore`."""

    store: FakeStore
    datasets: FakeDatasetRepository
    segment_definitions: FakeSegmentDefinitionRepository
    export_jobs: FakeExportJobRepository
    export_batches: FakeExportBatchRepository

    def __init__(self, store: FakeStore | None = None) -> None:
        super().__init__(store if store is not None else FakeStore())

    def _begin(self) -> None:
        super()._begin()
        working = self._working
        assert isinstance(working, FakeStore)
        self.datasets = FakeDatasetRepository(working.datasets)
        self.segment_definitions = FakeSegmentDefinitionRepository(working.definitions)
        self.export_jobs = FakeExportJobRepository(working.jobs)
        self.export_batches = FakeExportBatchRepository(working.export_batches)


@dataclass
class FakeServices(profile_fakes.FakeServices):
    """``ExportServices`` on a :class:`FakeStore`."""

    store: FakeStore

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.store)
