"""Streaming segmentation's ``SegmentationTarget`` (``streaming/ports.py``) on the real stores: definitions
from the metadata store, profiles from each merge policy's last complete build, membership from the
membership store, and the consumer's progress in ``$OPENSEG_HOME/stream/segments.json``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from sqlalchemy import select
from sqlglot import exp

from openseg.catalog.service import dataset_kind, is_profile_enabled
from openseg.engines.parquet import matching_rows
from openseg.profiles import lookup
from openseg.profiles.keys import identity_key
from openseg.profiles.overlay import BuiltFragment, Part, Reach, record_identities
from openseg.profiles.store import EVENTS_FILE, PROFILES_FILE, StoreNotFoundError, resolve_store
from openseg.segmentation.membership import IN_STATUSES, MembershipStore, State, all_stores, store_for
from openseg.segmentation.streaming import ContinuousDefinition, is_continuous
from openseg.store.models import Dataset, ProfileStore
from openseg.streaming.ports import BaseProfile

if TYPE_CHECKING:
    from openseg.container import Services


def _rows(path: Path, profile_id: str) -> list[dict[str, Any]]:
    # The store's files are sorted by _profile_id: only the row groups that can hold it are read, in this thread,
    # with the footer read once per build.
    return list(matching_rows(path, "_profile_id", [profile_id]).to_pylist(maps_as_pydicts="strict"))


class StoresSegmentationTarget:
    """Args: services: The container (settings, metadata store)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.progress_path = services.settings.home / "stream" / "segments.json"

    def continuous(self, sandbox_id: str) -> list[ContinuousDefinition]:
        with self.services.uow() as uow:
            definitions = uow.segment_definitions.in_sandbox(sandbox_id)
            uow.commit()
        return [ContinuousDefinition(d.id, d.version, d.merge_policy_id, d.pql,
                                     tuple(str(x) for x in d.dependencies or ()))
                for d in definitions if is_continuous(d.evaluation_info)]

    def is_profile_source(self, sandbox_id: str, dataset_id: str) -> bool:
        with self.services.db.session() as session:
            dataset = session.get(Dataset, dataset_id)
            return (dataset is not None and dataset.sandbox_id == sandbox_id and is_profile_enabled(dataset)
                    and dataset_kind(dataset) != "union")

    def _build(self, policy_id: str) -> tuple[Path, int] | None:
        """The policy's last build and its watermark (the highest log ``seq`` it holds)."""
        with self.services.uow() as uow:
            record = uow.profile_stores.get(policy_id)
            uow.commit()
        if record is None or record.path is None:
            return None
        try:
            return resolve_store(record.path), record.stream_watermark
        except StoreNotFoundError:
            return None

    def watermark(self, sandbox_id: str, policy_id: str) -> int | None:
        build = self._build(policy_id)
        return None if build is None else build[1]

    def precedence(self, sandbox_id: str, policy_id: str) -> tuple[str, ...]:
        build = self._build(policy_id)
        return () if build is None else lookup.precedence(build[0])

    def linked(self, sandbox_id: str, policy_id: str) -> bool:
        build = self._build(policy_id)
        return build is None or lookup.identity_graph(build[0]) == "pdg"

    def part(self, sandbox_id: str, policy_id: str, namespace: str, identity: str) -> Part | None:
        build = self._build(policy_id)
        if build is None:
            return None
        engine = self.services.reader()
        profile_id = lookup.resolve_profile_id(build[0], namespace, identity, engine=engine)
        if profile_id is None:
            return None
        identities = lookup.get_profile_identities(build[0], namespace, identity, engine=engine)
        return Part(profile_id, tuple(identities or [(namespace, identity)]))

    def base(self, sandbox_id: str, policy_id: str, identities: Sequence[tuple[str, str]]) -> BaseProfile | None:
        build = self._build(policy_id)
        if build is None:
            return None
        store, watermark = build
        for namespace, identity in identities:
            profile_id = lookup.resolve_profile_id(store, namespace, identity, engine=self.services.reader())
            if profile_id is not None:
                rows = _rows(store / PROFILES_FILE, profile_id)
                events = sorted(_rows(store / EVENTS_FILE, profile_id),
                                key=lambda e: (e.get("timestamp") is None, e.get("timestamp"), e.get("_id") or ""))
                return BaseProfile(profile_id, rows[0] if rows else None, events, watermark)
        # A profile the build does not know yet: keyed by its smallest key, as a build would key it.
        new_id = min(identity_key(namespace, identity) for namespace, identity in identities)
        return BaseProfile(new_id, None, [], watermark)

    def profiles(self, sandbox_id: str, policy_id: str, profile_ids: Sequence[str]) -> dict[str, BaseProfile]:
        build = self._build(policy_id)
        if build is None or not profile_ids:
            return {}
        store, watermark = build
        wanted = list(profile_ids)
        rows = {row["_profile_id"]: row for row in matching_rows(store / PROFILES_FILE, "_profile_id", wanted)
                .to_pylist(maps_as_pydicts="strict")}
        events: dict[str, list[dict[str, Any]]] = {}
        for event in matching_rows(store / EVENTS_FILE, "_profile_id", wanted).to_pylist(maps_as_pydicts="strict"):
            events.setdefault(event["_profile_id"], []).append(event)
        ranked = bool(self.precedence(sandbox_id, policy_id))
        return {profile_id: BaseProfile(profile_id, rows.get(profile_id), sorted(
                    events.get(profile_id, []),
                    key=lambda e: (e.get("timestamp") is None, e.get("timestamp"), e.get("_id") or "")), watermark,
                    self._fragments(store, profile_id, rows.get(profile_id)) if ranked else ())
                for profile_id in profile_ids}

    def _fragments(self, store: Path, profile_id: str, row: dict[str, Any] | None) -> tuple[BuiltFragment, ...]:
        """The built fragments of one profile (those anchored in its identities), for ``dataSetPrecedence``."""
        identities = record_identities(row) if row is not None else []
        found = Reach(profile_id, tuple(identities), (Part(profile_id, tuple(identities)),), (),
                      stitched=lookup.identity_graph(store) == "pdg")
        return tuple(lookup.parts_fragments(found, store, self.services.reader()))

    def membership(self, sandbox_id: str, policy_id: str) -> tuple[MembershipStore, State | None]:
        store = store_for(self.services.settings.home, sandbox_id, policy_id)
        with self.services.uow() as uow:
            record = uow.profile_stores.get(policy_id)
            uow.commit()
        return store, store.state(record.membership_path if record else None)

    def published(self) -> list[tuple[str, str, str]]:
        with self.services.db.session() as session:
            rows = session.execute(select(ProfileStore.sandbox_id, ProfileStore.merge_policy_id,
                                          ProfileStore.membership_path)
                                   .where(ProfileStore.membership_path.is_not(None))).all()
        return [(sandbox_id, policy_id, str(pointer)) for sandbox_id, policy_id, pointer in rows]

    def members(self, sandbox_id: str, policy_id: str, segment_ids: Sequence[str]) -> set[str]:
        store, state = self.membership(sandbox_id, policy_id)
        if state is None or not segment_ids:
            return set()
        with duckdb.connect() as con, store.reading():
            store.register_long_form(con, state, "members", segment_ids)
            query = exp.select(exp.column("_profile_id")).distinct().from_("members").where(
                exp.column("status").isin(*(exp.Literal.string(s) for s in IN_STATUSES)))
            return {row[0] for row in con.execute(query.sql("duckdb")).fetchall()}

    def memberships(self) -> list[MembershipStore]:
        return all_stores(self.services.settings.home)

    def progress(self, consumer: str) -> int:
        if not self.progress_path.is_file():
            return 0
        return int(json.loads(self.progress_path.read_text()).get(consumer, 0))

    def record_progress(self, consumer: str, through: int) -> None:
        saved = json.loads(self.progress_path.read_text()) if self.progress_path.is_file() else {}
        saved[consumer] = through
        self.progress_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.progress_path.with_suffix(".json.partial")
        with partial.open("w") as handle:
            json.dump(saved, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, self.progress_path)
