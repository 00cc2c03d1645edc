"""In-memory fakes of segmentation's ports (``openseg.segmentation.ports``): the unit tests' store.

``FakeStore`` is what has been committed. A ``FakeUnitOfWork`` works on a copy of it from ``with`` to
``commit()``, so an error or a missing commit leaves the store as it was, as a transaction would.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, fields, replace
from types import TracebackType
from typing import Self

from openseg.profiles.model import MergePolicy
from openseg.segmentation.model import Preview, SegmentDefinition, SegmentJob


@dataclass(frozen=True)
class Scope:
    org_id: str = "ORG@AdobeOrg"
    sandbox_id: str = "sandbox-prod"


@dataclass
class FakeStore:
    """The committed state: definitions and the versions kept of them, merge policies, jobs, queued work."""

    definitions: dict[str, SegmentDefinition] = field(default_factory=dict)
    versions: dict[tuple[str, int], SegmentDefinition] = field(default_factory=dict)
    policies: dict[str, MergePolicy] = field(default_factory=dict)
    jobs: dict[str, SegmentJob] = field(default_factory=dict)
    queued: list[tuple[str, str]] = field(default_factory=list)
    previews: dict[str, Preview] = field(default_factory=dict)


class FakeSegmentDefinitionRepository:
    def __init__(self, rows: dict[str, SegmentDefinition], versions: dict[tuple[str, int], SegmentDefinition]) -> None:
        self.rows = rows
        self.versions = versions

    def _keep(self, definition: SegmentDefinition) -> None:
        assert (definition.id, definition.version) not in self.versions, "each version is kept once"
        self.versions[definition.id, definition.version] = definition

    def add(self, definition: SegmentDefinition) -> None:
        assert definition.id not in self.rows, "ids are unique"
        assert not any(d.sandbox_id == definition.sandbox_id and d.name == definition.name for d in self.rows.values()), \
            "names are unique in a sandbox"
        self.rows[definition.id] = definition
        self._keep(definition)

    def get(self, definition_id: str) -> SegmentDefinition | None:
        return self.rows.get(definition_id)

    def in_sandbox(self, sandbox_id: str) -> list[SegmentDefinition]:
        return sorted((d for d in self.rows.values() if d.sandbox_id == sandbox_id), key=lambda d: (d.created, d.id))

    def update(self, definition: SegmentDefinition) -> None:
        assert definition.id in self.rows, "only a stored definition is updated"
        self.rows[definition.id] = definition
        self._keep(definition)

    def remove(self, definition_id: str) -> None:
        self.rows.pop(definition_id, None)


class FakeMergePolicyRepository:
    def __init__(self, rows: dict[str, MergePolicy]) -> None:
        self.rows = rows

    def add(self, policy: MergePolicy) -> None:
        assert policy.id not in self.rows, "ids are unique"
        self.rows[policy.id] = policy

    def get(self, policy_id: str) -> MergePolicy | None:
        return self.rows.get(policy_id)

    def in_sandbox(self, sandbox_id: str) -> list[MergePolicy]:
        return sorted((p for p in self.rows.values() if p.sandbox_id == sandbox_id), key=lambda p: (p.created, p.id))


class FakeSegmentJobRepository:
    def __init__(self, rows: dict[str, SegmentJob]) -> None:
        self.rows = rows
        self.read = dict(rows)  # as the unit of work found them: ``update`` writes what differs

    def add(self, job: SegmentJob) -> None:
        assert job.id not in self.rows, "ids are unique"
        self.rows[job.id] = job

    def get(self, job_id: str) -> SegmentJob | None:
        return self.rows.get(job_id)

    def page(self, sandbox_id: str, *, start: int, limit: int, statuses: Collection[str] | None,
             newest_first: bool) -> tuple[list[SegmentJob], int]:
        mine = sorted((j for j in self.rows.values()
                       if j.sandbox_id == sandbox_id and (statuses is None or j.status in statuses)),
                      key=lambda j: (j.created, j.id), reverse=newest_first)
        return mine[start:start + limit], len(mine)

    def count_in_org(self, org_id: str) -> int:
        return sum(1 for j in self.rows.values() if j.org_id == org_id)

    def ids_in(self, sandbox_id: str, statuses: Collection[str]) -> set[str]:
        return {j.id for j in self.rows.values() if j.sandbox_id == sandbox_id and j.status in statuses}

    def update_status(self, job_id: str, status: str, *, updated: int) -> None:
        assert job_id in self.rows, "only a stored job is updated"
        self.rows[job_id] = replace(self.rows[job_id], status=status, updated=updated)

    def update(self, job: SegmentJob) -> None:
        assert job.id in self.rows, "only a stored job is updated"
        read = self.read.get(job.id, self.rows[job.id])
        changed = {f.name: getattr(job, f.name) for f in fields(job) if getattr(job, f.name) != getattr(read, f.name)}
        self.rows[job.id] = replace(self.rows[job.id], **changed)


class FakeWorkQueue:
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items

    def enqueue(self, kind: str, ref_id: str) -> None:
        self.items.append((kind, ref_id))


class FakePreviewRepository:
    def __init__(self, rows: dict[str, Preview]) -> None:
        self.rows = rows

    def add(self, preview: Preview) -> None:
        assert preview.id not in self.rows, "ids are unique"
        self.rows[preview.id] = preview

    def get(self, preview_id: str) -> Preview | None:
        return self.rows.get(preview_id)

    def remove(self, preview_id: str) -> None:
        self.rows.pop(preview_id, None)


class FakeUnitOfWork:
    """``SegmentationUnitOfWork`` over a :class:`FakeStore`; counts its commits."""

    segment_definitions: FakeSegmentDefinitionRepository
    merge_policies: FakeMergePolicyRepository
    segment_jobs: FakeSegmentJobRepository
    work_queue: FakeWorkQueue
    previews: FakePreviewRepository

    def __init__(self, store: FakeStore | None = None) -> None:
        self.store = store if store is not None else FakeStore()
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
        self.segment_definitions = FakeSegmentDefinitionRepository(dict(self.store.definitions),
                                                                    dict(self.store.versions))
        self.merge_policies = FakeMergePolicyRepository(dict(self.store.policies))
        self.segment_jobs = FakeSegmentJobRepository(dict(self.store.jobs))
        self.work_queue = FakeWorkQueue(list(self.store.queued))
        self.previews = FakePreviewRepository(dict(self.store.previews))

    def commit(self) -> None:
        assert self._open, "commit inside the with block"
        self.store.definitions = dict(self.segment_definitions.rows)
        self.store.versions = dict(self.segment_definitions.versions)
        self.store.policies = dict(self.merge_policies.rows)
        self.store.jobs = dict(self.segment_jobs.rows)
        self.store.queued = list(self.work_queue.items)
        self.store.previews = dict(self.previews.rows)
        self.commits += 1

    def rollback(self) -> None:
        self._begin()
