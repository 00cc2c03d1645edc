"""Repositories over the metadata store: the SQLAlchemy side of the domain packages' ports.

Each class implements a domain protocol (``scheduling/ports.py`` so far) over one session, which the
unit of work (``store/unit_of_work.py``) owns: a repository never commits. Domain values are mapped to
and from the ORM rows of ``store/models.py`` field for field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, fields
from typing import Any, cast

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.orm import Session

from openseg.scheduling.model import Schedule
from openseg.store.models import MergePolicy, SegmentDefinition
from openseg.store.models import Schedule as ScheduleRow

__all__ = ["SqlAlchemyMergePolicyRepository", "SqlAlchemyScheduleRepository", "SqlAlchemySegmentDefinitionRepository"]

_SCHEDULE_FIELDS = tuple(f.name for f in fields(Schedule))


def _schedule(row: ScheduleRow) -> Schedule:
    return Schedule(**{name: getattr(row, name) for name in _SCHEDULE_FIELDS})


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
    """``scheduling.ports.SegmentDefinitionRepository`` over ``segment_definitions``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def existing_ids(self, sandbox_id: str, segment_ids: Iterable[str]) -> set[str]:
        return set(self._session.scalars(select(SegmentDefinition.id).where(
            SegmentDefinition.sandbox_id == sandbox_id, SegmentDefinition.id.in_(list(segment_ids)))))


class SqlAlchemyMergePolicyRepository:
    """``scheduling.ports.MergePolicyRepository`` over ``merge_policies``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def count(self, sandbox_id: str) -> int:
        return int(self._session.scalar(select(func.count()).select_from(MergePolicy)
                                        .where(MergePolicy.sandbox_id == sandbox_id)) or 0)
