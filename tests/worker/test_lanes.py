"""The worker's lanes: work of one lane never waits behind another's (a tenant's long Query Service query
does not hold up a segment job; issue #19)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from openseg.bootstrap import LANES, handlers
from openseg.container import Services
from openseg.worker.loop import Worker
from openseg.worker.queue import enqueue


def test_a_long_item_of_one_lane_does_not_hold_up_the_other(services: Services) -> None:
    release, slow_started, fast_done = threading.Event(), threading.Event(), threading.Event()

    def slow(_: Services, __: Any) -> None:
        slow_started.set()
        assert release.wait(30)

    def fast(_: Services, __: Any) -> None:
        fast_done.set()

    worker = Worker(services, {"slow": slow, "fast": fast}, poll_seconds=0.05, lanes=(("fast",), ("slow",)))
    with services.db.session() as session:
        enqueue(session, "slow", "q1")
    worker.start()
    try:
        assert slow_started.wait(10)
        with services.db.session() as session:
            enqueue(session, "fast", "j1")
        # The slow item still runs, and the fast one is done: a one-lane worker would wait for it.
        assert fast_done.wait(10) and not release.is_set()
    finally:
        release.set()
        worker.stop()


def test_one_lane_runs_everything_in_order_when_no_lanes_are_given(services: Services) -> None:
    ran: list[str] = []
    worker = Worker(services, {"a": lambda _, item: ran.append(item.ref_id), "b": lambda _, item: ran.append(item.ref_id)})
    with services.db.session() as session:
        enqueue(session, "a", "1")
        enqueue(session, "b", "2")
    assert worker.lanes == [("a", "b")] and worker.run_until_idle() == 2 and ran == ["1", "2"]


def test_the_service_runs_queries_in_a_lane_of_their_own() -> None:
    assert LANES == (("ingest_batch", "build_profiles", "segment_job", "export_job"), ("query",))
    assert {kind for lane in LANES for kind in lane} == set(handlers())


def test_a_lane_naming_work_nobody_runs_is_refused(services: Services) -> None:
    with pytest.raises(ValueError, match="lanes name work no handler runs: \\['nope'\\]"):
        Worker(services, {"a": lambda *_: None}, lanes=(("a", "nope"),))
