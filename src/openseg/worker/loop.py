"""The worker: takes queued items and runs their handler, in threads of ``openseg worker`` (which ``openseg serve``
starts as its child process) or of the server itself (``OPENSEG_WORKER_MODE=thread``)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from openseg.store.models import WorkItem
from openseg.worker.queue import Queue

if TYPE_CHECKING:
    from openseg.container import Services

log = logging.getLogger("openseg.worker")

Handler = Callable[["Services", WorkItem], None]
#: Work run every so often (the scheduler's tick), with its interval in seconds.
Periodic = tuple[float, Callable[["Services"], object]]
#: A loop that runs in its own thread beside the lanes until the event is set (the streamer).
Daemon = Callable[[threading.Event], None]

#: An item whose worker has not heart-beaten for this long is taken to be abandoned.
STALE_AFTER_MS = 60_000
HEARTBEAT_SECONDS = 5.0


class Worker:
    """Runs queued work items with ``handlers``, in one thread per lane once started.

    Args:
        services: The container the handlers get.
        handlers: Work item kind -> the function that runs it.
        poll_seconds: How long an idle lane waits before looking again.
        periodic: (interval, work) run by the first lane (the scheduler).
        lanes: The kinds each thread takes (default: one thread taking every kind). Kinds in separate lanes
            never wait for each other: a long query does not hold up a segment job.
        daemons: Loops started in a thread each beside the lanes and stopped with them (the streamer).
    """

    def __init__(self, services: Services, handlers: dict[str, Handler], *, poll_seconds: float = 0.5,
                 periodic: tuple[Periodic, ...] = (), lanes: Sequence[Sequence[str]] = (),
                 daemons: Sequence[Daemon] = ()) -> None:
        self.services = services
        self.handlers = handlers
        self.periodic = periodic
        self._periodic_due = [0.0] * len(periodic)
        self.queue = Queue(services.db)
        self.poll_seconds = poll_seconds
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.lanes = [tuple(lane) for lane in lanes] or [tuple(handlers)]
        unknown = {kind for lane in self.lanes for kind in lane} - set(handlers)
        if unknown:
            raise ValueError(f"lanes name work no handler runs: {sorted(unknown)}")
        self.daemons = tuple(daemons)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ended: list[threading.Event] = []  # set by each of ``_threads`` as it ends

    def run_once(self, kinds: Sequence[str] | None = None) -> bool:
        """Run one queued item (of ``kinds``; default: any this worker handles); False when there was none."""
        item = self.queue.claim(self.worker_id, tuple(kinds or self.handlers))
        if item is None:
            return False
        handler = self.handlers[item.kind]
        beating = threading.Event()
        beat = threading.Thread(target=self._beat, args=(item.id, beating), daemon=True)
        beat.start()
        try:
            handler(self.services, item)
        except Exception as exc:  # the handler records a user-facing failure; this keeps the queue honest
            log.exception("work item %s (%s %s) failed", item.id, item.kind, item.ref_id)
            self.queue.finish(item.id, error=f"{type(exc).__name__}: {exc}")
        else:
            self.queue.finish(item.id)
        finally:
            beating.set()
            beat.join()
        return True

    def _beat(self, item_id: int, done: threading.Event) -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            try:
                self.queue.heartbeat(item_id)
            except Exception:  # pragma: no cover - a missed beat is retried
                log.exception("heartbeat failed")

    def run_until_idle(self, max_items: int = 10_000) -> int:
        """Run queued items until none is left (tests and the CLI use this); returns how many ran."""
        ran = 0
        while ran < max_items and self.run_once():
            ran += 1
        return ran

    def recover(self, max_age_ms: int = STALE_AFTER_MS) -> int:
        return self.queue.recover_stale(max_age_ms)

    def recover_dead_local(self) -> int:
        """At start-up, take back at once the items of workers on this host whose process is gone
        (a killed server), instead of waiting for their heartbeat to go stale."""
        host = socket.gethostname()
        return self.queue.recover_claimed_by(
            lambda claimer: claimer.split(":")[0] == host and not _alive(int(claimer.split(":")[1]))
        )

    def run_periodic(self) -> None:
        """Run the periodic work whose interval has passed."""
        now = time.monotonic()
        for index, (interval, work) in enumerate(self.periodic):
            if now >= self._periodic_due[index]:
                self._periodic_due[index] = now + interval
                try:
                    work(self.services)
                except Exception:  # pragma: no cover - logged; the next interval tries again
                    log.exception("periodic work %s failed", getattr(work, "__name__", work))

    def serve_forever(self, kinds: Sequence[str] | None = None, first: bool = True) -> None:
        """Run items of ``kinds`` (default: all) until stopped; the ``first`` lane also recovers abandoned
        items and runs the periodic work."""
        _lower_priority(self.services.settings.worker_nice)
        if first:
            self.recover_dead_local()
            self.recover()
        while not self._stop.is_set():
            if first:
                self.run_periodic()
            try:
                busy = self.run_once(kinds)
            except Exception:  # pragma: no cover - e.g. the database is briefly unavailable
                log.exception("worker loop error")
                busy = False
            if not busy:
                self._stop.wait(self.poll_seconds)
                if first:
                    self.recover()

    def start(self) -> None:
        """One thread per lane."""
        for index, kinds in enumerate(self.lanes):
            self._start_thread(f"openseg-worker-{index}", self.serve_forever, kinds, index == 0)
        for index, daemon in enumerate(self.daemons):
            self._start_thread(f"openseg-daemon-{index}", daemon, self._stop)

    def _start_thread(self, name: str, target: Callable[..., object], *args: object) -> None:
        ended = threading.Event()

        def run() -> None:
            try:
                target(*args)
            finally:
                ended.set()

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        self._ended.append(ended)

    def serve_lanes(self) -> None:
        """Run every lane until stopped or interrupted (``openseg worker``: the lanes as threads).

        SIGINT's KeyboardInterrupt is raised where this waits, so it waits in ``time.sleep`` and reads flags the
        threads set as they end: interrupted inside ``Thread.join`` (or ``is_alive``), CPython 3.11 marks the
        thread it waited for as ended while it still runs (``threading._wait_for_tstate_lock`` releases the
        running thread's own lock), and the stop below would then not wait for the item in its hands."""
        self.start()
        try:
            while not all(ended.is_set() for ended in self._ended):
                time.sleep(0.5)
        finally:
            self.stop()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)


def _lower_priority(nice: int) -> None:
    """Lower this thread's CPU priority by ``nice`` (Linux schedules threads, and the threads an engine
    starts from this one inherit it): jobs and builds then use the CPU the API's requests leave, so a
    status read stays quick while a job runs on a small machine. Where the platform cannot, nothing."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + nice))
    except OSError:  # pragma: no cover - not permitted here: run at the same priority
        log.warning("could not lower the worker's CPU priority")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's live process
        return True
    return True
