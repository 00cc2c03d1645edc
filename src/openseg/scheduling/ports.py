"""What the scheduling services need from storage and from the other services: ports, as Protocols.

The metadata store implements them (``store/repositories.py``, ``store/unit_of_work.py``), tests fake
them in memory (``tests/scheduling/fakes.py``). Each protocol names only the methods scheduling calls,
so one store class may serve several packages, each seeing its own narrow view of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Protocol, Self

from openseg.scheduling.model import Schedule

__all__ = [
    "JobStarter",
    "MergePolicyRepository",
    "SandboxScope",
    "ScheduleRepository",
    "SchedulingUnitOfWork",
    "SegmentDefinitionRepository",
    "UnitOfWorkSource",
]


class SandboxScope(Protocol):
    """The org and sandbox an operation is confined to (``catalog.service.Scope`` and a
    :class:`~openseg.scheduling.model.Schedule` are ones)."""

    @property
    def org_id(self) -> str: ...

    @property
    def sandbox_id(self) -> str: ...


class ScheduleRepository(Protocol):
    """Schedules, by id or by sandbox."""

    def add(self, schedule: Schedule) -> None: ...

    def get(self, schedule_id: str) -> Schedule | None:
        """The schedule with this id in any org or sandbox (the service checks the scope)."""

    def of_type(self, sandbox_id: str, type_: str) -> Schedule | None:
        """The sandbox's schedule of this type, if it has one (AEP allows one per type)."""

    def page(self, sandbox_id: str, *, start: int, limit: int) -> tuple[list[Schedule], int]:
        """One page of the sandbox's schedules, oldest first, and how many it has in all."""

    def update(self, schedule: Schedule) -> None:
        """Write every field of ``schedule`` over the stored one with its id."""

    def remove(self, schedule_id: str) -> None: ...

    def active(self) -> list[Schedule]:
        """Every active schedule, by id. Where the store has row locks they are held until the unit of
        work ends, and other units of work skip those rows rather than wait."""

    def claim_fire(self, schedule_id: str, *, fire: int, ran_at: int) -> bool:
        """Record ``fire`` as the schedule's last fire (claimed at ``ran_at``) unless a fire at or after
        it is recorded already. Returns whether this call recorded it: of several units of work claiming
        one fire, exactly one wins."""


class SegmentDefinitionRepository(Protocol):
    """The little scheduling reads of segment definitions."""

    def existing_ids(self, sandbox_id: str, segment_ids: Iterable[str]) -> set[str]:
        """Those of ``segment_ids`` that name a definition in the sandbox."""


class MergePolicyRepository(Protocol):
    """The little scheduling reads of merge policies."""

    def count(self, sandbox_id: str) -> int: ...


class JobStarter(Protocol):
    """The jobs a schedule starts, created in the unit of work that records the fire."""

    def start_segment_job(self, scope: SandboxScope, segment_ids: list[str], *, origin: str) -> str:
        """Queue a segment job for ``segment_ids`` (``["*"]``: every active definition); returns its id.

        Raises:
            OpensegError: When the job cannot be created; then nothing of it was written.
        """

    def start_export(self, scope: SandboxScope, request: Mapping[str, Any]) -> str:
        """Queue an export job for a stored export request; returns its id.

        Raises:
            OpensegError: When the job cannot be created; then nothing of it was written.
        """

    def check_export(self, scope: SandboxScope, request: Mapping[str, Any]) -> None:
        """Validate an export request before a schedule stores it.

        Raises:
            BadRequest: Naming the field of ``properties`` at fault.
        """


class SchedulingUnitOfWork(Protocol):
    """One transaction over the repositories scheduling uses.

    Use it as a context manager: ``commit()`` makes the work so far durable; leaving the block without
    committing (or by an exception) rolls back whatever was not committed. A unit of work may be entered
    again after it has been left, each time a new transaction.
    """

    # Read-only members, so an implementation may declare its own repository classes.
    @property
    def schedules(self) -> ScheduleRepository: ...

    @property
    def segment_definitions(self) -> SegmentDefinitionRepository: ...

    @property
    def merge_policies(self) -> MergePolicyRepository: ...

    @property
    def jobs(self) -> JobStarter: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class UnitOfWorkSource(Protocol):
    """Whatever opens a fresh unit of work per call: the Services container (``Services.uow``, wired by
    ``bootstrap``), which the worker hands its periodic work, or a test's fake."""

    def uow(self) -> SchedulingUnitOfWork: ...
