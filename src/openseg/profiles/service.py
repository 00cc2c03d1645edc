"""The profile store of each sandbox and merge policy, rebuilt from the catalog when batches land."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from openseg.catalog.service import Scope, dataset_kind, is_profile_enabled
from openseg.clock import ms_to_datetime, now_ms
from openseg.profiles import policies
from openseg.profiles.refresh import refresh_profile_store
from openseg.profiles.sources import SourceFile
from openseg.profiles.store import StoreNotFoundError, resolve_store
from openseg.profiles.union_schema import union_schema
from openseg.store.models import Batch, DataFile, Dataset, MergePolicy, ProfileStore, WorkItem
from openseg.worker.queue import QUEUED, enqueue
from openseg.xdm.schema import Schema

if TYPE_CHECKING:
    from openseg.services import Services

log = logging.getLogger("openseg.profiles")

BUILD_PROFILES = "build_profiles"


def store_path(profiles_dir: Path, sandbox_id: str, policy_id: str) -> Path:
    return profiles_dir / sandbox_id / policy_id


def profile_sources(session: Session, sandbox_id: str) -> list[SourceFile]:
    """Every file of every successful batch of the sandbox's profile-enabled datasets."""
    datasets = {
        d.id: d for d in session.scalars(select(Dataset).where(Dataset.sandbox_id == sandbox_id))
        if is_profile_enabled(d) and dataset_kind(d) in ("profile", "event")
    }
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
        stats = refresh_profile_store(sources, spec, path, memory_limit=services.settings.build_memory_limit)
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
    """The built store of ``policy``; built now if it is missing or older than the policy's version."""
    with services.db.session() as session:
        record = session.get(ProfileStore, policy.id)
        fresh = record is not None and record.path and record.policy_version == policy.version
    path = store_path(services.settings.profiles_dir, scope.sandbox_id, policy.id)
    if not fresh or not _built(path):
        build_sandbox(services, scope.sandbox_id, [policy.id])
    return path


def _built(path: Path) -> bool:
    try:
        resolve_store(path)
    except StoreNotFoundError:
        return False
    return True


def sandbox_schema(services: Services, scope: Scope) -> Schema:
    """Standard XDM plus the fields of every successful batch of the sandbox's profile-enabled datasets."""
    with services.db.session() as session:
        sources = profile_sources(session, scope.sandbox_id)
    return union_schema(sources)
