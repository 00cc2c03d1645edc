"""The profile store of each sandbox and merge policy, rebuilt from the catalog when batches land."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openseg.catalog.service import Scope, dataset_kind, is_profile_enabled
from openseg.clock import ms_to_datetime, now_ms, rfc3339
from openseg.errors import Conflict
from openseg.profiles import policies
from openseg.profiles.refresh import refresh_profile_store
from openseg.profiles.sources import SourceFile
from openseg.profiles.store import StoreNotFoundError, resolve_store
from openseg.profiles.union_schema import union_schema
from openseg.store.models import Batch, DataFile, Dataset, MergePolicy, ProfileStore, WorkItem
from openseg.worker.queue import QUEUED, RUNNING, enqueue
from openseg.xdm.schema import Schema

if TYPE_CHECKING:
    from openseg.services import Services

log = logging.getLogger("openseg.profiles")

BUILD_PROFILES = "build_profiles"


def store_path(profiles_dir: Path, sandbox_id: str, policy_id: str) -> Path:
    return profiles_dir / sandbox_id / policy_id


def _source_datasets(session: Session, sandbox_id: str) -> dict[str, Dataset]:
    """The sandbox's profile-enabled profile and event datasets, by id."""
    return {
        d.id: d for d in session.scalars(select(Dataset).where(Dataset.sandbox_id == sandbox_id))
        if is_profile_enabled(d) and dataset_kind(d) in ("profile", "event")
    }


def profile_sources(session: Session, sandbox_id: str) -> list[SourceFile]:
    """Every file of every successful batch of the sandbox's profile-enabled datasets."""
    datasets = _source_datasets(session, sandbox_id)
    if not datasets:
        return []
    rows = session.execute(
        select(DataFile, Batch.completed)
        .join(Batch, Batch.id == DataFile.batch_id)
        .where(DataFile.dataset_id.in_(datasets), Batch.status == "success")
        .order_by(Batch.completed, DataFile.id)
    )
    return [
        SourceFile(path=f.path, dataset_id=f.dataset_id, batch_id=f.batch_id,
                   ingest_time=ms_to_datetime(completed or f.created),
                   kind="event" if dataset_kind(datasets[f.dataset_id]) == "event" else "profile")
        for f, completed in rows
    ]


def request_build(session: Session, sandbox_id: str) -> None:
    """Queue a rebuild of the sandbox's stores unless one is already waiting."""
    waiting = session.scalars(select(WorkItem.id).where(WorkItem.kind == BUILD_PROFILES,
                                                        WorkItem.ref_id == sandbox_id,
                                                        WorkItem.status == QUEUED)).first()
    if waiting is None:
        enqueue(session, BUILD_PROFILES, sandbox_id)


def after_batch(services: Services, batch_id: str) -> None:
    """Batch hook: a successful batch of a profile-enabled dataset refreshes the sandbox's profiles."""
    with services.db.session() as session:
        batch = session.get(Batch, batch_id)
        dataset = session.get(Dataset, batch.dataset_id) if batch else None
        if batch is not None and dataset is not None and is_profile_enabled(dataset) \
                and dataset_kind(dataset) != "union":
            request_build(session, batch.sandbox_id)


def build_sandbox(services: Services, sandbox_id: str,
                  policy_ids: list[str] | None = None) -> dict[str, dict[str, object]]:
    """Build the merged profile store of every merge policy of the sandbox (or of ``policy_ids``)."""
    with services.db.session() as session:
        sources = profile_sources(session, sandbox_id)
        query = select(MergePolicy).where(MergePolicy.sandbox_id == sandbox_id)
        found = list(session.scalars(query))
        if not found:
            sandbox_org = _org_of(session, sandbox_id)
            found = [policies.ensure_default(session, Scope(sandbox_org, sandbox_id))]
        chosen = [(p.id, policies.spec_of(p)) for p in found if policy_ids is None or p.id in policy_ids]
    results: dict[str, dict[str, object]] = {}
    for policy_id, spec in chosen:
        path = store_path(services.settings.profiles_dir, sandbox_id, policy_id)
        # Incremental when only new batches arrived; a full rebuild when anything else changed.
        stats = refresh_profile_store(sources, spec, path, engine=services.engine(),
                                      memory_limit=services.settings.build_memory_limit)
        results[policy_id] = stats.to_dict()
        with services.db.session() as session:
            record = session.get(ProfileStore, policy_id)
            if stats.refresh == "unchanged" and record is not None and record.policy_version == spec.version:
                continue
            if record is None:
                record = ProfileStore(merge_policy_id=policy_id, sandbox_id=sandbox_id)
                session.add(record)
            record.path = str(path)
            record.policy_version = spec.version
            if stats.refresh != "unchanged" or record.built_at is None:
                record.built_at = now_ms()
            record.stats = results[policy_id]
    return results


def _org_of(session: Session, sandbox_id: str) -> str:
    from openseg.store.models import Sandbox

    sandbox = session.get(Sandbox, sandbox_id)
    assert sandbox is not None
    return sandbox.org_id


def run_build(services: Services, item: WorkItem) -> None:
    """Worker handler for ``build_profiles``."""
    build_sandbox(services, item.ref_id)


