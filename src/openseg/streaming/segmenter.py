"""Streaming segmentation: the log's second consumer re-evaluates continuous segments for the profiles each
message touches, and writes ``realized`` / ``exited`` through the membership store, without a segment job.

Each micro-batch (the messages after the consumer's offset) is first laid over the profiles it touches (the
overlay: the streamed records newer than the profile's last build, read from the log by the identities they
carry and merged by ``profiles/overlay.py``, as profile access does), then each touched profile is evaluated
once, at the clock's time, for every continuous definition of
its sandbox (``segmentation/streaming.py``), and each membership store gets one ``MembershipStore.apply``
whose change file also records the log messages it applied (``LogRange``). A micro-batch that changed no
membership records its progress through the target instead.

Identity merges: a record linking identities of two built profiles (or adding an identity that becomes the
profile's smallest key) makes one profile of them, keyed as the next build will key it; that profile is evaluated
for every continuous segment, over both profiles' attributes and events, and every old id that no longer exists
is answered "not in" for every one of them, so its memberships exit by the rule.

Exactly once: a crash between two stores' writes leaves the newest change file with a ``through`` above the
recorded progress; the consumer then resumes after that file's ``after`` and skips, per store, the messages
the store's own newest position already covers. Nothing is applied twice, nothing is lost.

Time windows: each evaluation also says when the answer can next change with no new data (the last purchase
leaving "purchased in the last hour", ``segmentation/streaming_due.py``); the due-time index keeps one such
time per (profile, segment), and :meth:`StreamSegmenter.sweep` evaluates the pairs that are due, at the
clock's time, and writes what moved through the membership store like any evaluation (so an exit by expiry
follows the batch rule: ``exited``, ``lastQualificationTime`` the time it left). A micro-batch's due times
are written before its membership (a crash in between replays the micro-batch, which writes them again); a
sweep's after it (a crash in between sweeps the same pairs again, which moves nobody twice).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openseg.profiles.keys import identity_key, identity_pairs
from openseg.profiles.overlay import Part, Reach, merged_profile, overlay_events, reach, record_identities
from openseg.segmentation.streaming import (
    CompiledSegments,
    ContinuousDefinition,
    Evaluation,
    evaluate_timed,
)
from openseg.streaming.due import MemoryDueIndex
from openseg.streaming.model import DueKey, LoggedMessage, LogRange
from openseg.streaming.ports import BaseProfile, DueIndex, Memberships, SegmentationTarget, StreamLog

log = logging.getLogger("openseg.streaming")

#: At most this many messages make one micro-batch.
MICRO_BATCH = 1_000
#: At most this many due (profile, segment) pairs make one sweep.
SWEEP_BATCH = 5_000
PROFILE, EVENT = "profile", "event"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def epoch_ms(instant: dt.datetime) -> int:
    """An instant as epoch milliseconds, rounded up (a due time is never early)."""
    return -(-(instant - _EPOCH) // _MS)


def _now_ms(instant: dt.datetime) -> int:
    """An instant as epoch milliseconds, rounded down (what is due by then has its due time passed)."""
    return (instant - _EPOCH) // _MS


def overlaid(found: Reach, bases: Mapping[str, BaseProfile],
             precedence: Sequence[str] = ()) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The profile and its events: the builds' of its parts (``bases``, by profile id), with the streamed records
    newer than the build (``profiles/overlay.py``; ``precedence``: the dataset order of a ``dataSetPrecedence``
    policy); streaming segmentation and the edge read profiles so."""
    parts = [bases[p.profile_id] for p in found.parts if p.profile_id in bases]
    profile = merged_profile(found, [base.row for base in parts], precedence=precedence,
                             fragments=[f for base in parts for f in base.fragments])
    return profile, overlay_events([e for base in parts for e in base.events], found.events)


