"""In-memory fakes of scheduling's ports (``openseg.scheduling.ports``): the unit tests' store.

``FakeStore`` is what has been committed. A ``FakeUnitOfWork`` works on a copy of it from ``with`` to
``commit()``, so an error or a missing commit leaves the store as it was, as a transaction would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Self

from openseg.errors import BadRequest
from openseg.scheduling.model import Schedule
from openseg.scheduling.ports import SandboxScope


@dataclass(frozen=True)
class Scope:
    org_id: str = "ORG@AdobeOrg"
    sandbox_id: str = "sandbox-prod"


@dataclass(frozen=True)
class StartedJob:
    kind: str  # "segment" or "export"
    org_id: str
    sandbox_id: str
    segment_ids: tuple[str, ...] = ()
    request: Mapping[str, Any] | None = None
    origin: str = ""


@dataclass
class FakeStore:
    """The committed state: schedules, the segment ids and merge policy counts of each sandbox, jobs."""

    schedules: dict[str, Schedule] = field(default_factory=dict)
    segment_ids: dict[str, set[str]] = field(default_factory=dict)
    merge_policies: dict[str, int] = field(default_factory=dict)
    jobs: list[StartedJob] = field(default_factory=list)


class FakeScheduleRepository:
    def __init__(self, rows: dict[str, Schedule]) -> None:
        self.rows = rows

    def add(self, schedule: Schedule) -> None:
        assert schedule.id not in self.rows, "ids are unique"
        self.rows[schedule.id] = schedule

    def get(self, schedule_id: str) -> Schedule | None:
        return self.rows.get(schedule_id)

    def of_type(self, sandbox_id: str, type_: str) -> Schedule | None:
        return next((s for s in self.rows.values() if s.sandbox_id == sandbox_id and s.type == type_), None)

    def page(self, sandbox_id: str, *, start: int, limit: int) -> tuple[list[Schedule], int]:
        mine = sorted((s for s in self.rows.values() if s.sandbox_id == sandbox_id), key=lambda s: (s.created, s.id))
        return mine[start:start + limit], len(mine)

    def update(self, schedule: Schedule) -> None:
        assert schedule.id in self.rows, "only a stored schedule is updated"
        self.rows[schedule.id] = schedule

    def remove(self, schedule_id: str) -> None:
        self.rows.pop(schedule_id, None)

    def active(self) -> list[Schedule]:
        return sorted((s for s in self.rows.values() if s.state == "active"), key=lambda s: s.id)

    def claim_fire(self, schedule_id: str, *, fire: int, ran_at: int) -> bool:
        current = self.rows[schedule_id]
        if current.last_fire is not None and current.last_fire >= fire:
            return False
        self.rows[schedule_id] = replace(current, last_fire=fire, last_run=ran_at)
        return True


class FakeSegmentDefinitionRepository:
    def __init__(self, ids: dict[str, set[str]]) -> None:
        self.ids = ids

    def existing_ids(self, sandbox_id: str, segment_ids: Iterable[str]) -> set[str]:
        return self.ids.get(sandbox_id, set()) & set(segment_ids)


class FakeMergePolicyRepository:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def count(self, sandbox_id: str) -> int:
        return self.counts.get(sandbox_id, 1)  # every sandbox has its default policy


class FakeJobStarter:
    """Starts jobs by recording them; ``refuse`` makes every start fail as a job service would (an
    ``OpensegError``, nothing written), ``bad_export`` makes ``check_export`` refuse."""

    def __init__(self, jobs: list[StartedJob], *, refuse: BaseException | None = None,
                 bad_export: str | None = None) -> None:
        self.jobs = jobs
        self.refuse = refuse
        self.bad_export = bad_export

    def _record(self, job: StartedJob) -> str:
        if self.refuse is not None:
            raise self.refuse
        self.jobs.append(job)
        return f"job-{len(self.jobs)}"

    def start_segment_job(self, scope: SandboxScope, segment_ids: list[str], *, origin: str) -> str:
        return self._record(StartedJob("segment", scope.org_id, scope.sandbox_id, tuple(segment_ids), origin=origin))

    def start_export(self, scope: SandboxScope, request: Mapping[str, Any]) -> str:
        return self._record(StartedJob("export", scope.org_id, scope.sandbox_id, request=request, origin="schedule"))

    def check_export(self, scope: SandboxScope, request: Mapping[str, Any]) -> None:
        if self.bad_export is not None:
            raise BadRequest(f"properties: {self.bad_export}", field="properties.destination.datasetId")


class FakeUnitOfWork:
    """``SchedulingUnitOfWork`` over a :class:`FakeStore`; counts its commits."""

    schedules: FakeScheduleRepository
    segment_definitions: FakeSegmentDefinitionRepository
    merge_policies: FakeMergePolicyRepository
    jobs: FakeJobStarter

    def __init__(self, store: FakeStore | None = None, *, refuse_jobs: BaseException | None = None,
                 bad_export: str | None = None) -> None:
        self.store = store if store is not None else FakeStore()
        self.refuse_jobs = refuse_jobs
        self.bad_export = bad_export
        self.commits = 0
        self._open = False

    def __enter__(self) -> Self:
        assert not self._open, "one block at a time"
        self._open = True
        self._begin()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._open = False

    def _begin(self) -> None:
        self.schedules = FakeScheduleRepository(dict(self.store.schedules))
        self.segment_definitions = FakeSegmentDefinitionRepository(self.store.segment_ids)
        self.merge_policies = FakeMergePolicyRepository(self.store.merge_policies)
        self.jobs = FakeJobStarter(list(self.store.jobs), refuse=self.refuse_jobs, bad_export=self.bad_export)

    def commit(self) -> None:
        assert self._open, "commit inside the with block"
        self.store.schedules = dict(self.schedules.rows)
        self.store.jobs = list(self.jobs.jobs)
        self.commits += 1

    def rollback(self) -> None:
        self._begin()


@dataclass
class FakeServices:
    """What the scheduler loop is handed (``UnitOfWorkSource``): opens the one fake unit of work."""

    unit: FakeUnitOfWork

    def uow(self) -> FakeUnitOfWork:
        return self.unit
