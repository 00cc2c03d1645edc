"""The worker: takes queued items and runs their handler. Runs as a thread in the server or alone."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from openseg.store.models import WorkItem
from openseg.worker.queue import Queue

if TYPE_CHECKING:
    from openseg.services import Services

log = logging.getLogger("openseg.worker")

Handler = Callable[["Services", WorkItem], None]
#: Work run every so often (the scheduler's tick), with its interval in seconds.
Periodic = tuple[float, Callable[["Services"], object]]

#: An item whose worker has not heart-beaten for this long is taken to be abandoned.
STALE_AFTER_MS = 60_000
HEARTBEAT_SECONDS = 5.0


class Worker:
    def __init__(self, services: Services, handlers: dict[str, Handler], *, poll_seconds: float = 0.5,
                 periodic: tuple[Periodic, ...] = ()) -> None:
        self.services = services
        self.handlers = handlers
        self.periodic = periodic
        self._periodic_due = [0.0] * len(periodic)
        self.queue = Queue(services.db)
        self.poll_seconds = poll_seconds
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.idle = threading.Event()

    def run_once(self) -> bool:
        """Run one queued item; False when there was nothing to do."""
        item = self.queue.claim(self.worker_id, tuple(self.handlers))
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

    def serve_forever(self) -> None:
        _lower_priority(self.services.settings.worker_nice)
        self.recover_dead_local()
        self.recover()
        while not self._stop.is_set():
            self.run_periodic()
            try:
                busy = self.run_once()
            except Exception:  # pragma: no cover - e.g. the database is briefly unavailable
                log.exception("worker loop error")
                busy = False
            if not busy:
                self.idle.set()
                self._stop.wait(self.poll_seconds)
                self.recover()
            else:
                self.idle.clear()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="openseg-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


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
