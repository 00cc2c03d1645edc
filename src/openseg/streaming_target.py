"""Streaming segmentation's ``SegmentationTarget`` (``streaming/ports.py``) on the real stores: definitions
from the metadata store, profiles from each merge policy's last complete build, membership from the
membership store, and the consumer's progress in ``$OPENSEG_HOME/stream/segments.json``."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
from sqlalchemy import select
from sqlglot import exp

from openseg.arrow_rows import python_rows
from openseg.catalog.service import dataset_kind, is_profile_enabled
from openseg.engines.parquet import matching_rows, read_columns
from openseg.profiles import lookup
from openseg.profiles.keys import identity_key, identity_pairs
from openseg.profiles.model import ProfileStoreRecord
from openseg.profiles.overlay import BuiltFragment, Part, Reach, record_identities
from openseg.profiles.store import PROFILES_FILE, StoreNotFoundError, event_files, resolve_store
from openseg.segmentation.membership import IN_STATUSES, MembershipStore, State, all_stores, store_for
from openseg.segmentation.streaming import ContinuousDefinition, is_streamed
from openseg.store.models import Dataset, ProfileStore
from openseg.streaming.ports import BaseProfile

if TYPE_CHECKING:
    from openseg.container import Services

T = TypeVar("T")
#: What a profile row must hold beside the fields definitions read: what the overlay merges and keys by.
ROW_FIELDS = ("_profile_id", "identityMap", "_lastModifiedAt", "_sources", "_hasProfileRecord")
#: What an event must hold beside them: what the overlay orders and deduplicates by.
EVENT_FIELDS = ("_profile_id", "_id", "timestamp")


def _rows(path: Path, profile_ids: Sequence[str], fields: Collection[str] | None = None,
          kept: Sequence[str] = (), since: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The rows of ``profile_ids`` in a store file, with only ``fields`` (and ``kept``) when given; with
    ``since``, only the events of that time or later (and those without a time).

    The store's files are sorted by _profile_id: only the row groups that can hold them are read, in this
    thread, with the footer read once per build; only the columns asked for are decoded (at 1M profiles an event
    row group of 100,000 rows took about 40 ms whole and 11 ms for the few columns a definition reads; the store
    now writes them in groups of 16,384: 1.8 ms)."""
    stat = os.stat(path)  # once: each read below keys the file's version by it
    present = read_columns(path, stat)
    columns = None if fields is None else [name for name in present if name in fields or name in kept]
    newer = ("timestamp", since) if since is not None and "timestamp" in present else None
    table = matching_rows(path, "_profile_id", list(profile_ids), columns, newer=newer, stat=stat)
    return python_rows(table)


#: The reads a process keeps across pinned scopes (requests, chunks) while the metadata generation stays where
#: it was when they were read: metadata rows, and what a build's directory says of itself (never rewritten).
#: Others ("build", the directory a store's pointer names now) are kept for one scope only.
LASTING = frozenset({"continuous", "source", "record", "precedence", "graph", "dataset", "synchronous", "datastream",
                     "policies"})


