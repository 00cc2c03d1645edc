"""The unit of work over the metadata store: one session, one transaction, the repositories on it.

``SqlAlchemyUnitOfWork`` implements ``scheduling.ports.SchedulingUnitOfWork``,
``segmentation.ports.SegmentationUnitOfWork``, ``profiles.ports.ProfilesUnitOfWork`` and
``exports.ports.ExportsUnitOfWork``; as more domain packages declare their ports it grows their
repositories, each package seeing only the attributes its own protocol names. ``bootstrap`` wires a factory of it into ``Services.uow``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from sqlalchemy.orm import Session

from openseg.errors import OpensegError
from openseg.scheduling.ports import SandboxScope
from openseg.store.db import Database
from openseg.store.repositories import (
    SqlAlchemyDatasetRepository,
    SqlAlchemyExportBatchRepository,
    SqlAlchemyExportJobRepository,
    SqlAlchemyMergePolicyRepository,
    SqlAlchemyPreviewRepository,
    SqlAlchemyProfileSourceRepository,
    SqlAlchemyProfileStoreRepository,
    SqlAlchemyScheduleRepository,
    SqlAlchemySegmentDefinitionRepository,
    SqlAlchemySegmentJobRepository,
    SqlAlchemyWorkQueue,
)

__all__ = ["JobServices", "SessionJobStarter", "SqlAlchemyUnitOfWork"]


@dataclass(frozen=True)
class JobServices:
    """The job services a schedule starts. ``bootstrap`` supplies them, so the store imports no domain
    package's services. Each runs in the open unit of work.

    Attributes:
        start_segment_job: ``(unit of work, scope, segment ids, origin) -> job id``.
        start_export: ``(unit of work, scope, export request) -> job id``; ``None`` without the export service.
        check_export: ``(unit of work, scope, export request)``, raising ``BadRequest``; ``None`` accepts any.
    """

    start_segment_job: Callable[[SqlAlchemyUnitOfWork, SandboxScope, list[str], str], str]
    start_export: Callable[[SqlAlchemyUnitOfWork, SandboxScope, Mapping[str, Any]], str] | None = None
    check_export: Callable[[SqlAlchemyUnitOfWork, SandboxScope, Mapping[str, Any]], None] | None = None


class SessionJobStarter:
    """``scheduling.ports.JobStarter`` in the unit of work's session: a job that cannot be created is
    rolled back to a savepoint, so the rest of the transaction (the claimed fire) stays."""

    def __init__(self, uow: SqlAlchemyUnitOfWork, session: Session, services: JobServices) -> None:
        self._uow = uow
        self._session = session
        self._services = services

    def start_segment_job(self, scope: SandboxScope, segment_ids: list[str], *, origin: str) -> str:
        with self._session.begin_nested():
            return self._services.start_segment_job(self._uow, scope, segment_ids, origin)

    def start_export(self, scope: SandboxScope, request: Mapping[str, Any]) -> str:
        if self._services.start_export is None:
            raise OpensegError("export schedules need the export service")
        with self._session.begin_nested():
            return self._services.start_export(self._uow, scope, request)

    def check_export(self, scope: SandboxScope, request: Mapping[str, Any]) -> None:
        if self._services.check_export is not None:
            self._services.check_export(self._uow, scope, request)


class SqlAlchemyUnitOfWork:
    """A unit of work on the metadata store (see ``scheduling.ports.SchedulingUnitOfWork``,
    ``segmentation.ports.SegmentationUnitOfWork``, ``profiles.ports.ProfilesUnitOfWork``,
    ``exports.ports.ExportsUnitOfWork``).

    Entering opens a session and puts the repositories on it; ``commit`` commits it; leaving rolls back
    what was not committed and closes the session. One instance serves one block at a time.
    """

    schedules: SqlAlchemyScheduleRepository
    segment_definitions: SqlAlchemySegmentDefinitionRepository
    merge_policies: SqlAlchemyMergePolicyRepository
    segment_jobs: SqlAlchemySegmentJobRepository
    work_queue: SqlAlchemyWorkQueue
    jobs: SessionJobStarter
    profile_stores: SqlAlchemyProfileStoreRepository
    profile_sources: SqlAlchemyProfileSourceRepository
    datasets: SqlAlchemyDatasetRepository
    export_jobs: SqlAlchemyExportJobRepository
    export_batches: SqlAlchemyExportBatchRepository
    previews: SqlAlchemyPreviewRepository

    def __init__(self, db: Database, jobs: JobServices) -> None:
        self._db = db
        self._jobs = jobs
        self._session: Session | None = None

    def __enter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("this unit of work is already open")
        session = self._session = self._db.new_session()
        self.schedules = SqlAlchemyScheduleRepository(session, lock_rows=self._db.is_postgres)
        self.segment_definitions = SqlAlchemySegmentDefinitionRepository(session)
        self.merge_policies = SqlAlchemyMergePolicyRepository(session)
        self.segment_jobs = SqlAlchemySegmentJobRepository(session)
        self.work_queue = SqlAlchemyWorkQueue(session)
        self.jobs = SessionJobStarter(self, session, self._jobs)
        self.profile_stores = SqlAlchemyProfileStoreRepository(session)
        self.profile_sources = SqlAlchemyProfileSourceRepository(session)
        self.datasets = SqlAlchemyDatasetRepository(session)
        self.export_jobs = SqlAlchemyExportJobRepository(session)
        self.export_batches = SqlAlchemyExportBatchRepository(session)
        self.previews = SqlAlchemyPreviewRepository(session)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        session, self._session = self._open(), None
        try:
            session.rollback()
        finally:
            session.close()

    def commit(self) -> None:
        self._open().commit()

    def rollback(self) -> None:
        self._open().rollback()

    def _open(self) -> Session:
        if self._session is None:
            raise RuntimeError("the unit of work is not open: use it in a with block")
        return self._session