def ensure_store(services: Services, scope: Scope, policy: MergePolicy) -> Path:
    """The built store of ``policy``; built now if it is missing or older than the policy's version.

    For worker jobs only (segment and export jobs may wait for a build); a request reads
    :func:`serving_store`, which serves the last complete build and leaves building to the worker.
    """
    with services.db.session() as session:
        record = session.get(ProfileStore, policy.id)
        fresh = record is not None and record.path and record.policy_version == policy.version
    path = store_path(services.settings.profiles_dir, scope.sandbox_id, policy.id)
    if not fresh or _resolved(path) is None:
        build_sandbox(services, scope.sandbox_id, [policy.id])
    return path


class ProfileStoreNotBuilt(Conflict):
    """A merge policy's profile store has no complete build yet; one is queued or under way.

    ``has_data`` says whether the sandbox has any profile data to build from: without any, every identity
    is unknown whatever the build, so a lookup answers 404 rather than this 409.
    """

    def __init__(self, detail: str, *, report: dict[str, Any], has_data: bool) -> None:
        super().__init__(detail, report=report)
        self.has_data = has_data


@dataclass(frozen=True)
class ServingStore:
    """The last complete build of a merge policy's profile store, as a request reads it.

    Attributes:
        path: The build directory (already resolved: it stays the same build for the whole request).
        built_at: When that build was published (UTC), if the metadata store knows.
        stale: Whether a build with newer data or a newer policy version is queued or running.
    """

    path: Path
    built_at: datetime | None
    stale: bool

    def to_json(self) -> dict[str, Any]:
        """``{"stale": bool, "builtAt": RFC 3339 text or null}``, as responses report the build they read."""
        return {"stale": self.stale, "builtAt": rfc3339(self.built_at) if self.built_at is not None else None}


def serving_store(services: Services, scope: Scope, policy: MergePolicy, *, build_empty: bool = False) -> ServingStore:
    """The store a request reads: the last complete build of ``policy``, which a request does not rebuild.

    The build is stale when a build of the sandbox is queued or running, when the policy changed since
    the build, or when a batch of a profile source succeeded after it. A stale build is served, and a
    build is queued unless one is already queued or running (the worker runs it). A policy with no build
    at all answers 409 (a new policy's build was queued when it was created), unless the sandbox has no
    profile data at all and ``build_empty`` asks for the empty store then (it reads nothing; previews).

    Raises:
        ProfileStoreNotBuilt: If the policy has no complete build yet (a 409); a build is queued.
    """
    path = store_path(services.settings.profiles_dir, scope.sandbox_id, policy.id)
    with services.db.session() as session:
        record = session.get(ProfileStore, policy.id)
        built_at = record.built_at if record is not None else None
        pending = _build_pending(session, scope.sandbox_id)
        newest = _newest_source_batch(session, scope.sandbox_id)
        resolved = _resolved(path)
        behind = record is None or record.policy_version != policy.version or newest > (built_at or 0)
        empty = resolved is None and newest == 0 and build_empty
        if (resolved is None or behind) and pending is None and not empty:
            request_build(session, scope.sandbox_id)
    if empty:
        # A sandbox without any profile data: its store of nobody reads no file and takes milliseconds to
        # write, so a first preview answers "nobody" rather than 409.
        build_sandbox(services, scope.sandbox_id, [policy.id])
        with services.db.session() as session:
            record = session.get(ProfileStore, policy.id)
            built_at = record.built_at if record is not None else None
        resolved, behind = _resolved(path), False
    if resolved is None:
        state = pending or QUEUED
        raise ProfileStoreNotBuilt(
            f"merge policy '{policy.id}' has no profile store yet: a build is {state}; retry when it completes",
            report={"mergePolicyId": policy.id, "profileBuild": state}, has_data=newest > 0)
    return ServingStore(resolved, ms_to_datetime(built_at) if built_at is not None else None,
                        pending is not None or behind)


def _resolved(path: Path) -> Path | None:
    try:
        return resolve_store(path)
    except StoreNotFoundError:
        return None


def _build_pending(session: Session, sandbox_id: str) -> str | None:
    """``"running"`` or ``"queued"`` when a build of the sandbox is under way or waiting, else None."""
    states = set(session.scalars(select(WorkItem.status).where(WorkItem.kind == BUILD_PROFILES,
                                                               WorkItem.ref_id == sandbox_id,
                                                               WorkItem.status.in_((QUEUED, RUNNING)))))
    return RUNNING if RUNNING in states else QUEUED if states else None


def _newest_source_batch(session: Session, sandbox_id: str) -> int:
    """When the sandbox's newest successful batch holding profile-source files completed (ms; 0 if none)."""
    datasets = _source_datasets(session, sandbox_id)
    if not datasets:
        return 0
    newest = session.scalar(select(func.max(Batch.completed)).join(DataFile, DataFile.batch_id == Batch.id)
                            .where(DataFile.dataset_id.in_(datasets), Batch.status == "success"))
    return int(newest or 0)


def sandbox_schema(services: Services, scope: Scope) -> Schema:
    """Standard XDM plus the fields of every successful batch of the sandbox's profile-enabled datasets."""
    with services.db.session() as session:
        sources = profile_sources(session, scope.sandbox_id)
    return union_schema(sources)