class StoresSegmentationTarget:
    """Args: services: The container (settings, metadata store)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.progress_path = services.settings.home / "stream" / "segments.json"
        self._local = threading.local()

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """One consistent view for the calls inside: each read once. Metadata reads (:data:`LASTING`) outlast
        the scope while no commit has changed lasting metadata since (``Database.generation``, read on entry:
        what is read after it is at least that new)."""
        if getattr(self._local, "memo", None) is not None:  # already pinned by the caller
            yield
            return
        self._local.lasting = self.services.db.kept.at(self.services.db.generation())
        self._local.memo = {}
        try:
            yield
        finally:
            self._local.memo = self._local.lasting = None

    def kept(self, key: tuple[str, ...], read: Callable[[], T]) -> T:
        """``read()``, made once per key while :meth:`pinned` (in this thread), else every time."""
        memo: dict[tuple[str, ...], Any] | None = getattr(self._local, "memo", None)
        if memo is None:
            return read()
        if key[0] in LASTING:
            memo = self._local.lasting
        if key not in memo:
            memo[key] = read()
        found: T = memo[key]
        return found

    def continuous(self, sandbox_id: str) -> list[ContinuousDefinition]:
        return self.kept(("continuous", sandbox_id), lambda: self._continuous(sandbox_id))

    def _continuous(self, sandbox_id: str) -> list[ContinuousDefinition]:
        with self.services.uow() as uow:
            definitions = uow.segment_definitions.in_sandbox(sandbox_id)
            uow.commit()
        return [ContinuousDefinition(d.id, d.version, d.merge_policy_id, d.pql,
                                     tuple(str(x) for x in d.dependencies or ()))
                for d in definitions if is_streamed(d)]

    def is_profile_source(self, sandbox_id: str, dataset_id: str) -> bool:
        return self.kept(("source", sandbox_id, dataset_id), lambda: self._is_profile_source(sandbox_id, dataset_id))

    def _is_profile_source(self, sandbox_id: str, dataset_id: str) -> bool:
        with self.services.db.session() as session:
            dataset = session.get(Dataset, dataset_id)
            return (dataset is not None and dataset.sandbox_id == sandbox_id and is_profile_enabled(dataset)
                    and dataset_kind(dataset) != "union")

    def _record(self, policy_id: str) -> ProfileStoreRecord | None:
        return self.kept(("record", policy_id), lambda: self._read_record(policy_id))

    def _read_record(self, policy_id: str) -> ProfileStoreRecord | None:
        """The policy's profile store record (its build, watermark and published membership), read now."""
        with self.services.uow() as uow:
            record = uow.profile_stores.get(policy_id)
            uow.commit()
        return record

    def _build(self, policy_id: str) -> tuple[Path, int] | None:
        """The policy's last build and its watermark (the highest log ``seq`` it holds)."""
        record = self._record(policy_id)
        if record is None or record.path is None:
            return None
        path = record.path
        try:
            return self.kept(("build", path), lambda: resolve_store(path)), record.stream_watermark
        except StoreNotFoundError:
            return None

    def watermark(self, sandbox_id: str, policy_id: str) -> int | None:
        build = self._build(policy_id)
        return None if build is None else build[1]

    def precedence(self, sandbox_id: str, policy_id: str) -> tuple[str, ...]:
        build = self._build(policy_id)
        return () if build is None else self.kept(("precedence", str(build[0])), lambda: lookup.precedence(build[0]))

    def linked(self, sandbox_id: str, policy_id: str) -> bool:
        build = self._build(policy_id)
        return build is None or self.kept(("graph", str(build[0])), lambda: lookup.identity_graph(build[0])) == "pdg"

    def part(self, sandbox_id: str, policy_id: str, namespace: str, identity: str) -> Part | None:
        return self.parts(sandbox_id, policy_id, [(namespace, identity)]).get(identity_key(namespace, identity))

    def parts(self, sandbox_id: str, policy_id: str, pairs: Sequence[tuple[str, str]]) -> dict[str, Part | None]:
        build = self._build(policy_id)
        if build is None:
            return {}
        engine = self.services.reader()
        found = lookup.profile_ids_in(build[0], pairs, engine=engine)
        if not self.linked(sandbox_id, policy_id):
            return {identity_key(*pair): None if profile_id is None else Part(profile_id, tuple(
                        lookup.get_profile_identities(build[0], *pair, engine=engine) or [pair]))
                    for pair, profile_id in found.items()}
        # A linked profile's identityMap is its graph's identities (lookup.get_profile_identities), read with the
        # columns the overlay keys by (the profile's row is read with them next), for every profile in one read.
        ids = sorted({profile_id for profile_id in found.values() if profile_id is not None})
        identities = {row["_profile_id"]: tuple(identity_pairs(row))
                      for row in _rows(build[0] / PROFILES_FILE, ids, (), ROW_FIELDS)}
        return {identity_key(*pair): None if profile_id is None else Part(profile_id, identities.get(profile_id) or (pair,))
                for pair, profile_id in found.items()}

    def base(self, sandbox_id: str, policy_id: str, identities: Sequence[tuple[str, str]]) -> BaseProfile | None:
        build = self._build(policy_id)
        if build is None:
            return None
        store, watermark = build
        for namespace, identity in identities:
            profile_id = lookup.profile_id_in(store, namespace, identity, engine=self.services.reader())
            if profile_id is not None:
                rows = _rows(store / PROFILES_FILE, [profile_id])
                events = sorted((e for path in event_files(store) for e in _rows(path, [profile_id])),
                                key=lambda e: (e.get("timestamp") is None, e.get("timestamp"), e.get("_id") or ""))
                return BaseProfile(profile_id, rows[0] if rows else None, events, watermark)
        # A profile the build does not know yet: keyed by its smallest key, as a build would key it.
        new_id = min(identity_key(namespace, identity) for namespace, identity in identities)
        return BaseProfile(new_id, None, [], watermark)

    def profiles(self, sandbox_id: str, policy_id: str, profile_ids: Sequence[str],
                 fields: Collection[str] | None = None, since: dt.datetime | None = None) -> dict[str, BaseProfile]:
        build = self._build(policy_id)
        if build is None or not profile_ids:
            return {}
        store, watermark = build
        rows = {row["_profile_id"]: row for row in _rows(store / PROFILES_FILE, profile_ids, fields, ROW_FIELDS)}
        events: dict[str, list[dict[str, Any]]] = {}
        # Events older than every window the definitions read are not read at all (their row groups skipped).
        for event in (e for path in event_files(store) for e in _rows(path, profile_ids, fields, EVENT_FIELDS, since)):
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
        # Not the pinned scope's record: a writer moves pairs from the membership a job published last, so the
        # record is as new as the metadata generation read now (kept while no commit has moved it: a publish
        # does), as new as a query of it would be, without the query each micro-batch.
        record = self.services.lasting(("record", policy_id), lambda: self._read_record(policy_id))
        return store, store.state(record.membership_path if record else None)

    def membership_to_read(self, sandbox_id: str, policy_id: str) -> tuple[MembershipStore, State | None]:
        """The membership to read (not to write): the pointer the pinned scope's metadata generation holds, so a
        read of a policy's membership costs no query while no job has published since (a publish moves the
        generation: the next scope reads anew)."""
        store = store_for(self.services.settings.home, sandbox_id, policy_id)
        record = self._record(policy_id)
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
            if self.services.settings.stream_fsync_each_commit:  # as the log's commits
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(partial, self.progress_path)
