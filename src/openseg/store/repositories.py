"""Repositories over the metadata store: the SQLAlchemy side of the domain packages' ports.

Each class implements domain protocols (``scheduling/ports.py``, ``segmentation/ports.py``,
``profiles/ports.py``) over one session, which the unit of work (``store/unit_of_work.py``) owns: a
repository never commits. One class may serve several packages, each protocol naming the part it uses. Domain values are mapped to and from
the ORM rows of ``store/models.py`` field for field.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import asdict, fields
from typing import Any, cast

from sqlalchemy import CursorResult, and_, func, or_, select, update
from sqlalchemy.orm import Session

from openseg.catalog.service import dataset_kind, is_profile_enabled, record_batch_success
from openseg.clock import ms_to_datetime, new_hex_id
from openseg.exports.model import ExportJob
from openseg.profiles.model import MergePolicy, ProfileStoreRecord
from openseg.profiles.sources import SourceFile
from openseg.scheduling.model import Schedule
from openseg.scope import Tenancy
from openseg.segmentation.model import Preview, SegmentDefinition, SegmentJob
from openseg.store.models import Batch, DataFile, Dataset, Sandbox, SegmentDefinitionVersion, WorkItem
from openseg.store.models import ExportJob as ExportJobRow
from openseg.store.models import MergePolicy as MergePolicyRow
from openseg.store.models import Preview as PreviewRow
from openseg.store.models import ProfileStore as ProfileStoreRow
from openseg.store.models import Schedule as ScheduleRow
from openseg.store.models import SegmentDefinition as SegmentDefinitionRow
from openseg.store.models import SegmentJob as SegmentJobRow
from openseg.streaming.model import STREAM_SEQ, STREAMED_ORIGIN
from openseg.worker.queue import QUEUED, RUNNING, enqueue

__all__ = [
    "SqlAlchemyDatasetRepository",
    "SqlAlchemyExportBatchRepository",
    "SqlAlchemyExportJobRepository",
    "SqlAlchemyMergePolicyRepository",
    "SqlAlchemyPreviewRepository",
    "SqlAlchemyProfileSourceRepository",
    "SqlAlchemyProfileStoreRepository",
    "SqlAlchemyScheduleRepository",
    "SqlAlchemySegmentDefinitionRepository",
    "SqlAlchemySegmentJobRepository",
    "SqlAlchemyWorkQueue",
]

_SCHEDULE_FIELDS = tuple(f.name for f in fields(Schedule))
_DEFINITION_FIELDS = tuple(f.name for f in fields(SegmentDefinition))
_POLICY_FIELDS = tuple(f.name for f in fields(MergePolicy))
_JOB_FIELDS = tuple(f.name for f in fields(SegmentJob))
_PROFILE_STORE_FIELDS = tuple(f.name for f in fields(ProfileStoreRecord))
_EXPORT_JOB_FIELDS = tuple(f.name for f in fields(ExportJob))
_PREVIEW_FIELDS = tuple(f.name for f in fields(Preview))


def _schedule(row: ScheduleRow) -> Schedule:
    return Schedule(**{name: getattr(row, name) for name in _SCHEDULE_FIELDS})


def _definition(row: SegmentDefinitionRow) -> SegmentDefinition:
    return SegmentDefinition(**{name: getattr(row, name) for name in _DEFINITION_FIELDS})


def _policy(row: MergePolicyRow) -> MergePolicy:
    return MergePolicy(**{name: getattr(row, name) for name in _POLICY_FIELDS})


def _export_job(row: ExportJobRow) -> ExportJob:
    return ExportJob(**{name: getattr(row, name) for name in _EXPORT_JOB_FIELDS})


def _job(row: SegmentJobRow) -> SegmentJob:
    return SegmentJob(**{name: getattr(row, name) for name in _JOB_FIELDS})


class SqlAlchemyScheduleRepository:
    """``scheduling.ports.ScheduleRepository`` over the ``schedules`` table."""

    def __init__(self, session: Session, *, lock_rows: bool = False) -> None:
        """A repository on the unit of work's ``session``.

        Args:
            session: The unit of work's session.
            lock_rows: Lock the rows :meth:`active` reads (``FOR UPDATE SKIP LOCKED``; PostgreSQL).
        """
        self._session = session
        self._lock_rows = lock_rows

    def add(self, schedule: Schedule) -> None:
        self._session.add(ScheduleRow(**asdict(schedule)))
        self._session.flush()

    def get(self, schedule_id: str) -> Schedule | None:
        row = self._session.get(ScheduleRow, schedule_id)
        return None if row is None else _schedule(row)

    def of_type(self, sandbox_id: str, type_: str) -> Schedule | None:
        row = self._session.scalars(select(ScheduleRow).where(ScheduleRow.sandbox_id == sandbox_id,
                                                              ScheduleRow.type == type_)).first()
        return None if row is None else _schedule(row)

    def page(self, sandbox_id: str, *, start: int, limit: int) -> tuple[list[Schedule], int]:
        query = select(ScheduleRow).where(ScheduleRow.sandbox_id == sandbox_id)
        total = int(self._session.scalar(select(func.count()).select_from(query.subquery())) or 0)
        rows = self._session.scalars(query.order_by(ScheduleRow.created, ScheduleRow.id).offset(start).limit(limit))
        return [_schedule(row) for row in rows], total

    def update(self, schedule: Schedule) -> None:
        row = self._session.get(ScheduleRow, schedule.id)
        if row is None:
            raise LookupError(f"schedule {schedule.id} is not stored")
        # Setting an unchanged value writes nothing: the ORM only updates the columns that differ.
        for name in _SCHEDULE_FIELDS:
            setattr(row, name, getattr(schedule, name))
        self._session.flush()

    def remove(self, schedule_id: str) -> None:
        row = self._session.get(ScheduleRow, schedule_id)
        if row is not None:
            self._session.delete(row)
            self._session.flush()

    def active(self) -> list[Schedule]:
        query = select(ScheduleRow).where(ScheduleRow.state == "active").order_by(ScheduleRow.id)
        if self._lock_rows:
            query = query.with_for_update(skip_locked=True)
        return [_schedule(row) for row in self._session.scalars(query)]

    def claim_fire(self, schedule_id: str, *, fire: int, ran_at: int) -> bool:
        # On SQLite, where there are no row locks, the losing writer finds nothing left to update.
        claimed = cast(CursorResult[Any], self._session.execute(
            update(ScheduleRow)
            .where(ScheduleRow.id == schedule_id, or_(ScheduleRow.last_fire.is_(None), ScheduleRow.last_fire < fire))
            .values(last_fire=fire, last_run=ran_at)
            .execution_options(synchronize_session="fetch")
        )).rowcount
        return claimed == 1


class SqlAlchemySegmentDefinitionRepository:
    """``segmentation.ports.SegmentDefinitionRepository`` (and scheduling's) over ``segment_definitions``,
    each version kept in ``segment_definition_versions``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, definition: SegmentDefinition) -> None:
        self._session.add(SegmentDefinitionRow(**asdict(definition)))
        self._keep_version(definition)
        self._session.flush()

    def get(self, definition_id: str) -> SegmentDefinition | None:
        row = self._session.get(SegmentDefinitionRow, definition_id)
        return None if row is None else _definition(row)

    def in_sandbox(self, sandbox_id: str) -> list[SegmentDefinition]:
        rows = self._session.scalars(select(SegmentDefinitionRow).where(SegmentDefinitionRow.sandbox_id == sandbox_id)
                                     .order_by(SegmentDefinitionRow.created, SegmentDefinitionRow.id))
        return [_definition(row) for row in rows]

    def existing_ids(self, sandbox_id: str, segment_ids: Iterable[str]) -> set[str]:
        return set(self._session.scalars(select(SegmentDefinitionRow.id).where(
            SegmentDefinitionRow.sandbox_id == sandbox_id, SegmentDefinitionRow.id.in_(list(segment_ids)))))

    def update(self, definition: SegmentDefinition) -> None:
        row = self._session.get(SegmentDefinitionRow, definition.id)
        if row is None:
            raise LookupError(f"segment definition {definition.id} is not stored")
        for name in _DEFINITION_FIELDS:
            setattr(row, name, getattr(definition, name))
        self._keep_version(definition)
        self._session.flush()

    def remove(self, definition_id: str) -> None:
        row = self._session.get(SegmentDefinitionRow, definition_id)
        if row is not None:
            self._session.delete(row)
            self._session.flush()

    def _keep_version(self, definition: SegmentDefinition) -> None:
        self._session.add(SegmentDefinitionVersion(
            definition_id=definition.id, version=definition.version, name=definition.name,
            expression=definition.expression, pql=definition.pql, merge_policy_id=definition.merge_policy_id,
            created=definition.updated,
        ))


