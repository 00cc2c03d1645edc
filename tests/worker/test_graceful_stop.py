"""``openseg worker`` stopped with SIGINT (Ctrl-C, ``openseg serve``'s stop of its child): it takes no new work and
waits for the item in hand, which ends recorded, before it returns."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from openseg.container import Services
from openseg.store.models import WorkItem
from openseg.worker.loop import Worker
from openseg.worker.queue import enqueue


def test_sigint_waits_for_the_item_in_hand(services: Services) -> None:
    """The KeyboardInterrupt of a SIGINT is raised where the main thread waits for its lanes; waiting in
    ``Thread.join`` there, an interrupted join marked the running lane as ended (CPython 3.11's
    ``_wait_for_tstate_lock``), so the stop did not wait for it and the process ended under the item in hand."""
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow(_: Services, __: Any) -> None:
        started.set()
        assert release.wait(30)
        finished.set()

    def interrupt() -> None:
        if started.wait(30):
            time.sleep(0.3)  # the main thread waits in serve_lanes
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)  # the stop is still waiting for the item
        release.set()

    worker = Worker(services, {"slow": slow}, poll_seconds=0.05)
    with services.db.session() as session:
        enqueue(session, "slow", "s1")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            worker.serve_lanes()
        assert finished.is_set()
        with services.db.session() as session:
            assert [item.status for item in session.query(WorkItem)] == ["done"]
    finally:
        release.set()
        worker.stop()
        signal.signal(signal.SIGINT, previous)
