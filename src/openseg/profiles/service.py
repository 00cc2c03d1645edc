"""The profile store of each sandbox and merge policy, rebuilt from the catalog when batches land."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from openseg.atomic_files import locked
from openseg.clock import ms_to_datetime, now_ms, rfc3339
from openseg.errors import Conflict
from openseg.profiles.defaults import default_policy
from openseg.profiles.merge_policy import MergePolicySpec
from openseg.profiles.model import ProfileStoreRecord
from openseg.profiles.ports import (
    PolicyVersion,
    ProfileServices,
    ProfilesUnitOfWork,
    QueuedWork,
    WorkQueue,
)
from openseg.profiles.refresh import refresh_profile_store
from openseg.profiles.sources import SourceFile
from openseg.profiles.store import StoreNotFoundError, read_manifest, resolve_store, share_build
from openseg.profiles.union_schema import union_schema
from openseg.scope import Scope
from openseg.xdm.schema import Schema

log = logging.getLogger("openseg.profiles")

BUILD_PROFILES = "build_profiles"
#: The states of unfinished queue items (``worker.queue``'s names).
QUEUED, RUNNING = "queued", "running"


def store_path(profiles_dir: Path, sandbox_id: str, policy_id: str) -> Path:
    return profiles_dir / sandbox_id / policy_id


def profile_sources(uow: ProfilesUnitOfWork, sandbox_id: str) -> list[SourceFile]:
    """Every file of every successful batch of the sandbox's profile-enabled datasets."""
    return uow.profile_sources.files(sandbox_id)


def request_build(queue: WorkQueue, sandbox_id: str) -> None:
    """Queue a rebuild of the sandbox's stores (in the unit of work's ``queue``) unless one is already waiting."""
    if QUEUED not in queue.pending(BUILD_PROFILES, sandbox_id):
        queue.enqueue(BUILD_PROFILES, sandbox_id)


def after_batch(services: ProfileServices, batch_id: str) -> None:
    """Batch hook: a successful batch of a profile-enabled dataset refreshes the sandbox's profiles."""
    with services.uow() as uow:
        sandbox_id = uow.profile_sources.source_batch_sandbox(batch_id)
        if sandbox_id is not None:
            request_build(uow.work_queue, sandbox_id)
        uow.commit()


def build_sandbox(services: ProfileServices, sandbox_id: str,
                  policy_ids: list[str] | None = None) -> dict[str, dict[str, object]]:
    """Build the merged profile store of every merge policy of the sandbox (or of ``policy_ids``).

    Each policy's store is built under its lock file, from sources read inside it: builds of one store in
    several worker processes (or hosts sharing the home) run one after another, and each starts from the
    sources and the store the previous one left.

    Policies whose rules build the same store (:func:`build_rules`) share one build: the first of them in
    creation order is built or refreshed, and each other one then takes its files
    (:func:`~openseg.profiles.store.share_build`, under both locks, so no build of the first replaces them
    meanwhile). A sandbox's default policy and an edge policy with the same rules cost one build, not two (at
    1M profiles an incremental refresh of streamed events took 15 s per store)."""
    with services.uow() as uow:
        found = uow.merge_policies.in_sandbox(sandbox_id)
        if not found:
            sandbox_org = uow.profile_sources.org_of(sandbox_id)
            assert sandbox_org is not None
            found = [default_policy(uow.merge_policies, Scope(sandbox_org, sandbox_id))]
        chosen = [(p.id, p.spec()) for p in found if policy_ids is None or p.id in policy_ids]
        uow.commit()
    alike: dict[tuple[object, ...], list[tuple[str, MergePolicySpec]]] = {}
    for policy_id, spec in chosen:
        alike.setdefault(build_rules(spec), []).append((policy_id, spec))
    results: dict[str, dict[str, object]] = {}
    for (first_id, first_spec), *twins in alike.values():
        path = store_path(services.settings.profiles_dir, sandbox_id, first_id)
        with _build_lock(path):
            results[first_id], built = _build_policy(services, sandbox_id, first_id, first_spec, path)
            for twin_id, twin_spec in twins:
                twin_path = store_path(services.settings.profiles_dir, sandbox_id, twin_id)
                with _build_lock(twin_path):
                    results[twin_id] = _share_policy(services, sandbox_id, twin_id, twin_spec, twin_path, built)
    return {policy_id: results[policy_id] for policy_id, _ in chosen}


def build_rules(spec: MergePolicySpec) -> tuple[object, ...]:
    """What of a merge policy its store depends on: two policies equal in it build the same store from the same
    sources (their ids, versions, names and edge or default flags do not enter the build)."""
    return spec.identity_graph, spec.attribute_merge, spec.dataset_order


