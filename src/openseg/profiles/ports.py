"""What the profile services need from storage, the work queue and the container: ports, as Protocols.

The metadata store implements them (``store/repositories.py``, ``store/unit_of_work.py``), tests fake
them in memory (``tests/profiles/fakes.py``). Each protocol names only the methods the profile store
services (``service.py``), merge policies (``policies.py``) and profile access (``entities.py``) call.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, TypeVar

from openseg.profiles.model import MergePolicy, ProfileStoreRecord
from openseg.profiles.overlay import StreamedRecords
from openseg.profiles.sources import SourceFile

T = TypeVar("T")

if TYPE_CHECKING:
    from openseg.engines.base import Engine

__all__ = [
    "MergePolicyRepository",
    "PolicyVersion",
    "ProfileAccessServices",
    "ProfileServices",
    "ProfileSettings",
    "ProfileSourceRepository",
    "ProfileStoreRepository",
    "ProfilesUnitOfWork",
    "QueuedWork",
    "WorkQueue",
]


class PolicyVersion(Protocol):
    """A merge policy as far as its store's freshness goes: which one, at which version."""

    @property
    def id(self) -> str: ...

    @property
    def version(self) -> int: ...


class MergePolicyRepository(Protocol):
    """The merge policies whose stores are built and read."""

    def add(self, policy: MergePolicy) -> None: ...

    def get(self, policy_id: str) -> MergePolicy | None:
        """The policy with this id in any org or sandbox (the service checks the scope)."""

    def in_sandbox(self, sandbox_id: str) -> list[MergePolicy]:
        """Every policy of the sandbox, oldest first (by creation time, then id)."""

    def update(self, policy: MergePolicy) -> None:
        """Write every field of ``policy`` over the stored one with its id."""

    def remove(self, policy_id: str) -> None:
        """Delete the policy with this id (nothing when there is none)."""

    def users(self, policy_id: str) -> set[str]:
        """The ids of the segment definitions (in any sandbox) that use the policy."""


class ProfileStoreRepository(Protocol):
    """What is known of each merge policy's built profile store."""

    def get(self, policy_id: str) -> ProfileStoreRecord | None: ...

    def put(self, record: ProfileStoreRecord) -> None:
        """Store ``record`` as its policy's, over whatever was stored for that policy before."""


class ProfileSourceRepository(Protocol):
    """The catalog as profile builds read it: the files of the sandbox's profile-enabled profile and event
    datasets (union datasets, the export targets, are never a source)."""

    def files(self, sandbox_id: str) -> list[SourceFile]:
        """Every file of every successful batch of those datasets, by batch completion, then file id."""

    def newest_batch(self, sandbox_id: str, *, streamed: bool = True) -> int:
        """When the newest successful batch holding such files completed (ms since the epoch; 0 if none);
        ``streamed`` False: of the batches ingested as batches, not flushed from the stream log."""

    def source_batch_sandbox(self, batch_id: str) -> str | None:
        """The sandbox of the batch when its dataset is a profile source (profile-enabled, not a union
        dataset), whatever the batch's status; else None."""

    def known_datasets(self, sandbox_id: str, dataset_ids: Collection[str]) -> set[str]:
        """Those of ``dataset_ids`` that name datasets of the sandbox (of any kind)."""

    def source_datasets(self, sandbox_id: str) -> set[str]:
        """The ids of the sandbox's datasets that feed profile builds (profile-enabled profile and event ones)."""

    def streamed_through(self, sandbox_id: str) -> int:
        """The highest stream log ``seq`` of the sandbox's streamed batches recorded so far (0: none). Read
        before :meth:`files`, it is what a build of those files holds of the log: a flush commits its
        batches in one transaction, so every batch up to it is among the files read after."""

    def org_of(self, sandbox_id: str) -> str | None:
        """The org the sandbox belongs to (None when there is no such sandbox)."""

    def update_file(self, path: str, *, records: int, length: int) -> None:
        """Record that the source file at ``path`` now holds ``records`` rows in ``length`` bytes."""


class WorkQueue(Protocol):
    """The worker's queue, written in the unit of work."""

    def enqueue(self, kind: str, ref_id: str) -> None:
        """Queue work of ``kind`` on the resource ``ref_id`` (for example ``build_profiles`` and a sandbox)."""

    def pending(self, kind: str, ref_id: str) -> set[str]:
        """The states (``"queued"``, ``"running"``) of the queue's unfinished work of ``kind`` on ``ref_id``."""


class ProfilesUnitOfWork(Protocol):
    """One transaction over the repositories the profile services use.

    Use it as a context manager: ``commit()`` makes the work so far durable; leaving the block without
    committing (or by an exception) rolls back whatever was not committed.
    """

    # Read-only members, so an implementation may declare its own repository classes.
    @property
    def merge_policies(self) -> MergePolicyRepository: ...

    @property
    def profile_stores(self) -> ProfileStoreRepository: ...

    @property
    def profile_sources(self) -> ProfileSourceRepository: ...

    @property
    def work_queue(self) -> WorkQueue: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class ProfileSettings(Protocol):
    """The settings profile services read (``openseg.config.Settings`` has them)."""

    @property
    def home(self) -> Path: ...

    @property
    def profiles_dir(self) -> Path: ...

    @property
    def build_memory_limit(self) -> str | None: ...

    @property
    def stream_build_seconds(self) -> float: ...


class ProfileServices(Protocol):
    """What the profile services take from the container (``openseg.container.Services`` is one; tests wire
    a fake): settings, fresh units of work, and the engine builds run on."""

    @property
    def settings(self) -> ProfileSettings: ...

    def uow(self) -> ProfilesUnitOfWork: ...

    def engine(self) -> Engine: ...

    def lasting(self, key: tuple[str, ...], read: Callable[[], T]) -> T:
        """``read()``, which reads metadata only (no work queue), or what an earlier call with ``key`` returned
        when no commit has changed that metadata since."""
        ...


class ProfileAccessServices(ProfileServices, Protocol):
    """What profile access (``entities.py``) takes from the container: the profile services, and the engine
    that reads a few rows of a store per request (``openseg.container.Services.reader``: embedded whatever
    ``OPENSEG_ENGINE`` says, as a lookup must answer in milliseconds)."""

    def reader(self) -> Engine: ...

    def stream_log(self) -> StreamedRecords:
        """The stream log: acknowledged messages no build holds yet are laid over the build (``overlay.py``)."""
        ...


class QueuedWork(Protocol):
    """A queue item as a worker handler reads it (``store.models.WorkItem`` is one)."""

    @property
    def ref_id(self) -> str: ...
