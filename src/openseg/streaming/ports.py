"""What streaming ingestion needs from storage, as protocols: the metadata store implements the
repositories (``store/streaming.py``), a SQLite file the log (``store/stream_log.py``) and the catalog the
lake (``catalog/streaming.py``). Tests fake them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from openseg.profiles.overlay import BuiltFragment, Part
from openseg.segmentation.streaming import ContinuousDefinition, Pair
from openseg.streaming.model import (
    Connection,
    DatasetInfo,
    DueKey,
    LogEntry,
    LoggedMessage,
    LogRange,
    StreamBatch,
)


class ConnectionRepository(Protocol):
    def add(self, connection: Connection) -> None: ...

    def get(self, org_id: str, sandbox_id: str, connection_id: str) -> Connection | None: ...

    def by_inlet(self, inlet_or_connection_id: str) -> Connection | None:
        """The connection whose inlet id or connection id this is, in any org (the inlet id is the secret)."""
        ...


class DatasetLookup(Protocol):
    def dataset(self, sandbox_id: str, dataset_id: str) -> DatasetInfo | None: ...


class StreamLog(Protocol):
    """The durable, append-only log of accepted messages."""

    #: Tells this log apart from another host's (consumer offsets are kept per log).
    log_id: str

    def append(self, entries: Sequence[LogEntry]) -> list[int]:
        """Append durably (on disk when this returns) and give each entry's ``seq``, in order."""
        ...

    def read(self, after: int, limit: int) -> list[LoggedMessage]:
        """Messages with ``seq > after``, oldest first, at most ``limit``."""
        ...

    def last_seq(self) -> int:
        """The highest ``seq`` ever given (0 for an empty log), pruned messages included."""
        ...

    def carrying(self, sandbox_id: str, keys: Collection[str], after: int,
                 through: int | None = None) -> Sequence[LoggedMessage]:
        """The sandbox's messages with ``after < seq <= through`` (no bound when None) whose record carries one
        of the identity ``keys``, oldest first (``profiles.overlay.StreamedRecords``)."""
        ...

    def prune(self, through: int, keep: Mapping[str, int] | None = None) -> int:
        """Forget the messages up to ``through``, which every consumer has applied, but those of a dataset of
        ``keep`` above its floor (what profile builds do not hold yet); how many went."""
        ...


class LakeSink(Protocol):
    """Where the flusher writes: lake batches of each dataset, and its offset in the same transaction."""

    def offset(self, consumer: str) -> int: ...

    def write(self, consumer: str, batches: Sequence[StreamBatch], through: int) -> list[str]:
        """Publish ``batches`` and set ``consumer``'s offset to ``through`` atomically: after a crash either
        all of them and the new offset are visible, or none and the old offset. Returns the ids of the
        batches that succeeded."""
        ...

    def exclusive(self) -> AbstractContextManager[bool]:
        """Holds the right to flush this log (one flusher at a time); yields False when another has it."""
        ...

    def request_builds(self, *, now: bool = False) -> None:
        """Ask for the profile builds that flushed batches wait for, once the interval since the last request
        has passed (``now``: at once). Called on every poll of the flusher."""
        ...

    def unbuilt(self) -> Mapping[str, int]:
        """Per dataset feeding profile builds, the watermark of its sandbox's least recent build (the log keeps
        the dataset's messages above it: lookups lay them over the build until a build holds them)."""
        ...


@dataclass(frozen=True)
class BaseProfile:
    """A profile as the last complete profile build holds it (``row`` None: the build has no such profile)."""

    profile_id: str
    row: dict[str, Any] | None
    events: list[dict[str, Any]]
    #: The highest log ``seq`` the build holds (its streamed batches' ``openseg:streamSeq.last``).
    watermark: int
    #: Its fragments unmerged, under ``dataSetPrecedence`` (the overlay ranks streamed ones among them).
    fragments: tuple[BuiltFragment, ...] = ()


class Position(Protocol):
    @property
    def after(self) -> int: ...

    @property
    def through(self) -> int: ...


class Memberships(Protocol):
    """One membership store, as streaming segmentation reads and writes it (``membership.MembershipStore``)."""

    @property
    def root(self) -> Path: ...

    def lookup(self, state: Any, profile_ids: Sequence[str]) -> Mapping[str, Mapping[str, Pair]]: ...

    def apply(self, state: Any, evaluations: Mapping[str, Mapping[str, bool]], at: dt.datetime,
              position: LogRange | None = None) -> list[dict[str, Any]]:
        """Move each pair by the membership rule and record ``position`` with the changes, atomically."""
        ...

    def log_position(self, consumer: str) -> Position | None:
        """The newest position ``consumer`` recorded here."""
        ...


