"""What the export services need from storage and the container: ports, as Protocols.

The metadata store implements them (``store/repositories.py``, ``store/unit_of_work.py``), tests fake
them in memory (``tests/exports/fakes.py``). Validating a request reads datasets, segment definitions and
merge policies (:class:`ExportLookups`); running a job also writes the job and its batches and reads the
profile store (:class:`ExportsUnitOfWork`, which is a profile unit of work too, as a job may build the store).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Protocol

from openseg.exports.model import ExportJob
from openseg.lake_files import Lake
from openseg.profiles.ports import MergePolicyRepository, ProfileServices, ProfileSettings, ProfilesUnitOfWork
from openseg.scope import Tenancy
from openseg.segmentation.model import SegmentDefinition

__all__ = [
    "DatasetRepository",
    "ExportBatchRepository",
    "ExportJobRepository",
    "ExportLookups",
    "ExportServices",
    "ExportSettings",
    "ExportsUnitOfWork",
    "SegmentDefinitionRepository",
]


class DatasetRepository(Protocol):
    """The catalog's datasets, as far as an export's destination goes."""

    def kind(self, scope: Tenancy, dataset_id: str) -> str | None:
        """The dataset's kind (``profile``, ``event`` or ``union``, as ``catalog.service.dataset_kind`` says)
        when it exists in the scope's org and sandbox; else None."""


class SegmentDefinitionRepository(Protocol):
    """The segment definitions an export filters by."""

    def get(self, definition_id: str) -> SegmentDefinition | None:
        """The definition with this id in any org or sandbox (the service checks the scope)."""


class ExportLookups(Protocol):
    """What validating an export request reads."""

    @property
    def datasets(self) -> DatasetRepository: ...

    @property
    def segment_definitions(self) -> SegmentDefinitionRepository: ...

    @property
    def merge_policies(self) -> MergePolicyRepository: ...


class ExportJobRepository(Protocol):
    """Export job records: created and listed by ``exports/jobs.py``, run by the worker."""

    def add(self, job: ExportJob) -> ExportJob:
        """Store ``job`` under a new id (the store numbers export jobs: ``job.id`` is ignored) and return it with
        that id."""

    def get(self, job_id: int) -> ExportJob | None: ...

    def page(self, sandbox_id: str, *, statuses: Collection[str], before: tuple[int, int] | None, skip: int,
             limit: int) -> list[ExportJob]:
        """The sandbox's jobs in one of ``statuses``, newest first (by creation time, then id, both descending):
        only those older than ``before`` (a creation time and id) when given, the first ``skip`` left out, at
        most ``limit``."""

    def update(self, job: ExportJob) -> None:
        """Write every field of ``job`` over the stored one with its id."""


class ExportBatchRepository(Protocol):
    """The destination dataset's batches an export reserved, publishes or gives up."""

    def reserve(self, scope: Tenancy, dataset_id: str, *, now: int) -> str:
        """A new ``loading`` batch of the dataset for an export (readers skip it until published); its id."""

    def abandon(self, batch_ids: list[str], status: str, *, now: int) -> None:
        """Set those of the batches still ``loading`` to ``status`` (``aborted``, ``failed``), ended at ``now``."""

    def replace_exported(self, dataset_id: str, *, now: int) -> None:
        """Mark the dataset's successful export batches ``replaced`` (readers stop reading them)."""

    def publish(self, batch_id: str, directory: str, parts: list[tuple[str, int]], *, started: int, now: int) -> None:
        """Record the batch successful with the Parquet ``parts`` (name, rows) published in ``directory``:
        a data file each, the batch's counts and times, and the dataset's last batch."""


class ExportsUnitOfWork(ProfilesUnitOfWork, Protocol):
    """One transaction over what running an export reads and writes (see ``ProfilesUnitOfWork``)."""

    @property
    def datasets(self) -> DatasetRepository: ...

    @property
    def segment_definitions(self) -> SegmentDefinitionRepository: ...

    @property
    def export_jobs(self) -> ExportJobRepository: ...

    @property
    def export_batches(self) -> ExportBatchRepository: ...


class ExportSettings(ProfileSettings, Protocol):
    """The settings exports read (``openseg.config.Settings`` has them)."""

    @property
    def data_lake(self) -> Lake: ...

    @property
    def staging(self) -> Path: ...


class ExportServices(ProfileServices, Protocol):
    """What running an export takes from the container (``openseg.container.Services`` is one)."""

    @property
    def settings(self) -> ExportSettings: ...

    def uow(self) -> ExportsUnitOfWork: ...
