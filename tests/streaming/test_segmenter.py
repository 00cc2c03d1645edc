"""Streaming segmentation on fakes: a streamed message re-evaluates the continuous segments of the profile
it touches over the merged profile, through the membership store, exactly once."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from openseg.profiles.keys import identity_key
from openseg.profiles.overlay import Part, record_identities
from openseg.segmentation.membership import MembershipStore, State
from openseg.segmentation.streaming import CompiledSegments, ContinuousDefinition
from openseg.streaming.model import LogEntry, LoggedMessage
from openseg.streaming.ports import BaseProfile
from openseg.streaming.segmenter import StreamSegmenter, consumer_name

T0 = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
US_CLICKER = ContinuousDefinition(
    "seg-us", 1, "policy-a",
    'homeAddress.countryCode = "US" and select e from xEvent where e.eventType = "click" and '
    "e.timestamp occurs <= 1 hours before now")


class FakeLog:
    log_id = "log-1"

    def __init__(self) -> None:
        self.messages: list[LoggedMessage] = []

    def add(self, kind: str, record: dict[str, Any], sandbox: str = "sb") -> int:
        seq = len(self.messages) + 1
        self.messages.append(LoggedMessage(seq, LogEntry("x", 0, "inlet", "org", sandbox, "ds", kind, record)))
        return seq

    def append(self, entries: Sequence[LogEntry]) -> list[int]:
        raise NotImplementedError

    def read(self, after: int, limit: int) -> list[LoggedMessage]:
        return [m for m in self.messages if m.seq > after][:limit]

    def carrying(self, sandbox_id: str, keys: Collection[str], after: int,
                 through: int | None = None) -> list[LoggedMessage]:
        return [m for m in self.messages if m.entry.sandbox_id == sandbox_id and after < m.seq <= (through or m.seq)
                and {identity_key(*i) for i in record_identities(m.entry.record)} & set(keys)]

    def last_seq(self) -> int:
        return len(self.messages)

    def prune(self, through: int, keep: Mapping[str, int] | None = None) -> int:
        return 0


class FakeTarget:
    def __init__(self, root: Path, definitions: list[ContinuousDefinition]) -> None:
        self.root = root
        self.definitions = definitions
        self.rows: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.built_through = 0
        self.saved: dict[str, int] = {}

    def continuous(self, sandbox_id: str) -> list[ContinuousDefinition]:
        return list(self.definitions)

    def is_profile_source(self, sandbox_id: str, dataset_id: str) -> bool:
        return True

    def watermark(self, sandbox_id: str, policy_id: str) -> int | None:
        return self.built_through

    def linked(self, sandbox_id: str, policy_id: str) -> bool:
        return True

    def precedence(self, sandbox_id: str, policy_id: str) -> tuple[str, ...]:
        return ()

    def part(self, sandbox_id: str, policy_id: str, namespace: str, identity: str) -> Part | None:
        for profile_id, row in self.rows.items():
            identities = record_identities(row)
            if (namespace.lower(), identity) in identities:
                return Part(profile_id, tuple(identities))
        return None

    def parts(self, sandbox_id: str, policy_id: str, pairs: Sequence[tuple[str, str]]) -> dict[str, Part | None]:
        return {identity_key(*pair): self.part(sandbox_id, policy_id, *pair) for pair in pairs}

    def profiles(self, sandbox_id: str, policy_id: str, profile_ids: Sequence[str],
                 fields: Collection[str] | None = None, since: dt.datetime | None = None) -> dict[str, BaseProfile]:
        return {p: BaseProfile(p, self.rows.get(p), list(self.events.get(p, [])), self.built_through) for p in profile_ids}

    @contextmanager
    def pinned(self) -> Iterator[None]:
        yield

    def membership(self, sandbox_id: str, policy_id: str) -> tuple[MembershipStore, State | None]:
        return MembershipStore(self.root / policy_id), None

    def published(self) -> list[tuple[str, str, str]]:
        return []

    def members(self, sandbox_id: str, policy_id: str, segment_ids: Sequence[str]) -> set[str]:
        return set()

    def memberships(self) -> list[MembershipStore]:
        return [MembershipStore(path) for path in sorted(self.root.iterdir())] if self.root.is_dir() else []

    def progress(self, consumer: str) -> int:
        return self.saved.get(consumer, 0)

    def record_progress(self, consumer: str, through: int) -> None:
        self.saved[consumer] = through


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def identity(i: int) -> dict[str, Any]:
    return {"email": [{"id": f"p{i}@example.com", "primary": True}]}


def click(i: int, at: dt.datetime, event_id: str) -> dict[str, Any]:
    return {"_id": event_id, "eventType": "click", "timestamp": at.isoformat().replace("+00:00", "Z"),
            "identityMap": identity(i)}


def ups(target: FakeTarget, policy: str, profile: str) -> dict[str, tuple[str, dt.datetime]]:
    pairs = MembershipStore(target.root / policy).lookup(None, [profile])[profile]
    return {s: (p.status, p.last_qualification_time) for s, p in pairs.items()}


def history(target: FakeTarget, policy: str) -> list[tuple[str, str, str | None]]:
    store = MembershipStore(target.root / policy)
    return [(r["_profile_id"], r["segment_id"], r["event"]) for _, path in store.changes(None)
            for r in pq.read_table(path).to_pylist()]


@pytest.fixture
def target(tmp_path: Path) -> FakeTarget:
    found = FakeTarget(tmp_path / "membership", [US_CLICKER])
    found.rows["email:p1@example.com"] = {"_profile_id": "email:p1@example.com", "identityMap": identity(1),
                                          "homeAddress": {"countryCode": "US"}}
    return found


def test_a_streamed_event_enters_the_profile_and_a_streamed_fragment_exits_it(target: FakeTarget) -> None:
    log, clock = FakeLog(), Clock()
    segmenter = StreamSegmenter(log, target, clock)
    log.add("event", click(1, T0 - dt.timedelta(minutes=5), "e1"))
    done = segmenter.run_once()
    assert (done.messages, done.changes, done.through) == (1, 1, 1)
    assert ups(target, "policy-a", "email:p1@example.com") == {"seg-us": ("realized", T0)}
    # The fragment is laid over the build's row: the country changes, the streamed click stays.
    clock.now = T0 + dt.timedelta(minutes=1)
    log.add("profile", {"identityMap": identity(1), "homeAddress": {"countryCode": "FR"}})
    assert segmenter.run_once().changes == 1
    assert ups(target, "policy-a", "email:p1@example.com") == {"seg-us": ("exited", clock.now)}
    assert history(target, "policy-a") == [("email:p1@example.com", "seg-us", "entered"),
                                           ("email:p1@example.com", "seg-us", "exited")]


def test_the_build_events_and_the_streamed_ones_are_evaluated_together(target: FakeTarget) -> None:
    twice = ContinuousDefinition("seg-twice", 1, "policy-a",
                                 'xEvent[eventType = "click"].count() >= 2')
    target.definitions = [twice]
    target.events["email:p1@example.com"] = [{"_id": "old", "eventType": "click",
                                              "timestamp": dt.datetime(2026, 12, 1, 9, 0)}]
    log = FakeLog()
    segmenter = StreamSegmenter(log, target, Clock())
    log.add("event", click(1, T0, "old"))  # the same event again (its _id): still one click
    segmenter.run_once()
    assert ups(target, "policy-a", "email:p1@example.com") == {}
    log.add("event", click(1, T0, "new"))
    segmenter.run_once()
    assert ups(target, "policy-a", "email:p1@example.com") == {"seg-twice": ("realized", T0)}


def test_records_the_build_holds_leave_the_overlay(target: FakeTarget) -> None:
    twice = ContinuousDefinition("seg-twice", 1, "policy-a",
                                 'xEvent[eventType = "click"].count() >= 2')
    target.definitions = [twice]
    log = FakeLog()
    segmenter = StreamSegmenter(log, target, Clock())
    log.add("event", click(1, T0, "a"))
    segmenter.run_once()
    # A build now holds the first click (watermark 1) but, say, lost it to a filter: the overlay is without it.
    target.built_through = 1
    log.add("event", click(1, T0, "b"))
    segmenter.run_once()
    assert ups(target, "policy-a", "email:p1@example.com") == {}
    log.add("event", click(1, T0, "c"))
    segmenter.run_once()  # b and c: two clicks newer than the build
    assert ups(target, "policy-a", "email:p1@example.com") == {"seg-twice": ("realized", T0)}


def test_a_new_profile_and_a_dependant_segment_change_in_the_same_micro_batch(target: FakeTarget) -> None:
    dependant = ContinuousDefinition("seg-dep", 1, "policy-a", 'inSegment("seg-us")', ("seg-us",))
    target.definitions = [dependant, US_CLICKER]
    log = FakeLog()
    log.add("profile", {"identityMap": identity(2), "homeAddress": {"countryCode": "US"}})
    log.add("event", click(2, T0, "e2"))
    StreamSegmenter(log, target, Clock()).run_once()
    assert ups(target, "policy-a", "email:p2@example.com") == {"seg-dep": ("realized", T0),
                                                                "seg-us": ("realized", T0)}


class CountingLog(FakeLog):
    """The fake log, remembering the keys of each ``carrying`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[set[str]] = []

    def carrying(self, sandbox_id: str, keys: Collection[str], after: int,
                 through: int | None = None) -> list[LoggedMessage]:
        self.asked.append(set(keys))
        return super().carrying(sandbox_id, keys, after, through)


def test_a_micro_batch_reads_the_messages_of_its_identities_in_one_read(target: FakeTarget) -> None:
    log = CountingLog()
    for i in range(1, 21):  # built profiles of two identities each, a click each
        both = {**identity(i), "Phone": [{"id": f"555-{i}"}]}
        target.rows[f"email:p{i}@example.com"] = {"_profile_id": f"email:p{i}@example.com", "identityMap": both,
                                                  "homeAddress": {"countryCode": "US"}}
        log.add("event", click(i, T0 - dt.timedelta(minutes=5), f"e{i}"))
    log.add("event", {**click(21, T0, "e21"), "identityMap": {**identity(21), "Phone": [{"id": "555-3"}]}})
    done = StreamSegmenter(log, target, Clock()).run_once()
    # The messages' and their built profiles' identities in one read, whatever the micro-batch's size.
    built = {f"email:p{i}@example.com" for i in range(1, 21)} | {f"phone:555-{i}" for i in range(1, 21)}
    assert log.asked == [built | {"email:p21@example.com"}]
    # The last click links p21's email to p3's profile: one profile, keyed by its smallest key, in the segment.
    assert (done.messages, done.changes) == (21, 20)
    for i in (*range(1, 3), *range(4, 22)):
        assert ups(target, "policy-a", f"email:p{i}@example.com") == {"seg-us": ("realized", T0)}
    assert ups(target, "policy-a", "email:p3@example.com") == {}


def test_a_definition_is_compiled_once_per_version() -> None:
    compiled = CompiledSegments()
    first = compiled.predicate(US_CLICKER)
    assert compiled.predicate(US_CLICKER) is first
    edited = ContinuousDefinition("seg-us", 2, "policy-a", 'homeAddress.countryCode = "FR"')
    assert compiled.predicate(edited) is not first
    assert compiled.predicate(edited)({"homeAddress": {"countryCode": "FR"}}, [], T0) is True


def test_a_crash_between_two_stores_applies_every_message_once(target: FakeTarget,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    other = ContinuousDefinition("seg-b", 1, "policy-b", US_CLICKER.pql)
    target.definitions = [US_CLICKER, other]
    log = FakeLog()
    log.add("event", click(1, T0, "e1"))
    real_apply = MembershipStore.apply

    def dying_apply(self: MembershipStore, *args: Any, **kwargs: Any) -> Any:
        if self.root.name == "policy-b":
            raise RuntimeError("killed")
        return real_apply(self, *args, **kwargs)

    monkeypatch.setattr(MembershipStore, "apply", dying_apply)
    with pytest.raises(RuntimeError):
        StreamSegmenter(log, target, Clock()).run_once()
    monkeypatch.undo()
    assert history(target, "policy-a") == [("email:p1@example.com", "seg-us", "entered")]
    assert target.progress(consumer_name(log)) == 0
    # A new consumer (the restarted streamer) resumes at the micro-batch's start, skipping the store done.
    later = Clock()
    later.now = T0 + dt.timedelta(seconds=30)
    restarted = StreamSegmenter(log, target, later)
    assert restarted.offset == 0
    assert restarted.run_until_idle() == 1
    assert history(target, "policy-a") == [("email:p1@example.com", "seg-us", "entered")]
    assert ups(target, "policy-a", "email:p1@example.com") == {"seg-us": ("realized", T0)}
    assert ups(target, "policy-b", "email:p1@example.com") == {"seg-b": ("realized", later.now)}
    assert target.progress(consumer_name(log)) == 1
    assert StreamSegmenter(log, target, later).offset == 1


class FakeSink:
    def __init__(self) -> None:
        self.through = 0
        self.written: list[int] = []

    def offset(self, consumer: str) -> int:
        return self.through

    def write(self, consumer: str, batches: Sequence[Any], through: int) -> list[str]:
        self.written.append(through)
        self.through = through
        return []

    def exclusive(self) -> Any:
        from contextlib import nullcontext

        return nullcontext(True)

    def unbuilt(self) -> dict[str, int]:
        return {}

    def request_builds(self, *, now: bool = False) -> None:
        pass


@contextmanager
def running(streamer: Any) -> Iterator[None]:
    """``streamer.run`` in a thread while inside; stopped and joined on the way out."""
    stop = threading.Event()
    thread = threading.Thread(target=streamer.run, args=(stop,))
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_failing_segmentation_does_not_stop_the_flushes(target: FakeTarget) -> None:

    from openseg.streaming.flusher import Streamer

    log = FakeLog()
    log.add("event", click(1, T0, "e1"))
    tries: list[int] = []

    def broken(sandbox_id: str) -> list[ContinuousDefinition]:
        tries.append(1)
        raise RuntimeError("metadata store down")

    target.continuous = broken  # type: ignore[method-assign]
    segmenter = StreamSegmenter(log, target, Clock())
    sink = FakeSink()
    with running(Streamer(log, sink, segmenter=segmenter, flush_seconds=0.0, poll_seconds=0.01)):
        # the flush thread may write the lake before the loop first tries to segment: wait for both
        wait_until(lambda: bool(sink.written) and bool(tries))
    assert sink.written == [1]  # the lake has the message
    assert tries == [1]  # tried once, then left alone until the retry time
    assert segmenter.offset == 0  # and the log keeps it for segmentation


class SlowScheduling:
    """A segmenter whose job has ``members`` to give due times, each taking ``per_profile`` seconds of the
    streamer's (injected) clock."""

    offset = 0

    def __init__(self, clock: list[float], members: int, per_profile: float) -> None:
        self.clock, self.left, self.per_profile = clock, members, per_profile
        self.chunks: list[int] = []

    def schedule_job_members(self, limit: int) -> int:
        done = min(limit, self.left)
        self.left -= done
        self.clock[0] += done * self.per_profile
        if done:
            self.chunks.append(done)
        return done

    @property
    def scheduling_members(self) -> bool:
        return self.left > 0

    def has_due(self) -> bool:
        return False


def test_a_jobs_members_are_given_due_times_in_chunks_that_hold_the_loop_briefly() -> None:
    from openseg.streaming.flusher import SCHEDULE_SECONDS, Streamer

    clock = [0.0]
    segmenter = SlowScheduling(clock, members=150_000, per_profile=0.0005)  # 0.5 ms a profile, as at 1M
    streamer = Streamer(FakeLog(), FakeSink(), segmenter=segmenter, monotonic=lambda: clock[0])  # type: ignore[arg-type]
    while segmenter.scheduling_members:
        streamer._segment()
    assert sum(segmenter.chunks) == 150_000
    # Each chunk after the first few holds the loop (where messages wait) for about the budget, never 2.5 s.
    assert max(chunk * 0.0005 for chunk in segmenter.chunks) <= SCHEDULE_SECONDS
    assert segmenter.chunks[-2] == int(SCHEDULE_SECONDS / 0.0005)
    # A faster store gets bigger chunks (and does not stay at the first chunk's size).
    fast = SlowScheduling(clock, members=10_000, per_profile=0.00001)
    streamer = Streamer(FakeLog(), FakeSink(), segmenter=fast, monotonic=lambda: clock[0])  # type: ignore[arg-type]
    while fast.scheduling_members:
        streamer._segment()
    assert max(fast.chunks) > 1_000 and len(fast.chunks) < 12


class BlockingSink(FakeSink):
    """A lake whose writes wait until the test releases them."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = threading.Event()
        self.release = threading.Event()

    def write(self, consumer: str, batches: Sequence[Any], through: int) -> list[str]:
        self.writing.set()
        self.release.wait(10)
        return super().write(consumer, batches, through)


def test_messages_are_segmented_while_a_flush_is_written(target: FakeTarget) -> None:

    from openseg.streaming.flusher import Streamer

    log = FakeLog()
    log.add("event", click(1, T0, "e1"))
    segmenter = StreamSegmenter(log, target, Clock())
    sink = BlockingSink()
    with running(Streamer(log, sink, segmenter=segmenter, flush_seconds=0.0, poll_seconds=0.01)):
        try:
            assert sink.writing.wait(10)  # a flush is being written
            later = log.add("event", click(2, T0, "e2"))
            wait_until(lambda: segmenter.offset >= later)
            # Segmented while the flush still waits: a message does not wait for the lake.
            assert (segmenter.offset, sink.written) == (later, [])
            sink.release.set()
            wait_until(lambda: sink.through >= later)
            assert sink.through == later
        finally:
            sink.release.set()
