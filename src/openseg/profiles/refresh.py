"""Keeping a merged profile store up to date as batches land: nothing, an increment, or a full build.

:func:`refresh_profile_store` compares the current sources with the manifest of the published build:

- the same sources (same files, same fingerprints) and the same policy: nothing to do;
- the previous sources, unchanged, followed in ingest order by new ones: an incremental update
  (:mod:`openseg.profiles.incremental`) that recomputes only the profiles the new records touch, on an engine
  that runs in this process (DuckDB: the update splices the recomputed rows into the files here); on any other
  (Spark) a full build;
- anything else (a source removed or rewritten, as erasing a profile does; a source that sorts before
  one already read; another policy or policy version; a build from an older format): a full build.

Whichever path runs, the published store is the one :func:`~openseg.profiles.build.build_profile_store`
would build from the same sources: the incremental update falls back to a full build whenever it
cannot guarantee that (a new source changing the unified schema or a namespace's display spelling, or
touching too many profiles for an update to pay off).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from openseg.profiles.build import SPILL_DIR, BuildStats, build_profile_store, write_build
from openseg.profiles.incremental import FullRebuildRequired, update_store
from openseg.profiles.manifest import FORMAT_VERSION, source_entry
from openseg.profiles.merge_policy import MergePolicySpec
from openseg.profiles.sources import SourceFile, ingest_order
from openseg.profiles.store import (
    EVENT_RIDS_FILE,
    FRAGMENTS_FILE,
    MANIFEST_FILE,
    StoreNotFoundError,
    keeps_fragments,
    resolve_store,
)

if TYPE_CHECKING:
    from openseg.engines.base import Engine

_log = logging.getLogger(__name__)

DEFAULT_MAX_TOUCHED_SHARE = 0.25
"""Past this share of the profiles recomputed, an update costs about as much as a full build."""


@dataclass(frozen=True)
class RefreshPlan:
    """What a refresh will do.

    Attributes:
        kind: ``"unchanged"``, ``"incremental"`` or ``"full"``.
        reason: Why, in words (logged).
        previous: The published build directory (None when there is none).
        manifest: Its manifest (None when there is none).
        old_count: How many of the ordered sources the previous build read (incremental only).
    """

    kind: Literal["unchanged", "incremental", "full"]
    reason: str
    previous: Path | None = None
    manifest: dict[str, Any] | None = None
    old_count: int = 0


def plan_refresh(out_dir: Path, entries: Sequence[dict[str, Any]], policy: MergePolicySpec) -> RefreshPlan:
    """Decide how to bring the store at ``out_dir`` up to date.

    Args:
        out_dir: The store path.
        entries: The current sources as manifest entries (:func:`openseg.profiles.manifest.source_entry`),
            in ingest order.
        policy: The merge policy to apply.

    Returns:
        The plan (see the module docstring).
    """
    try:
        previous = resolve_store(out_dir)
    except StoreNotFoundError:
        return RefreshPlan("full", "no store was built yet")
    with open(previous / MANIFEST_FILE, encoding="utf-8") as handle:
        manifest: dict[str, Any] = json.load(handle)
    if manifest.get("formatVersion") != FORMAT_VERSION or not (previous / EVENT_RIDS_FILE).is_file():
        return RefreshPlan("full", f"the store was built in format {manifest.get('formatVersion')}")
    if manifest["policy"] != policy.to_dict():
        return RefreshPlan("full", "the merge policy changed")
    if keeps_fragments(policy.identity_graph, policy.attribute_merge) and not (previous / FRAGMENTS_FILE).is_file():
        return RefreshPlan("full", "the store was built without its fragments")
    read: list[dict[str, Any]] = manifest["sources"]
    if list(entries[: len(read)]) != read:
        return RefreshPlan("full", "a source was removed, rewritten or sorts before an earlier one")
    if len(entries) == len(read):
        return RefreshPlan("unchanged", "the sources are unchanged", previous, manifest)
    return RefreshPlan("incremental", f"{len(entries) - len(read)} new sources", previous, manifest, len(read))


def refresh_profile_store(
    sources: Sequence[SourceFile],
    policy: MergePolicySpec,
    out_dir: Path,
    *,
    engine: Engine,
    memory_limit: str | None = None,
    max_touched_share: float = DEFAULT_MAX_TOUCHED_SHARE,
) -> BuildStats:
    """Bring the merged profile store of ``policy`` at ``out_dir`` up to date with ``sources``.

    The result is always the store :func:`~openseg.profiles.build.build_profile_store` would build
    from ``sources``; only the work differs (see the module docstring). A new store is published
    atomically, as a full build publishes it; when nothing changed, nothing is written.

    Args:
        sources: Every file of every successful batch, fragments and events, in any order.
        policy: The merge policy to apply.
        out_dir: The store path (``{home}/profiles/{sandboxId}/{mergePolicyId}``).
        engine: Runs the statements and writes the files.
        memory_limit: The most memory a build may use, such as ``"3GB"`` (default: the engine's).
        max_touched_share: The largest share of the existing profiles an incremental update may
            recompute before a full build is preferred.

    Returns:
        The statistics of the store now published, with ``refresh`` telling which path ran. For
        ``"unchanged"`` they are the existing build's, with the time of the check as ``seconds``.

    Raises:
        SchemaConflictError: If two files hold incompatible types for one field.
    """
    started = time.perf_counter()
    ordered = ingest_order(sources)
    entries = [source_entry(s) for s in ordered]
    out_dir = Path(out_dir)
    plan = plan_refresh(out_dir, entries, policy)
    _log.info("profile refresh of %s: %s (%s)", out_dir, plan.kind, plan.reason)
    if plan.kind == "unchanged" and plan.manifest is not None:
        stats = BuildStats.from_dict(plan.manifest["stats"])
        return replace(stats, refresh="unchanged", seconds=round(time.perf_counter() - started, 3))
    if plan.kind == "incremental" and plan.previous is not None and plan.manifest is not None:
        if not engine.in_process:
            # The update splices the recomputed profiles' rows into the sorted files in this process; an
            # engine that spreads them over executors (Spark) rebuilds instead, and its executors write.
            _log.info("profile refresh of %s: full build instead (%s splices nothing in this process)",
                      out_dir, engine.name)
            return build_profile_store(ordered, policy, out_dir, engine=engine, memory_limit=memory_limit)
        try:
            return _update(plan, ordered, entries, policy, out_dir, engine, memory_limit, max_touched_share, started)
        except FullRebuildRequired as reason:
            _log.info("profile refresh of %s: full build instead (%s)", out_dir, reason)
    return build_profile_store(ordered, policy, out_dir, engine=engine, memory_limit=memory_limit)


def _update(
    plan: RefreshPlan,
    ordered: list[SourceFile],
    entries: list[dict[str, Any]],
    policy: MergePolicySpec,
    out_dir: Path,
    engine: Engine,
    memory_limit: str | None,
    max_touched_share: float,
    started: float,
) -> BuildStats:
    assert plan.previous is not None and plan.manifest is not None
    previous, manifest = plan.previous, plan.manifest

    def produce(staging: Path) -> tuple[BuildStats, dict[str, pa.Schema]]:
        with engine.with_limits(memory_limit, staging / SPILL_DIR).workspace() as workspace:
            return update_store(workspace, previous, manifest, ordered, plan.old_count, policy, staging,
                                max_touched_share)

    return write_build(out_dir, entries, policy, produce, started=started)
