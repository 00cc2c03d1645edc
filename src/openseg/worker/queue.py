"""The work queue in the metadata store: enqueue, claim (one worker per item), finish, recover."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from openseg.clock import now_ms
from openseg.store.db import Database
from openseg.store.models import WorkItem

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


def enqueue(session: Session, kind: str, ref_id: str, payload: dict[str, Any] | None = None) -> WorkItem:
    """Add work inside the caller's unit of work, so the item exists exactly when the resource does."""
    now = now_ms()
    item = WorkItem(kind=kind, ref_id=ref_id, payload=payload or {}, status=QUEUED, attempts=0, created=now,
                    updated=now)
    session.add(item)
    session.flush()
    return item


class Queue:
    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(self, worker_id: str, kinds: tuple[str, ...] | None = None) -> WorkItem | None:
        """Take the oldest queued item. A conditional UPDATE makes the claim exclusive across workers
        and processes, on SQLite and PostgreSQL alike."""
        with self.db.session() as session:
            query = select(WorkItem.id).where(WorkItem.status == QUEUED).order_by(WorkItem.id).limit(8)
            if kinds:
                query = query.where(WorkItem.kind.in_(kinds))
            if self.db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            candidates = list(session.scalars(query))
            for item_id in candidates:
                now = now_ms()
                claimed = cast(CursorResult[Any], session.execute(
                    update(WorkItem)
                    .where(WorkItem.id == item_id, WorkItem.status == QUEUED)
                    .values(status=RUNNING, claimed_by=worker_id, heartbeat=now, updated=now,
                            attempts=WorkItem.attempts + 1)
                )).rowcount
                if claimed == 1:
                    session.flush()
                    item = session.get(WorkItem, item_id)
                    assert item is not None
                    session.refresh(item)
                    return item
        return None

    def heartbeat(self, item_id: int) -> None:
        with self.db.session() as session:
            session.execute(update(WorkItem).where(WorkItem.id == item_id).values(heartbeat=now_ms()))

    def finish(self, item_id: int, error: str | None = None) -> None:
        with self.db.session() as session:
            session.execute(
                update(WorkItem).where(WorkItem.id == item_id)
                .values(status=FAILED if error else DONE, error=error, updated=now_ms())
            )

    def recover_stale(self, max_age_ms: int) -> int:
        """Re-queue items whose worker stopped heart-beating (crashed or killed); returns how many."""
        cutoff = now_ms() - max_age_ms
        with self.db.session() as session:
            return int(cast(CursorResult[Any], session.execute(
                update(WorkItem)
                .where(WorkItem.status == RUNNING, WorkItem.heartbeat <= cutoff)
                .values(status=QUEUED, claimed_by=None, updated=now_ms())
            )).rowcount)

    def recover_claimed_by(self, is_dead: Callable[[str], bool]) -> int:
        """Re-queue running items whose claimer ``is_dead`` says is gone; returns how many."""
        with self.db.session() as session:
            running = list(session.scalars(select(WorkItem).where(WorkItem.status == RUNNING)))
            recovered = 0
            for item in running:
                if item.claimed_by and _well_formed(item.claimed_by) and is_dead(item.claimed_by):
                    item.status, item.claimed_by, item.updated = QUEUED, None, now_ms()
                    recovered += 1
            return recovered

    def pending(self) -> int:
        with self.db.session() as session:
            return len(list(session.scalars(select(WorkItem.id).where(WorkItem.status.in_((QUEUED, RUNNING))))))


def _well_formed(claimer: str) -> bool:
    parts = claimer.split(":")
    return len(parts) == 3 and parts[1].isdigit()
