"""In-memory fakes of the profile services' ports (``openseg.profiles.ports``): the unit tests' store.

``FakeStore`` is what has been committed. A ``FakeUnitOfWork`` works on a copy of it from ``with`` to
``commit()``, so an error or a missing commit leaves the store as it was, as a transaction would.
``FakeServices`` is the container: settings, fresh units of work on one store, and an engine.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from openseg.engines.base import Engine
from openseg.lake_files import Lake
from openseg.profiles.model import MergePolicy, ProfileStoreRecord
from openseg.profiles.sources import SourceFile

T = TypeVar("T")


@dataclass(frozen=True)
class Scope:
    org_id: str = "ORG@AdobeOrg"
    sandbox_id: str = "sandbox-prod"


@dataclass
class SourceBatch:
    """A batch of a profile-source dataset (profile-enabled, not a union dataset) and its files."""

    sandbox_id: str
    status: str
    completed: int
    files: list[SourceFile] = field(default_factory=list)
    streamed: bool = False


@dataclass
class FakeStore:
    """The committed state: merge policies, profile store records, the catalog's profile sources, the queue.

    ``queue`` holds ``[kind, ref id, state]`` items; ``file_sizes`` what erasure recorded of a rewritten file;
    ``policy_users`` the merge policy of each segment definition, ``dataset_sandboxes`` each dataset's sandbox.
    """

    policies: dict[str, MergePolicy] = field(default_factory=dict)
    profile_stores: dict[str, ProfileStoreRecord] = field(default_factory=dict)
    sandboxes: dict[str, str] = field(default_factory=lambda: {"sandbox-prod": "ORG@AdobeOrg"})
    batches: dict[str, SourceBatch] = field(default_factory=dict)
    file_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    queue: list[list[str]] = field(default_factory=list)
    policy_users: dict[str, str] = field(default_factory=dict)
    dataset_sandboxes: dict[str, str] = field(default_factory=dict)


class FakeMergePolicyRepository:
    def __init__(self, rows: dict[str, MergePolicy], definitions: dict[str, str]) -> None:
        self.rows = rows
        self.definitions = definitions

    def add(self, policy: MergePolicy) -> None:
        assert policy.id not in self.rows, "ids are unique"
        self.rows[policy.id] = policy

    def get(self, policy_id: str) -> MergePolicy | None:
        return self.rows.get(policy_id)

    def in_sandbox(self, sandbox_id: str) -> list[MergePolicy]:
        return sorted((p for p in self.rows.values() if p.sandbox_id == sandbox_id), key=lambda p: (p.created, p.id))

    def update(self, policy: MergePolicy) -> None:
        if policy.id not in self.rows:
            raise LookupError(f"merge policy {policy.id} is not stored")
        self.rows[policy.id] = policy

    def remove(self, policy_id: str) -> None:
        self.rows.pop(policy_id, None)

    def users(self, policy_id: str) -> set[str]:
        return {segment_id for segment_id, used in self.definitions.items() if used == policy_id}


class FakeProfileStoreRepository:
    def __init__(self, rows: dict[str, ProfileStoreRecord]) -> None:
        self.rows = rows

    def get(self, policy_id: str) -> ProfileStoreRecord | None:
        return self.rows.get(policy_id)

    def put(self, record: ProfileStoreRecord) -> None:
        self.rows[record.merge_policy_id] = record


class FakeProfileSourceRepository:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    def _successful(self, sandbox_id: str) -> list[SourceBatch]:
        return sorted((b for b in self.store.batches.values() if b.sandbox_id == sandbox_id and b.status == "success"),
                      key=lambda b: b.completed)

    def files(self, sandbox_id: str) -> list[SourceFile]:
        return [f for b in self._successful(sandbox_id) for f in b.files]

    def newest_batch(self, sandbox_id: str, *, streamed: bool = True) -> int:
        return max((b.completed for b in self._successful(sandbox_id) if b.files and (streamed or not b.streamed)),
                   default=0)

    def source_batch_sandbox(self, batch_id: str) -> str | None:
        batch = self.store.batches.get(batch_id)
        return None if batch is None else batch.sandbox_id

    def known_datasets(self, sandbox_id: str, dataset_ids: Collection[str]) -> set[str]:
        return {d for d in dataset_ids if self.store.dataset_sandboxes.get(d) == sandbox_id}

    def source_datasets(self, sandbox_id: str) -> set[str]:
        return {d for d, sandbox in self.store.dataset_sandboxes.items() if sandbox == sandbox_id}

    def streamed_through(self, sandbox_id: str) -> int:
        return 0  # nothing is streamed in these tests

    def org_of(self, sandbox_id: str) -> str | None:
        return self.store.sandboxes.get(sandbox_id)

    def update_file(self, path: str, *, records: int, length: int) -> None:
        self.store.file_sizes[path] = (records, length)


class FakeWorkQueue:
    def __init__(self, items: list[list[str]]) -> None:
        self.items = items

    def enqueue(self, kind: str, ref_id: str) -> None:
        self.items.append([kind, ref_id, "queued"])

    def pending(self, kind: str, ref_id: str) -> set[str]:
        return {state for k, r, state in self.items if (k, r) == (kind, ref_id) and state in ("queued", "running")}


class FakeUnitOfWork:
    """``ProfilesUnitOfWork`` over a :class:`FakeStore`; counts its commits."""

    merge_policies: FakeMergePolicyRepository
    profile_stores: FakeProfileStoreRepository
    profile_sources: FakeProfileSourceRepository
    work_queue: FakeWorkQueue

    def __init__(self, store: FakeStore | None = None) -> None:
        self.store = store if store is not None else FakeStore()
        self.commits = 0
        self._open = False
        self._working: FakeStore | None = None

    def __enter__(self) -> Self:
        assert not self._open, "one block at a time"
        self._open = True
        self._begin()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._open = False

    def _begin(self) -> None:
        working = self._working = copy.deepcopy(self.store)
        self.merge_policies = FakeMergePolicyRepository(working.policies, working.policy_users)
        self.profile_stores = FakeProfileStoreRepository(working.profile_stores)
        self.profile_sources = FakeProfileSourceRepository(working)
        self.work_queue = FakeWorkQueue(working.queue)

    def commit(self) -> None:
        assert self._open and self._working is not None, "commit inside the with block"
        for name in self.store.__dataclass_fields__:
            setattr(self.store, name, copy.deepcopy(getattr(self._working, name)))
        self.commits += 1

    def rollback(self) -> None:
        self._begin()


@dataclass(frozen=True)
class FakeSettings:
    home: Path
    build_memory_limit: str | None = None
    stream_build_seconds: float = 15.0

    @property
    def profiles_dir(self) -> Path:
        return self.home / "profiles"

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def data_lake(self) -> Lake:
        return Lake(str(self.lake))

    @property
    def staging(self) -> Path:
        return self.home / "staging"


@dataclass
class FakeServices:
    """``ProfileServices`` on a :class:`FakeStore`: each ``uow()`` a fresh unit of work on it."""

    settings: FakeSettings
    store: FakeStore
    engine_: Engine

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.store)

    def engine(self) -> Engine:
        return self.engine_

    def lasting(self, key: tuple[str, ...], read: Callable[[], T]) -> T:
        return read()  # keeps nothing: every call sees the fake store as it is

    def reader(self) -> Engine:
        return self.engine_

    def stream_log(self) -> NoStream:
        return NoStream()


class NoStream:
    """A stream log holding nothing (``profiles.overlay.StreamedRecords``)."""

    def carrying(self, sandbox_id: str, keys: Collection[str], after: int,
                 through: int | None = None) -> list[Any]:
        return []
