"""The worker: takes queued items and runs their handler. Runs as a thread in the server or alone."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from openseg.store.models import WorkItem
from openseg.worker.queue import Queue

if TYPE_CHECKING:
    from openseg.services import Services

log = logging.getLogger("openseg.worker")

Handler = Callable[["Services", WorkItem], None]

#: An item whose worker has not heart-beaten for this long is taken to be abandoned.
STALE_AFTER_MS = 60_000
HEARTBEAT_SECONDS = 5.0


class Worker:
    def __init__(self, services: Services, handlers: dict[str, Handler], *, poll_seconds: float = 0.5) -> None:
        self.services = services
        self.handlers = handlers
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

    def serve_forever(self) -> None:
        self.recover()
        while not self._stop.is_set():
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