class SqlAlchemyMergePolicyRepository:
    """``segmentation.ports.MergePolicyRepository`` (and scheduling's, profiles') over ``merge_policies``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, policy: MergePolicy) -> None:
        self._session.add(MergePolicyRow(**asdict(policy)))
        self._session.flush()

    def get(self, policy_id: str) -> MergePolicy | None:
        row = self._session.get(MergePolicyRow, policy_id)
        return None if row is None else _policy(row)

    def in_sandbox(self, sandbox_id: str) -> list[MergePolicy]:
        rows = self._session.scalars(select(MergePolicyRow).where(MergePolicyRow.sandbox_id == sandbox_id)
                                     .order_by(MergePolicyRow.created, MergePolicyRow.id))
        return [_policy(row) for row in rows]

    def update(self, policy: MergePolicy) -> None:
        row = self._session.get(MergePolicyRow, policy.id)
        if row is None:
            raise LookupError(f"merge policy {policy.id} is not stored")
        for name in _POLICY_FIELDS:
            setattr(row, name, getattr(policy, name))
        self._session.flush()

    def remove(self, policy_id: str) -> None:
        row = self._session.get(MergePolicyRow, policy_id)
        if row is not None:
            self._session.delete(row)
            self._session.flush()

    def users(self, policy_id: str) -> set[str]:
        return set(self._session.scalars(select(SegmentDefinitionRow.id)
                                         .where(SegmentDefinitionRow.merge_policy_id == policy_id)))

    def count(self, sandbox_id: str) -> int:
        return int(self._session.scalar(select(func.count()).select_from(MergePolicyRow)
                                        .where(MergePolicyRow.sandbox_id == sandbox_id)) or 0)


class SqlAlchemySegmentJobRepository:
    """``segmentation.ports.SegmentJobRepository`` over ``segment_jobs``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, job: SegmentJob) -> None:
        self._session.add(SegmentJobRow(**asdict(job)))
        self._session.flush()

    def get(self, job_id: str) -> SegmentJob | None:
        row = self._session.get(SegmentJobRow, job_id)
        return None if row is None else _job(row)

    def page(self, sandbox_id: str, *, start: int, limit: int, statuses: Collection[str] | None,
             newest_first: bool) -> tuple[list[SegmentJob], int]:
        query = select(SegmentJobRow).where(SegmentJobRow.sandbox_id == sandbox_id)
        if statuses is not None:
            query = query.where(SegmentJobRow.status.in_(list(statuses)))
        total = int(self._session.scalar(select(func.count()).select_from(query.subquery())) or 0)
        order = ((SegmentJobRow.created.desc(), SegmentJobRow.id.desc()) if newest_first
                 else (SegmentJobRow.created, SegmentJobRow.id))
        return [_job(row) for row in self._session.scalars(query.order_by(*order).offset(start).limit(limit))], total

    def count_in_org(self, org_id: str) -> int:
        return int(self._session.scalar(select(func.count()).select_from(SegmentJobRow)
                                        .where(SegmentJobRow.org_id == org_id)) or 0)

    def ids_in(self, sandbox_id: str, statuses: Collection[str]) -> set[str]:
        return set(self._session.scalars(select(SegmentJobRow.id).where(SegmentJobRow.sandbox_id == sandbox_id,
                                                                        SegmentJobRow.status.in_(list(statuses)))))

    def update_status(self, job_id: str, status: str, *, updated: int) -> None:
        row = self._session.get(SegmentJobRow, job_id)
        if row is None:
            raise LookupError(f"segment job {job_id} is not stored")
        row.status, row.updated = status, updated
        self._session.flush()

    def update(self, job: SegmentJob) -> None:
        row = self._session.get(SegmentJobRow, job.id)
        if row is None:
            raise LookupError(f"segment job {job.id} is not stored")
        # The session writes only the columns whose value changed since it loaded the row.
        for name in _JOB_FIELDS:
            setattr(row, name, getattr(job, name))
        self._session.flush()