class SegmentationTarget(Protocol):
    """What streaming segmentation reads and writes: continuous definitions, the last profile build, the
    membership store (and its own progress, for messages that touched no membership)."""

    def continuous(self, sandbox_id: str) -> list[ContinuousDefinition]:
        """The sandbox's definitions with ``evaluationInfo.continuous.enabled``."""
        ...

    def is_profile_source(self, sandbox_id: str, dataset_id: str) -> bool:
        """Whether profile builds read the dataset (profile-enabled, not a union dataset)."""
        ...

    def watermark(self, sandbox_id: str, policy_id: str) -> int | None:
        """The highest log ``seq`` the policy's last build holds (None: the policy has no build)."""
        ...

    def precedence(self, sandbox_id: str, policy_id: str) -> tuple[str, ...]:
        """Under ``dataSetPrecedence``, the policy's dataset order as its last build merged by; else empty."""
        ...

    def linked(self, sandbox_id: str, policy_id: str) -> bool:
        """Whether the policy links identities into profiles (``identityGraph: pdg``)."""
        ...

    def part(self, sandbox_id: str, policy_id: str, namespace: str, identity: str) -> Part | None:
        """The profile of the policy's last build holding the identity, with all its identities (None: none)."""
        ...

    def parts(self, sandbox_id: str, policy_id: str, pairs: Sequence[tuple[str, str]]) -> dict[str, Part | None]:
        """:meth:`part` of each ``(namespace, id)`` pair, by identity key, in one read (empty when the policy has
        no build): a micro-batch resolves its messages' identities together."""
        ...

    def profiles(self, sandbox_id: str, policy_id: str, profile_ids: Sequence[str],
                 fields: Collection[str] | None = None, since: dt.datetime | None = None) -> dict[str, BaseProfile]:
        """The profiles of the policy's last build by id, in one read (an id the build lacks: ``row`` None,
        no events). Empty when the policy has no build. ``fields``: the top-level fields the caller reads
        (``CompiledSegments.fields``); rows and events may then hold only those and what the overlay merges
        by (None: every field). ``since``: events older than this count for nothing the caller evaluates
        (``CompiledSegments.since``) and may be left out (None: every event)."""
        ...

    def pinned(self) -> AbstractContextManager[None]:
        """Within, each read of the stores' metadata (definitions, a policy's last build and watermark) is made
        once and kept: one micro-batch, or one edge request, sees one build."""
        ...

    def membership(self, sandbox_id: str, policy_id: str) -> tuple[Memberships, Any]:
        """The membership store of (sandbox, policy) and its current state."""
        ...

    def published(self) -> list[tuple[str, str, str]]:
        """``(sandbox, policy, state)`` of every membership store a job has published to (``state`` changes
        with each job)."""
        ...

    def members(self, sandbox_id: str, policy_id: str, segment_ids: Sequence[str]) -> set[str]:
        """The profiles the published job membership has in any of ``segment_ids``."""
        ...

    def memberships(self) -> Sequence[Memberships]:
        """Every membership store there is (where a consumer's positions are looked for)."""
        ...

    def progress(self, consumer: str) -> int:
        """The log ``seq`` through which ``consumer`` has applied everything (0: none)."""
        ...

    def record_progress(self, consumer: str, through: int) -> None:
        """Remember (durably) that ``consumer`` has applied everything through ``through``."""
        ...


class DueIndex(Protocol):
    """When each (profile, continuous segment) is next evaluated without new data: one due time per pair."""

    def schedule(self, dues: Mapping[DueKey, int | None]) -> None:
        """Set each pair's due time (epoch ms), replacing the one it had; None removes the pair. Durable when
        this returns."""
        ...

    def due(self, through_ms: int, limit: int) -> list[tuple[DueKey, int]]:
        """The pairs due at or before ``through_ms``, earliest first, at most ``limit``."""
        ...

    def next_due(self) -> int | None:
        """The earliest due time (None: nothing scheduled)."""
        ...

    def scheduled_jobs(self) -> dict[tuple[str, str], str]:
        """The job membership (its pointer) whose members were last all given due times, by (sandbox, merge
        policy): a restarted streamer does not give them due times again."""
        ...

    def record_scheduled_job(self, sandbox_id: str, policy_id: str, pointer: str) -> None:
        """Every member of the job membership ``pointer`` of a store has its due times. Durable when this returns."""
        ...
