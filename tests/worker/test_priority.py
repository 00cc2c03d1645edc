"""The worker yields the CPU to requests: its thread, and the engine threads it starts, run at a lower
priority (``OPENSEG_WORKER_NICE``)."""

from __future__ import annotations

import os
import threading

import pytest

from openseg.config import Settings
from openseg.worker.loop import _lower_priority


def _priority_after(nice: int) -> tuple[int, int, int]:
    """(before, after, a thread started afterwards) of a fresh thread lowering its priority by ``nice``."""
    seen: list[int] = []

    def run() -> None:
        me = threading.get_native_id()
        seen.append(os.getpriority(os.PRIO_PROCESS, me))
        _lower_priority(nice)
        seen.append(os.getpriority(os.PRIO_PROCESS, me))
        child = threading.Thread(target=lambda: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        child.start()
        child.join()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    before, after, child = seen
    return before, after, child


def test_the_worker_thread_and_the_threads_it_starts_run_at_a_lower_priority() -> None:
    before, after, child = _priority_after(7)
    assert after == min(19, before + 7) and child == after
    # Only the worker's thread: the process's other threads (the API's) keep theirs.
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


def test_nice_zero_leaves_the_priority_alone() -> None:
    before, after, _ = _priority_after(0)
    assert after == before


def test_the_setting_is_bounded(tmp_path: object) -> None:
    assert Settings.from_env(home=tmp_path, env={}).worker_nice == 10
    assert Settings.from_env(home=tmp_path, env={"OPENSEG_WORKER_NICE": "0"}).worker_nice == 0
    with pytest.raises(ValueError, match="OPENSEG_WORKER_NICE must be between 0 and 19"):
        Settings.from_env(home=tmp_path, env={"OPENSEG_WORKER_NICE": "25"})