@dataclass(frozen=True)
class _Built:
    """A policy's store as a build left it: the build directory, the stream watermark its sources hold, and
    the build's results."""

    policy_id: str
    build: Path
    watermark: int
    result: dict[str, object]


@contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on building the store at ``path`` (a lock file beside it)."""
    with locked(path.with_name(f".{path.name}.build.lock")):
        yield


def _build_policy(services: ProfileServices, sandbox_id: str, policy_id: str, spec: MergePolicySpec,
                  path: Path) -> tuple[dict[str, object], _Built]:
    with services.uow() as uow:
        # Read first: a flush committing meanwhile is then in neither (not its batch in ``sources``, not its
        # messages under the watermark), so the overlay keeps laying them over this build.
        watermark = uow.profile_sources.streamed_through(sandbox_id)
        sources = profile_sources(uow, sandbox_id)
        uow.commit()
    # Incremental when only new batches arrived; a full rebuild when anything else changed.
    stats = refresh_profile_store(sources, spec, path, engine=services.engine(),
                                  memory_limit=services.settings.build_memory_limit)
    result: dict[str, object] = {**stats.to_dict(), "engine": services.engine().describe()}
    _record_build(services, sandbox_id, policy_id, spec, path, result, watermark)
    return result, _Built(policy_id, resolve_store(path), watermark, dict(result))


def _share_policy(services: ProfileServices, sandbox_id: str, policy_id: str, spec: MergePolicySpec, path: Path,
                  built: _Built) -> dict[str, object]:
    """The store of ``policy_id`` as ``built`` (another policy's, with the same rules) left it: unchanged when it
    holds that build already, else that build's files shared (:func:`build_rules`)."""
    shared = read_manifest(built.build)
    try:
        own: dict[str, Any] | None = read_manifest(path)
    except StoreNotFoundError:
        own = None
    holds = own is not None and own.get("policy") == spec.to_dict() and {**own, "policy": None} == {
        **shared, "policy": None}
    if not holds:
        share_build(built.build, path, spec.to_dict())
    result: dict[str, object] = {**built.result, "sharedWith": built.policy_id}
    if holds:
        result["refresh"] = "unchanged"
    _record_build(services, sandbox_id, policy_id, spec, path, result, built.watermark)
    return result


def _record_build(services: ProfileServices, sandbox_id: str, policy_id: str, spec: MergePolicySpec, path: Path,
                  result: dict[str, object], watermark: int) -> None:
    """Record the store of ``policy_id`` after a build whose ``result`` it is (an unchanged store keeps its
    record, with a newer watermark)."""
    with services.uow() as uow:
        record = uow.profile_stores.get(policy_id)
        if result["refresh"] == "unchanged" and record is not None and record.policy_version == spec.version:
            if watermark > record.stream_watermark:  # the build holds every source read, so all up to it
                uow.profile_stores.put(replace(record, stream_watermark=watermark))
                uow.commit()
            return
        if result["refresh"] == "unchanged" and record is not None and (record.stats or {}).get("engine"):
            result["engine"] = record.stats["engine"]  # the engine of the build it still is
        if record is None:
            record = ProfileStoreRecord(merge_policy_id=policy_id, sandbox_id=sandbox_id)
        built_at = now_ms() if result["refresh"] != "unchanged" or record.built_at is None else record.built_at
        uow.profile_stores.put(replace(record, path=str(path), policy_version=spec.version, built_at=built_at,
                                       stats=result, stream_watermark=watermark))
        uow.commit()


def run_build(services: ProfileServices, item: QueuedWork) -> None:
    """Worker handler for ``build_profiles``."""
    build_sandbox(services, item.ref_id)


def ensure_store(services: ProfileServices, scope: Scope, policy: PolicyVersion) -> Path:
    """The built store of ``policy``, holding every batch ingested so far: built or refreshed now if it is
    missing, older than the policy's version or behind the sandbox's sources (nothing is done when it is not).

    For worker jobs only (segment and export jobs may wait for a build); a request reads
    :func:`serving_store`, which serves the last complete build and leaves building to the worker. With one
    worker the queue's order has run a batch's refresh before a later job; with several, the job makes sure.
    """
    path = store_path(services.settings.profiles_dir, scope.sandbox_id, policy.id)
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
        watermark: The highest stream log ``seq`` the build holds (newer messages are laid over it).
        sources: The datasets feeding the sandbox's builds (streamed messages of others are not profiles').
    """

    path: Path
    built_at: datetime | None
    stale: bool
    watermark: int = 0
    sources: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        """``{"stale": bool, "builtAt": RFC 3339 text or null}``, as responses report the build they read."""
        return {"stale": self.stale, "builtAt": rfc3339(self.built_at) if self.built_at is not None else None}


def serving_store(services: ProfileServices, scope: Scope, policy: PolicyVersion, *,
                  build_empty: bool = False) -> ServingStore:
    """The store a request reads: the last complete build of ``policy``, which a request does not rebuild.

    The build is stale when a build of the sandbox is queued or running, when the policy changed since
    the build, or when a batch of a profile source succeeded after it. A stale build is served, and a
    build is queued unless one is already queued or running (the worker runs it), or unless only batches the
    streamer flushed are newer than the build and the build is less than twice ``OPENSEG_STREAM_BUILD_SECONDS``
    old: lookups lay their records over the build from the stream log, and the streamer asks for their build at
    that interval (reads asking too kept a 1M-profile store rebuilding back to back while events streamed). A policy with no build
    at all answers 409 (a new policy's build was queued when it was created), unless the sandbox has no
    profile data at all and ``build_empty`` asks for the empty store then (it reads nothing; previews).

    Raises:
        ProfileStoreNotBuilt: If the policy has no complete build yet (a 409); a build is queued.
    """
    path = store_path(services.settings.profiles_dir, scope.sandbox_id, policy.id)
    facts = services.lasting(("serving", scope.sandbox_id, policy.id),
                             lambda: _serving_facts(services, scope.sandbox_id, policy.id))
    record, newest, sources = facts.record, facts.newest_batch, facts.sources
    built_at = record.built_at if record is not None else None
    watermark = record.stream_watermark if record is not None else 0
    resolved = _resolved(path)
    behind = record is None or record.policy_version != policy.version or newest > (built_at or 0)
    # Newer streamed batches alone: the streamer asks for their build (a read asks once it is long overdue, as
    # after a streamer's restart).
    overdue = newest > (built_at or 0) and now_ms() - (built_at or 0) > 2_000 * services.settings.stream_build_seconds
    asks = record is None or record.policy_version != policy.version or facts.newest_ingested > (built_at or 0) \
        or overdue
    empty = resolved is None and newest == 0 and build_empty
    with services.uow() as uow:  # the queue is read now, whatever was kept of the rest
        pending = _build_pending(uow, scope.sandbox_id)
        if (resolved is None or asks) and pending is None and not empty:
            request_build(uow.work_queue, scope.sandbox_id)
        uow.commit()
    if empty:
        # A sandbox without any profile data: its store of nobody reads no file and takes milliseconds to
        # write, so a first preview answers "nobody" rather than 409.
        build_sandbox(services, scope.sandbox_id, [policy.id])
        with services.uow() as uow:
            record = uow.profile_stores.get(policy.id)
            built_at = record.built_at if record is not None else None
        resolved, behind = _resolved(path), False
    if resolved is None:
        state = pending or QUEUED
        raise ProfileStoreNotBuilt(
            f"merge policy '{policy.id}' has no profile store yet: a build is {state}; retry when it completes",
            report={"mergePolicyId": policy.id, "profileBuild": state}, has_data=newest > 0)
    return ServingStore(resolved, ms_to_datetime(built_at) if built_at is not None else None,
                        pending is not None or behind, watermark, sources)


@dataclass(frozen=True)
class _ServingFacts:
    """What serving a policy's store reads of the metadata (kept while it does not change)."""

    record: ProfileStoreRecord | None
    newest_batch: int
    sources: frozenset[str]
    #: When the newest batch ingested as a batch (not flushed from the stream log) completed.
    newest_ingested: int


def _serving_facts(services: ProfileServices, sandbox_id: str, policy_id: str) -> _ServingFacts:
    with services.uow() as uow:
        facts = _ServingFacts(uow.profile_stores.get(policy_id), uow.profile_sources.newest_batch(sandbox_id),
                              frozenset(uow.profile_sources.source_datasets(sandbox_id)),
                              uow.profile_sources.newest_batch(sandbox_id, streamed=False))
        uow.commit()
    return facts


def _resolved(path: Path) -> Path | None:
    try:
        return resolve_store(path)
    except StoreNotFoundError:
        return None


def _build_pending(uow: ProfilesUnitOfWork, sandbox_id: str) -> str | None:
    """``"running"`` or ``"queued"`` when a build of the sandbox is under way or waiting, else None."""
    states = uow.work_queue.pending(BUILD_PROFILES, sandbox_id)
    return RUNNING if RUNNING in states else QUEUED if states else None


def sandbox_schema(services: ProfileServices, scope: Scope) -> Schema:
    """Standard XDM plus the fields of every successful batch of the sandbox's profile-enabled datasets."""
    with services.uow() as uow:
        sources = profile_sources(uow, scope.sandbox_id)
    return union_schema(sources)