class SqlAlchemyPreviewRepository:
    """``segmentation.ports.PreviewRepository`` over ``previews``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, preview: Preview) -> None:
        self._session.add(PreviewRow(**asdict(preview)))
        self._session.flush()

    def get(self, preview_id: str) -> Preview | None:
        row = self._session.get(PreviewRow, preview_id)
        return None if row is None else Preview(**{name: getattr(row, name) for name in _PREVIEW_FIELDS})

    def remove(self, preview_id: str) -> None:
        row = self._session.get(PreviewRow, preview_id)
        if row is not None:
            self._session.delete(row)
            self._session.flush()


class SqlAlchemyWorkQueue:
    """``segmentation.ports.WorkQueue``: items of ``worker.queue`` added in the unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def enqueue(self, kind: str, ref_id: str) -> None:
        enqueue(self._session, kind, ref_id)

    def pending(self, kind: str, ref_id: str) -> set[str]:
        return set(self._session.scalars(select(WorkItem.status).where(
            WorkItem.kind == kind, WorkItem.ref_id == ref_id, WorkItem.status.in_((QUEUED, RUNNING)))))


class SqlAlchemyProfileStoreRepository:
    """``profiles.ports.ProfileStoreRepository`` over ``profile_stores``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, policy_id: str) -> ProfileStoreRecord | None:
        row = self._session.get(ProfileStoreRow, policy_id)
        return None if row is None else ProfileStoreRecord(**{name: getattr(row, name) for name in _PROFILE_STORE_FIELDS})

    def put(self, record: ProfileStoreRecord) -> None:
        row = self._session.get(ProfileStoreRow, record.merge_policy_id)
        if row is None:
            self._session.add(ProfileStoreRow(**asdict(record)))
        else:
            for name in _PROFILE_STORE_FIELDS:
                setattr(row, name, getattr(record, name))
        self._session.flush()


def streamed_through(session: Session, sandbox_id: str) -> int:
    """The highest log ``seq`` among the sandbox's streamed batches recorded so far (0 when none)."""
    formats = session.scalars(select(Batch.input_format).where(
        Batch.sandbox_id == sandbox_id, Batch.origin == STREAMED_ORIGIN)).all()
    return max((int(f[STREAM_SEQ]["last"]) for f in formats if f and STREAM_SEQ in f), default=0)