def _parts_of(bases: Mapping[str, BaseProfile]) -> dict[str, Part]:
    """The built part holding each identity of ``bases``' rows, by key: under ``pdg`` a built profile's identityMap
    is its graph's identities, so these are the parts the target would find in the store for them (a sweep's
    chunk reads its profiles' rows in one read, then lays the log over each without reading them again)."""
    parts: dict[str, Part] = {}
    for base in bases.values():
        if base.row is None:
            continue
        pairs = tuple(identity_pairs(base.row))
        part = Part(base.profile_id, pairs)
        parts.update((identity_key(*pair), part) for pair in pairs)
    return parts


def consumer_name(stream_log: StreamLog) -> str:
    """Streaming segmentation's name for its offset in this log."""
    return f"segments:{stream_log.log_id}"


def identities_of(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A record's ``(namespace, id)`` pairs, its primary identities first, each group by key."""
    return record_identities(record)


@dataclass(frozen=True)
class Segmented:
    messages: int
    changes: int
    through: int


@dataclass(frozen=True)
class Swept:
    pairs: int
    changes: int


Profiles = dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]


class _Carried:
    """The log as :func:`~openseg.profiles.overlay.reach` reads it in one micro-batch: the messages carrying any
    of ``keys`` (those the micro-batch will ask for) read in one query, then answered per key; any other key, or
    another range, is asked of the log. Its answers are the log's (a message carries the keys the log indexed
    it by: those of its record's identities)."""

    def __init__(self, stream_log: StreamLog, sandbox_id: str, keys: Collection[str], after: int,
                 through: int) -> None:
        self.log = stream_log
        self.range = (sandbox_id, after, through)
        self.by_key: dict[str, list[LoggedMessage]] = {key: [] for key in keys}
        for message in stream_log.carrying(sandbox_id, self.by_key, after, through):
            for key in {identity_key(*pair) for pair in record_identities(message.entry.record)}:
                if key in self.by_key:
                    self.by_key[key].append(message)

    def carrying(self, sandbox_id: str, keys: Collection[str], after: int,
                 through: int | None = None) -> list[LoggedMessage]:
        if (sandbox_id, after, through) != self.range:
            return list(self.log.carrying(sandbox_id, keys, after, through))
        found = {message.seq: message for key in keys for message in self.by_key.get(key, ())}
        missing = [key for key in keys if key not in self.by_key]
        if missing:
            found.update((message.seq, message) for message in self.log.carrying(sandbox_id, missing, after, through))
        return [found[seq] for seq in sorted(found)]


