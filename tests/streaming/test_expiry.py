"""Time-window expiry on fakes: a profile that qualified through events inside a window exits when the window
passes, and one whose window opens later enters when it is due, with no new message; the sweep writes
through the membership store by the batch rule, exactly once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pytest

from openseg.segmentation.streaming import ContinuousDefinition
from openseg.streaming.due import MemoryDueIndex
from openseg.streaming.model import DueKey
from openseg.streaming.segmenter import StreamSegmenter, epoch_ms
from tests.streaming.test_segmenter import T0, Clock, FakeLog, FakeTarget, click, history, identity, ups
from tests.streaming.test_segmenter import target as target  # the fixture: p1 in the US, one segment

P1 = "email:p1@example.com"
#: In once the signup is half an hour old, for a day.
SETTLED = ContinuousDefinition("seg-settled", 1, "policy-a",
                               'xEvent[eventType = "signup" and timestamp occurs > 30 minutes before now and '
                               "timestamp occurs <= 1 days before now]")


def test_a_member_exits_when_its_window_passes_without_a_new_event(target: FakeTarget) -> None:
    log, clock = FakeLog(), Clock()
    segmenter = StreamSegmenter(log, target, clock)
    log.add("event", click(1, T0 - dt.timedelta(minutes=5), "e1"))
    segmenter.run_until_idle()
    assert ups(target, "policy-a", P1) == {"seg-us": ("realized", T0)}
    # The click leaves "the last hour" at T0 + 55 min: due a millisecond after, not before.
    assert segmenter.due.next_due() == epoch_ms(T0 + dt.timedelta(minutes=55, milliseconds=1))
    clock.now = T0 + dt.timedelta(minutes=55)
    assert segmenter.sweep().pairs == 0
    assert ups(target, "policy-a", P1)["seg-us"][0] == "realized"
    clock.now = T0 + dt.timedelta(minutes=55, seconds=2)
    swept = segmenter.sweep()
    assert (swept.pairs, swept.changes) == (1, 1)
    assert ups(target, "policy-a", P1) == {"seg-us": ("exited", clock.now)}
    assert history(target, "policy-a") == [(P1, "seg-us", "entered"), (P1, "seg-us", "exited")]
    assert segmenter.due.next_due() is None  # out, and nothing it holds can bring it back


def test_a_new_event_moves_the_due_time_and_the_member_stays(target: FakeTarget) -> None:
    log, clock = FakeLog(), Clock()
    segmenter = StreamSegmenter(log, target, clock)
    log.add("event", click(1, T0 - dt.timedelta(minutes=5), "e1"))
    segmenter.run_until_idle()
    clock.now = T0 + dt.timedelta(minutes=30)
    log.add("event", click(1, T0 + dt.timedelta(minutes=29), "e2"))
    segmenter.run_until_idle()
    assert segmenter.due.next_due() == epoch_ms(T0 + dt.timedelta(minutes=89, milliseconds=1))
    clock.now = T0 + dt.timedelta(minutes=60)
    assert segmenter.run_until_idle() == 0 and ups(target, "policy-a", P1)["seg-us"][0] == "existing"
    clock.now = T0 + dt.timedelta(minutes=90)
    segmenter.run_until_idle()
    assert ups(target, "policy-a", P1) == {"seg-us": ("exited", clock.now)}


def test_a_profile_enters_when_a_later_window_opens(target: FakeTarget) -> None:
    target.definitions = [SETTLED]
    log, clock = FakeLog(), Clock()
    segmenter = StreamSegmenter(log, target, clock)
    log.add("event", {**click(1, T0, "s1"), "eventType": "signup"})
    segmenter.run_until_idle()
    assert ups(target, "policy-a", P1) == {}
    clock.now = T0 + dt.timedelta(minutes=31)
    segmenter.run_until_idle()
    assert ups(target, "policy-a", P1) == {"seg-settled": ("realized", clock.now)}
    # ... and leaves a day after the signup.
    clock.now = T0 + dt.timedelta(days=1, seconds=1)
    segmenter.run_until_idle()
    assert ups(target, "policy-a", P1) == {"seg-settled": ("exited", clock.now)}
    assert [event for _, _, event in history(target, "policy-a")] == ["entered", "exited"]


class FailingOnce(MemoryDueIndex):
    """A due index that fails the first ``schedule`` after :attr:`armed` is set (a crash at that point)."""

    armed = False

    def schedule(self, dues: Mapping[DueKey, int | None]) -> None:
        if self.armed:
            self.armed = False
            raise RuntimeError("killed")
        super().schedule(dues)


def test_a_sweep_killed_before_it_moves_the_due_times_exits_nobody_twice(target: FakeTarget) -> None:
    log, clock, due = FakeLog(), Clock(), FailingOnce()
    segmenter = StreamSegmenter(log, target, clock, due=due)
    log.add("event", click(1, T0 - dt.timedelta(minutes=5), "e1"))
    segmenter.run_until_idle()
    clock.now = T0 + dt.timedelta(hours=1)
    due.armed = True
    with pytest.raises(RuntimeError):
        segmenter.sweep()  # the exit is written, the due time is not moved
    restarted = StreamSegmenter(log, target, clock, due=due)
    assert restarted.sweep().pairs == 1  # swept again ...
    assert history(target, "policy-a") == [(P1, "seg-us", "entered"), (P1, "seg-us", "exited")]  # ... once
    assert ups(target, "policy-a", P1) == {"seg-us": ("exited", clock.now)}


def test_a_micro_batch_killed_before_its_membership_is_written_schedules_again(target: FakeTarget) -> None:
    log, clock, due = FakeLog(), Clock(), FailingOnce()
    log.add("event", click(1, T0 - dt.timedelta(minutes=5), "e1"))
    due.armed = True
    with pytest.raises(RuntimeError):
        StreamSegmenter(log, target, clock, due=due).run_once()
    assert ups(target, "policy-a", P1) == {}
    restarted = StreamSegmenter(log, target, clock, due=due)
    restarted.run_until_idle()
    clock.now = T0 + dt.timedelta(hours=1)
    restarted.run_until_idle()
    assert history(target, "policy-a") == [(P1, "seg-us", "entered"), (P1, "seg-us", "exited")]


def test_a_segment_of_the_expiring_segment_leaves_in_the_same_sweep(target: FakeTarget) -> None:
    dependant = ContinuousDefinition("seg-of-us", 1, "policy-a", 'inSegment("seg-us")', ("seg-us",))
    target.definitions = [*target.definitions, dependant]
    log, clock = FakeLog(), Clock()
    segmenter = StreamSegmenter(log, target, clock)
    log.add("event", click(1, T0 - dt.timedelta(minutes=5), "e1"))
    segmenter.run_until_idle()
    assert ups(target, "policy-a", P1) == {"seg-us": ("realized", T0), "seg-of-us": ("realized", T0)}
    clock.now = T0 + dt.timedelta(minutes=56)
    assert segmenter.sweep().pairs == 1  # only seg-us has a window; its profile is evaluated for both
    assert ups(target, "policy-a", P1) == {"seg-us": ("exited", clock.now), "seg-of-us": ("exited", clock.now)}


def test_a_sequence_enters_when_its_later_step_falls_due(target: FakeTarget) -> None:
    # A cart, then a reminder that has been out for half an hour: due half an hour after the reminder.
    target.definitions = [ContinuousDefinition(
        "seg-reminded", 1, "policy-a",
        'chain(xEvent, timestamp, [C0: WHAT(eventType = "cart") WHEN(<= 1 days before now), '
        'C1: WHAT(eventType = "reminder") WHEN(> 30 minutes before now)])')]
    log, clock = FakeLog(), Clock()
    segmenter = StreamSegmenter(log, target, clock)
    log.add("event", {**click(1, T0 - dt.timedelta(hours=2), "c1"), "eventType": "cart"})
    log.add("event", {**click(1, T0 - dt.timedelta(minutes=10), "r1"), "eventType": "reminder"})
    segmenter.run_until_idle()
    assert ups(target, "policy-a", P1) == {}
    assert segmenter.due.next_due() == epoch_ms(T0 + dt.timedelta(minutes=20, milliseconds=1))
    clock.now = T0 + dt.timedelta(minutes=20, seconds=1)
    segmenter.run_until_idle()
    assert ups(target, "policy-a", P1) == {"seg-reminded": ("realized", clock.now)}


def test_a_sweep_finds_its_built_profiles_parts_in_the_rows_it_read(target: FakeTarget,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A built member whose window passes is swept with its row and events read once for the whole chunk: the
    parts its identities belong to are those rows' (a build writes a profile's identityMap from its graph), not
    a store lookup per identity; an identity the rows do not hold is still looked up."""
    target.events[P1] = [click(1, T0 - dt.timedelta(minutes=50), "built")]
    log, clock = FakeLog(), Clock()
    segmenter = StreamSegmenter(log, target, clock)
    asked: list[tuple[str, str]] = []
    real = target.part
    monkeypatch.setattr(target, "part", lambda s, p, namespace, identity: asked.append((namespace, identity))
                        or real(s, p, namespace, identity))
    segmenter.due.schedule({DueKey("sb", "policy-a", P1, "seg-us"): epoch_ms(T0)})
    swept = segmenter.sweep()
    assert (swept.pairs, swept.changes) == (1, 1)
    assert ups(target, "policy-a", P1) == {"seg-us": ("realized", T0)}
    assert asked == []
    # A streamed click carrying a second identity: the sweep looks that one up (no built row holds it).
    log.add("event", {**click(1, T0, "streamed"), "identityMap": {**identity(1), "ecid": [{"id": "e-9"}]}})
    segmenter.run_until_idle()
    asked.clear()
    segmenter.due.schedule({DueKey("sb", "policy-a", P1, "seg-us"): epoch_ms(T0)})
    segmenter.sweep()
    assert asked == [("ecid", "e-9")]