class SqlAlchemyProfileSourceRepository:
    """``profiles.ports.ProfileSourceRepository``: the catalog's datasets, batches and files as profile builds
    read them."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def _source_datasets(self, sandbox_id: str) -> dict[str, Dataset]:
        """The sandbox's profile-enabled profile and event datasets, by id."""
        return {d.id: d for d in self._session.scalars(select(Dataset).where(Dataset.sandbox_id == sandbox_id))
                if is_profile_enabled(d) and dataset_kind(d) in ("profile", "event")}

    def files(self, sandbox_id: str) -> list[SourceFile]:
        datasets = self._source_datasets(sandbox_id)
        if not datasets:
            return []
        rows = self._session.execute(
            select(DataFile, Batch.completed).join(Batch, Batch.id == DataFile.batch_id)
            .where(DataFile.dataset_id.in_(datasets), Batch.status == "success")
            .order_by(Batch.completed, DataFile.id))
        return [SourceFile(path=f.path, dataset_id=f.dataset_id, batch_id=f.batch_id,
                           ingest_time=ms_to_datetime(completed or f.created),
                           kind="event" if dataset_kind(datasets[f.dataset_id]) == "event" else "profile")
                for f, completed in rows]

    def newest_batch(self, sandbox_id: str, *, streamed: bool = True) -> int:
        datasets = self._source_datasets(sandbox_id)
        if not datasets:
            return 0
        query = (select(func.max(Batch.completed)).join(DataFile, DataFile.batch_id == Batch.id)
                 .where(DataFile.dataset_id.in_(datasets), Batch.status == "success"))
        if not streamed:
            query = query.where(Batch.origin != STREAMED_ORIGIN)
        return int(self._session.scalar(query) or 0)

    def source_batch_sandbox(self, batch_id: str) -> str | None:
        batch = self._session.get(Batch, batch_id)
        dataset = self._session.get(Dataset, batch.dataset_id) if batch else None
        if batch is None or dataset is None or not is_profile_enabled(dataset) or dataset_kind(dataset) == "union":
            return None
        return batch.sandbox_id

    def source_datasets(self, sandbox_id: str) -> set[str]:
        return set(self._source_datasets(sandbox_id))

    def streamed_through(self, sandbox_id: str) -> int:
        return streamed_through(self._session, sandbox_id)

    def known_datasets(self, sandbox_id: str, dataset_ids: Collection[str]) -> set[str]:
        return set(self._session.scalars(select(Dataset.id).where(Dataset.sandbox_id == sandbox_id,
                                                                  Dataset.id.in_(list(dataset_ids)))))

    def org_of(self, sandbox_id: str) -> str | None:
        sandbox = self._session.get(Sandbox, sandbox_id)
        return None if sandbox is None else sandbox.org_id

    def update_file(self, path: str, *, records: int, length: int) -> None:
        for data_file in self._session.scalars(select(DataFile).where(DataFile.path == path)):
            data_file.records, data_file.length = records, length
        self._session.flush()