class StreamSegmenter:
    """Continuous segmentation of streamed messages, one micro-batch at a time.

    Args:
        stream_log: The log (read after this consumer's offset).
        target: Definitions, profile builds and membership stores.
        clock: The evaluation time of each micro-batch and sweep (UTC; tests inject one).
        due: The due-time index (default: in memory).
    """

    def __init__(self, stream_log: StreamLog, target: SegmentationTarget,
                 clock: Callable[[], dt.datetime] | None = None, *, max_records: int = MICRO_BATCH,
                 due: DueIndex | None = None) -> None:
        self.log = stream_log
        self.target = target
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.max_records = max_records
        self.due = due if due is not None else MemoryDueIndex()
        #: Job memberships whose members are being given due times: (sandbox, policy, state, profiles left).
        self._members_to_schedule: list[tuple[str, str, str, list[str]]] = []
        self.consumer = consumer_name(stream_log)
        self.compiled = CompiledSegments()
        self._offset: int | None = None
        self._applied: dict[Path, int] = {}

    # ------------------------------------------------------------------------------------ offsets

    @property
    def offset(self) -> int:
        """Where the next micro-batch starts: everything up to it is applied in every store."""
        if self._offset is None:
            done = self.target.progress(self.consumer)
            positions = [p for store in self.target.memberships() if (p := store.log_position(self.consumer))]
            newest = max(positions, key=lambda p: p.through, default=None)
            # A micro-batch whose stores were not all written before a crash is read again from its start.
            self._offset = done if newest is None or newest.through <= done else newest.after
        return self._offset

    def _applied_through(self, store: Memberships) -> int:
        """The newest log ``seq`` this consumer applied to ``store``."""
        if store.root not in self._applied:
            position = store.log_position(self.consumer)
            self._applied[store.root] = position.through if position else 0
        return self._applied[store.root]

    # --------------------------------------------------------------------------------- evaluation

    def run_once(self) -> Segmented:
        """Evaluate the next micro-batch (nothing when the log holds nothing after the offset)."""
        with self.target.pinned():
            return self._run_once()

    def _run_once(self) -> Segmented:
        after = self.offset
        messages = self.log.read(after, self.max_records)
        if not messages:
            return Segmented(0, 0, after)
        through = messages[-1].seq
        at = self.clock()
        stores: dict[tuple[str, str], tuple[Memberships, Any]] = {}
        touched = self._lay_over(messages, through, at, stores)
        changes = 0
        for (sandbox_id, policy_id), (profiles, gone) in touched.items():
            store, state = stores[(sandbox_id, policy_id)]
            definitions = self._definitions(sandbox_id, policy_id)
            results = self._evaluate(definitions, profiles, store.lookup(state, list(profiles)), at)
            # An id a link merged into another profile no longer exists: it is in no segment (as after a build).
            results.update({p: Evaluation(dict.fromkeys((d.id for d in definitions), False), {}) for p in gone})
            # Due times first: a crash before the membership is written replays the micro-batch, and with it this.
            self.due.schedule(self._dues(sandbox_id, policy_id, definitions, results))
            rows = store.apply(state, {p: r.answers for p, r in results.items()}, at,
                               LogRange(self.consumer, after, through))
            self._applied[store.root] = through
            changes += len(rows)
        self.target.record_progress(self.consumer, through)
        self._offset = through
        return Segmented(len(messages), changes, through)

    def _definitions(self, sandbox_id: str, policy_id: str) -> list[ContinuousDefinition]:
        return [d for d in self.target.continuous(sandbox_id) if d.merge_policy_id == policy_id]

    def _evaluate(self, definitions: list[ContinuousDefinition], profiles: Profiles, current: Mapping[str, Any],
                  at: dt.datetime) -> dict[str, Evaluation]:
        return {profile_id: evaluate_timed(definitions, self.compiled, profile, events, current[profile_id], at)
                for profile_id, (profile, events) in profiles.items()}

    def _dues(self, sandbox_id: str, policy_id: str, definitions: list[ContinuousDefinition],
              results: Mapping[str, Evaluation]) -> dict[DueKey, int | None]:
        """The next due time of every (profile, time-windowed segment) evaluated (None: none any more)."""
        timed = [d.id for d in definitions if self.compiled.dependence(d) is not None]
        dues: dict[DueKey, int | None] = {}
        for profile_id, result in results.items():
            for segment_id in timed:
                change = result.due.get(segment_id)
                dues[DueKey(sandbox_id, policy_id, profile_id, segment_id)] = \
                    None if change is None else epoch_ms(change)
        return dues

    # -------------------------------------------------------------------------------- time windows

    def has_due(self) -> bool:
        """Whether some (profile, segment) pair is due at the clock's time."""
        due_ms = self.due.next_due()
        return due_ms is not None and due_ms <= _now_ms(self.clock())

    def schedule_job_members(self, limit: int = SWEEP_BATCH) -> int:
        """Give due times to the members a segment job put in time-windowed continuous segments (streaming
        never evaluated them, yet AEP exits baselined members in real time too), once per published job
        membership; a member whose window already passed since the job is due at once.

        At most ``limit`` profiles per call, so that the streamer's loop goes on evaluating messages between
        two chunks of a large membership. Returns how many profiles were looked at (0: none left)."""
        with self.target.pinned():
            return self._schedule_job_members(limit)

    def _schedule_job_members(self, limit: int) -> int:
        if not self._members_to_schedule:
            # The job membership each store had when its members were last given due times.
            scheduled = self.due.scheduled_jobs()
            for sandbox_id, policy_id, pointer in self.target.published():
                if scheduled.get((sandbox_id, policy_id)) == pointer:
                    continue
                timed = [d.id for d in self._definitions(sandbox_id, policy_id)
                         if self.compiled.dependence(d) is not None]
                members = sorted(self.target.members(sandbox_id, policy_id, timed)) if timed else []
                self._members_to_schedule.append((sandbox_id, policy_id, pointer, members))
        while self._members_to_schedule and not self._members_to_schedule[0][3]:
            sandbox_id, policy_id, pointer, _ = self._members_to_schedule.pop(0)
            self.due.record_scheduled_job(sandbox_id, policy_id, pointer)
        if not self._members_to_schedule:
            return 0
        sandbox_id, policy_id, pointer, members = self._members_to_schedule[0]
        chunk, rest = members[:limit], members[limit:]
        at = self.clock()
        definitions = self._definitions(sandbox_id, policy_id)
        timed = [d.id for d in definitions if self.compiled.dependence(d) is not None]
        store, state = self.target.membership(sandbox_id, policy_id)
        bases = self.target.profiles(sandbox_id, policy_id, chunk, self.compiled.fields(definitions),
                                     self.compiled.since(definitions, at))
        profiles, gone = self._profiles(sandbox_id, policy_id, chunk, bases, at)
        current = store.lookup(state, chunk)
        results = self._evaluate(definitions, profiles, current, at)
        results.update({p: Evaluation(dict.fromkeys((d.id for d in definitions), False), {}) for p in gone})
        dues = self._dues(sandbox_id, policy_id, definitions, results)
        for profile_id, result in results.items():
            for segment_id in timed:
                pair = current[profile_id].get(segment_id)
                if result.answers[segment_id] != (pair is not None and pair.is_in):
                    dues[DueKey(sandbox_id, policy_id, profile_id, segment_id)] = _now_ms(at)
        self.due.schedule(dues)
        self._members_to_schedule[0] = (sandbox_id, policy_id, pointer, rest)
        if not rest:
            self._members_to_schedule.pop(0)
            self.due.record_scheduled_job(sandbox_id, policy_id, pointer)
        return len(chunk)

    @property
    def scheduling_members(self) -> bool:
        """Whether a job's members are still being given due times (:meth:`schedule_job_members` has more)."""
        return bool(self._members_to_schedule)

    def sweep(self, limit: int = SWEEP_BATCH) -> Swept:
        """Evaluate the profiles of the pairs due at the clock's time (at most ``limit`` pairs) for every
        continuous segment of their store, write what moved, and schedule their next due times."""
        with self.target.pinned():
            return self._sweep(limit)

    def _sweep(self, limit: int) -> Swept:
        at = self.clock()
        entries = self.due.due(_now_ms(at), limit)
        groups: dict[tuple[str, str], list[DueKey]] = {}
        for key, _ in entries:
            groups.setdefault((key.sandbox_id, key.policy_id), []).append(key)
        changes = 0
        for (sandbox_id, policy_id), keys in groups.items():
            profile_ids = sorted({key.profile_id for key in keys})
            definitions = self._definitions(sandbox_id, policy_id)
            bases = self.target.profiles(sandbox_id, policy_id, profile_ids, self.compiled.fields(definitions),
                                         self.compiled.since(definitions, at))
            profiles, gone = self._profiles(sandbox_id, policy_id, profile_ids, bases, at)
            store, state = self.target.membership(sandbox_id, policy_id)
            results = self._evaluate(definitions, profiles, store.lookup(state, list(profiles)), at)
            results.update({p: Evaluation(dict.fromkeys((d.id for d in definitions), False), {}) for p in gone})
            changes += len(store.apply(state, {p: r.answers for p, r in results.items()}, at))
            # A pair whose segment stopped streaming (or lost its window) leaves the index.
            dues: dict[DueKey, int | None] = dict.fromkeys(keys)
            dues.update(self._dues(sandbox_id, policy_id, definitions, results))
            self.due.schedule(dues)
        return Swept(len(entries), changes)

    def _lay_over(self, messages: list[LoggedMessage], through: int, at: dt.datetime,
                  stores: dict[tuple[str, str], tuple[Memberships, Any]]
                  ) -> dict[tuple[str, str], tuple[Profiles, set[str]]]:
        """The merged profile and events of each profile the messages touch, per (sandbox, merge policy) of a
        continuous definition, skipping what a store already applied; and the ids the messages merged away.
        ``stores`` gets the membership store and state of each (sandbox, merge policy), read once."""
        # What the micro-batch asks of the target more than once is asked once.
        definitions: dict[str, list[ContinuousDefinition]] = {}
        sources: dict[tuple[str, str], bool] = {}
        reached: dict[tuple[str, str], dict[str, Reach]] = {}
        covered: dict[tuple[str, str], set[str]] = {}
        waiting: list[tuple[tuple[str, str], list[tuple[str, str]]]] = []
        for message in messages:
            entry = message.entry
            if entry.problems or entry.kind not in (PROFILE, EVENT):
                continue
            if entry.sandbox_id not in definitions:
                definitions[entry.sandbox_id] = self.target.continuous(entry.sandbox_id)
            policies = sorted({d.merge_policy_id for d in definitions[entry.sandbox_id]})
            identities = identities_of(entry.record)
            if not policies or not identities:
                continue
            if not self._is_source(sources, entry.sandbox_id, entry.dataset_id):
                continue
            for policy_id in policies:
                pair = (entry.sandbox_id, policy_id)
                if pair not in stores:
                    stores[pair] = self.target.membership(entry.sandbox_id, policy_id)
                if message.seq > self._applied_through(stores[pair][0]):
                    waiting.append((pair, identities))
        # The built profiles the messages' identities belong to, in one read per store (a part per message
        # read the store once per message: half of a micro-batch's time at 1M profiles).
        linked: dict[tuple[str, str], bool] = {}
        asked: dict[tuple[str, str], set[tuple[str, str]]] = {}
        for pair, identities in waiting:
            if pair not in linked:
                linked[pair] = self.target.linked(*pair)
            asked.setdefault(pair, set()).update(identities if linked[pair] else identities[:1])
        # Then the messages carrying those identities and the built profiles' other ones, in one read per store
        # too (a read per identity and message took a sixth of the streamer's time at 1M profiles).
        known: dict[tuple[str, str], dict[str, Part | None]] = {}
        carried: dict[tuple[str, str], _Carried] = {}
        for pair, pairs in asked.items():
            watermark = self.target.watermark(*pair)
            if watermark is None:  # no build: _reach finds nothing
                known[pair] = {}
                continue
            known[pair] = parts = self.target.parts(*pair, sorted(pairs))
            keys = {identity_key(*i) for i in pairs}
            keys.update(identity_key(*i) for part in parts.values() if part is not None for i in part.identities)
            carried[pair] = _Carried(self.log, pair[0], keys, watermark, through)
        for pair, identities in waiting:
            # A profile reached earlier in the micro-batch already holds this message (read up to its end).
            if identity_key(*identities[0]) in covered.get(pair, set()):
                continue
            found = self._reach(*pair, identities, through, sources, known[pair], carried.get(pair))
            if found is None:
                continue
            covered.setdefault(pair, set()).update(identity_key(*i) for i in found.identities)
            reached.setdefault(pair, {})[found.profile_id] = found
        touched: dict[tuple[str, str], tuple[Profiles, set[str]]] = {}
        for (sandbox_id, policy_id), reaches in reached.items():
            ids = sorted({p.profile_id for f in reaches.values() for p in f.parts})
            definitions_of = self._definitions(sandbox_id, policy_id)
            bases = self.target.profiles(sandbox_id, policy_id, ids, self.compiled.fields(definitions_of),
                                         self.compiled.since(definitions_of, at))
            precedence = self.target.precedence(sandbox_id, policy_id)
            profiles = {profile_id: overlaid(f, bases, precedence) for profile_id, f in reaches.items()}
            gone = set(ids) - set(profiles)
            touched[(sandbox_id, policy_id)] = (profiles, gone)
        return touched

    def _is_source(self, sources: dict[tuple[str, str], bool], sandbox_id: str, dataset_id: str) -> bool:
        if (sandbox_id, dataset_id) not in sources:
            sources[(sandbox_id, dataset_id)] = self.target.is_profile_source(sandbox_id, dataset_id)
        return sources[(sandbox_id, dataset_id)]

    def _reach(self, sandbox_id: str, policy_id: str, identities: list[tuple[str, str]], through: int,
               sources: dict[tuple[str, str], bool], known: Mapping[str, Part | None] | None = None,
               carried: _Carried | None = None) -> Reach | None:
        """The profile holding ``identities`` with the log's messages up to ``through`` that the build does not
        hold (None: the policy has no build). ``known``: what :meth:`SegmentationTarget.part` answers for some
        identity keys, read already (None: no built profile holds the identity); ``carried``: the log's messages
        of some keys, read already."""
        watermark = self.target.watermark(sandbox_id, policy_id)
        if watermark is None:
            return None
        answered = known or {}

        def part_of(namespace: str, identity: str) -> Part | None:
            key = identity_key(namespace, identity)
            return answered[key] if key in answered else self.target.part(sandbox_id, policy_id, namespace, identity)

        return reach(carried or self.log, sandbox_id, identities, watermark, part_of=part_of,
                     is_source=lambda dataset_id: self._is_source(sources, sandbox_id, dataset_id),
                     through=through, linked=self.target.linked(sandbox_id, policy_id))

    def _profiles(self, sandbox_id: str, policy_id: str, profile_ids: Sequence[str],
                  bases: Mapping[str, BaseProfile], at: dt.datetime) -> tuple[Profiles, set[str]]:
        """The profiles of ``profile_ids`` as the log up to the consumer's offset has them; the ids among them
        that streamed links merged into another profile (they no longer exist)."""
        profiles: Profiles = {}
        gone: set[str] = set()
        sources: dict[tuple[str, str], bool] = {}
        known = _parts_of(bases) if self.target.linked(sandbox_id, policy_id) else {}
        definitions = self._definitions(sandbox_id, policy_id)
        read = self.compiled.fields(definitions), self.compiled.since(definitions, at)
        precedence = self.target.precedence(sandbox_id, policy_id)
        for profile_id in profile_ids:
            base = bases.get(profile_id)
            namespace, _, identity = profile_id.partition(":")
            identities = (record_identities(base.row) if base is not None and base.row else []) or [(namespace, identity)]
            found = self._reach(sandbox_id, policy_id, identities, self.offset, sources, known)
            if found is None:
                found = Reach(profile_id, tuple(identities), (), ())
            if found.profile_id != profile_id:
                gone.add(profile_id)
                continue
            more = [p.profile_id for p in found.parts if p.profile_id not in bases]
            every = {**bases, **(self.target.profiles(sandbox_id, policy_id, more, *read) if more else {})}
            profiles[profile_id] = overlaid(found, every, precedence)
        return profiles, gone

    def run_until_idle(self) -> int:
        """Evaluate every message logged so far, then every pair due by now; how many messages were read."""
        total = 0
        while True:
            done = self.run_once()
            total += done.messages
            if done.messages == 0:
                break
        while self.schedule_job_members():
            pass
        while self.sweep().pairs:
            pass
        return total
