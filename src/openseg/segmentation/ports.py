"""What the segmentation services need from storage and the work queue: ports, as Protocols.

The metadata store implements them (``store/repositories.py``, ``store/unit_of_work.py``), tests fake
them in memory (``tests/segmentation/fakes.py``). Each protocol names only the methods the definition
and job services call; the store's classes also serve other packages' narrower views of them.
"""

from __future__ import annotations

from collections.abc import Collection
from types import TracebackType
from typing import Protocol, Self

from openseg.lake_files import Lake
from openseg.profiles.model import MergePolicy
from openseg.profiles.ports import ProfileServices, ProfileSettings, ProfilesUnitOfWork
from openseg.segmentation.model import Preview, SegmentDefinition, SegmentJob

__all__ = [
    "JobExecutionUnitOfWork",
    "MergePolicyRepository",
    "PreviewRepository",
    "QueuedJob",
    "SandboxScope",
    "SegmentDefinitionRepository",
    "SegmentJobRepository",
    "SegmentJobServices",
    "SegmentJobSettings",
    "SegmentationUnitOfWork",
    "WorkQueue",
]


class SandboxScope(Protocol):
    """The org and sandbox an operation is confined to (``openseg.scope.Scope`` is one)."""

    @property
    def org_id(self) -> str: ...

    @property
    def sandbox_id(self) -> str: ...


class SegmentDefinitionRepository(Protocol):
    """Segment definitions, by id or by sandbox, and the versions each has had."""

    def add(self, definition: SegmentDefinition) -> None:
        """Store a new definition, and its version as the first one kept."""

    def get(self, definition_id: str) -> SegmentDefinition | None:
        """The definition with this id in any org or sandbox (the service checks the scope)."""

    def in_sandbox(self, sandbox_id: str) -> list[SegmentDefinition]:
        """Every definition of the sandbox, oldest first (by creation time, then id)."""

    def update(self, definition: SegmentDefinition) -> None:
        """Write every field of ``definition`` over the stored one with its id, and keep its version (name,
        expression, PQL, merge policy) beside the earlier ones. Each update carries a new version number."""

    def remove(self, definition_id: str) -> None:
        """Delete the definition; the versions kept stay."""


class MergePolicyRepository(Protocol):
    """The merge policies segment definitions name and segment jobs snapshot."""

    def add(self, policy: MergePolicy) -> None: ...

    def get(self, policy_id: str) -> MergePolicy | None:
        """The policy with this id in any org or sandbox (the service checks the scope)."""

    def in_sandbox(self, sandbox_id: str) -> list[MergePolicy]:
        """Every policy of the sandbox, oldest first (by creation time, then id)."""


class SegmentJobRepository(Protocol):
    """Segment job records (the worker's progress on them is written elsewhere, ``job_execution``)."""

    def add(self, job: SegmentJob) -> None: ...

    def get(self, job_id: str) -> SegmentJob | None:
        """The job with this id in any org or sandbox (the service checks the scope)."""

    def page(self, sandbox_id: str, *, start: int, limit: int, statuses: Collection[str] | None,
             newest_first: bool) -> tuple[list[SegmentJob], int]:
        """One page of the sandbox's jobs (those in ``statuses`` when given) by creation time, then id, and
        how many match in all."""

    def count_in_org(self, org_id: str) -> int:
        """How many jobs the org has had, in every sandbox."""

    def ids_in(self, sandbox_id: str, statuses: Collection[str]) -> set[str]:
        """The ids of the sandbox's jobs in one of ``statuses``."""

    def update_status(self, job_id: str, status: str, *, updated: int) -> None:
        """Set the job's status and update time, and nothing else of it (a worker may be writing the rest)."""

    def update(self, job: SegmentJob) -> None:
        """Write the fields of ``job`` that differ from the stored job with its id as it was read in this unit
        of work, and no other: a cancel asked meanwhile (``update_status`` in another unit of work) stays."""


class WorkQueue(Protocol):
    """The worker's queue, written in the unit of work, so an item exists exactly when its resource does."""

    def enqueue(self, kind: str, ref_id: str) -> None:
        """Queue work of ``kind`` on the resource ``ref_id`` (for example ``segment_job`` and a job id)."""


class PreviewRepository(Protocol):
    """Segment previews (their estimates are part of them)."""

    def add(self, preview: Preview) -> None: ...

    def get(self, preview_id: str) -> Preview | None:
        """The preview with this id in any org or sandbox (the service checks the scope)."""

    def remove(self, preview_id: str) -> None:
        """Delete the preview with this id (nothing when there is none)."""


class SegmentationUnitOfWork(Protocol):
    """One transaction over the repositories the definition and job services use.

    Use it as a context manager: ``commit()`` makes the work so far durable; leaving the block without
    committing (or by an exception) rolls back whatever was not committed. A unit of work may be entered
    again after it has been left, each time a new transaction.
    """

    # Read-only members, so an implementation may declare its own repository classes.
    @property
    def segment_definitions(self) -> SegmentDefinitionRepository: ...

    @property
    def merge_policies(self) -> MergePolicyRepository: ...

    @property
    def segment_jobs(self) -> SegmentJobRepository: ...

    @property
    def work_queue(self) -> WorkQueue: ...

    @property
    def previews(self) -> PreviewRepository: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class JobExecutionUnitOfWork(ProfilesUnitOfWork, Protocol):
    """One transaction over what running a segment job reads and writes: the job, the sandbox's segment
    definitions (which of them stream, for the drift metric), and the merge policies and profile stores of
    ``ProfilesUnitOfWork`` (a job may build a store, and records the membership it published on the policy's
    store record)."""

    @property
    def segment_jobs(self) -> SegmentJobRepository: ...

    @property
    def segment_definitions(self) -> SegmentDefinitionRepository: ...


class SegmentJobSettings(ProfileSettings, Protocol):
    """The settings running a segment job reads (``openseg.config.Settings`` has them)."""

    @property
    def data_lake(self) -> Lake: ...

    @property
    def membership_snapshots(self) -> int: ...


class SegmentJobServices(ProfileServices, Protocol):
    """What running a segment job takes from the container (``openseg.container.Services`` is one): settings,
    fresh units of work, and the engine the job runs on."""

    @property
    def settings(self) -> SegmentJobSettings: ...

    def uow(self) -> JobExecutionUnitOfWork: ...


class QueuedJob(Protocol):
    """A queue item as the segment job handler reads it (``store.models.WorkItem`` is one)."""

    @property
    def ref_id(self) -> str: ...

    @property
    def attempts(self) -> int: ...