class SqlAlchemyDatasetRepository:
    """``exports.ports.DatasetRepository`` over ``datasets``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def kind(self, scope: Tenancy, dataset_id: str) -> str | None:
        dataset = self._session.get(Dataset, dataset_id)
        if dataset is None or dataset.org_id != scope.org_id or dataset.sandbox_id != scope.sandbox_id:
            return None
        return dataset_kind(dataset)


class SqlAlchemyExportJobRepository:
    """``exports.ports.ExportJobRepository`` over ``export_jobs``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, job: ExportJob) -> ExportJob:
        row = ExportJobRow(**{name: getattr(job, name) for name in _EXPORT_JOB_FIELDS if name != "id"})
        self._session.add(row)
        self._session.flush()
        return _export_job(row)

    def get(self, job_id: int) -> ExportJob | None:
        row = self._session.get(ExportJobRow, job_id)
        return None if row is None else _export_job(row)

    def page(self, sandbox_id: str, *, statuses: Collection[str], before: tuple[int, int] | None, skip: int,
             limit: int) -> list[ExportJob]:
        query = select(ExportJobRow).where(ExportJobRow.sandbox_id == sandbox_id,
                                           ExportJobRow.status.in_(list(statuses)))
        if before is not None:
            created, ident = before
            query = query.where(or_(ExportJobRow.created < created,
                                    and_(ExportJobRow.created == created, ExportJobRow.id < ident)))
        rows = self._session.scalars(query.order_by(ExportJobRow.created.desc(), ExportJobRow.id.desc())
                                     .offset(skip).limit(limit))
        return [_export_job(row) for row in rows]

    def update(self, job: ExportJob) -> None:
        row = self._session.get(ExportJobRow, job.id)
        if row is None:
            raise LookupError(f"export job {job.id} is not stored")
        for name in _EXPORT_JOB_FIELDS:
            setattr(row, name, getattr(job, name))
        self._session.flush()


class SqlAlchemyExportBatchRepository:
    """``exports.ports.ExportBatchRepository`` over ``batches`` (and the ``files`` and dataset a published batch
    records, through ``catalog.service.record_batch_success``)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def reserve(self, scope: Tenancy, dataset_id: str, *, now: int) -> str:
        batch = Batch(id=new_hex_id(32), org_id=scope.org_id, sandbox_id=scope.sandbox_id, dataset_id=dataset_id,
                      status="loading", input_format={"format": "parquet"}, origin="export", created=now, updated=now)
        self._session.add(batch)
        self._session.flush()
        return batch.id

    def abandon(self, batch_ids: list[str], status: str, *, now: int) -> None:
        for batch_id in batch_ids:
            batch = self._session.get(Batch, batch_id)
            if batch is not None and batch.status == "loading":
                batch.status = status
                batch.updated = batch.completed = now
        self._session.flush()

    def replace_exported(self, dataset_id: str, *, now: int) -> None:
        for old in self._session.scalars(select(Batch).where(Batch.dataset_id == dataset_id, Batch.origin == "export",
                                                             Batch.status == "success")):
            old.status, old.updated = "replaced", now
        self._session.flush()

    def publish(self, batch_id: str, directory: str, parts: list[tuple[str, int]], *, started: int, now: int) -> None:
        batch = self._session.get(Batch, batch_id)
        if batch is None:
            raise LookupError(f"batch {batch_id} is not stored")
        batch.started = started
        record_batch_success(self._session, batch, directory, parts, records_read=sum(rows for _, rows in parts),
                             now=now)
        self._session.flush()
