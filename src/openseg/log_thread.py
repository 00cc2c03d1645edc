"""Log lines written by a thread of their own, so that a slow write never pauses the thread that logged.

``openseg serve`` logs a line per request (uvicorn's access log) from its event loop, which also acknowledges
streamed messages. A write to a file or a pipe is usually a copy into the kernel, but it waits while the kernel
writes back other dirty pages of the disk: with ``benchmarks.streaming`` at 500 messages a second, a watchdog
thread that sampled the event loop's stack whenever it had not run for 8 ms found it in the access log's
``write`` in a quarter of those samples, more than in any other place.

:func:`logged_by_a_thread` hands what the named loggers' handlers did to one thread per logger: the logging
call only queues the record (as given: uvicorn's access formatter reads the call's arguments), and the
handlers format and write it in the thread, in order. Leaving the block writes what is queued and restores
the handlers; so does a SIGTERM whose action is the default one (uvicorn re-raises the SIGTERM it shut down for,
with the handler that was there before it: the process ended before the thread wrote "Application shutdown
complete", in one run of tests/e2e/test_worker_process.py out of several).
"""

from __future__ import annotations

import functools
import logging
import logging.handlers
import queue
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from types import FrameType


class _AsLogged(logging.handlers.QueueHandler):
    """Queues each record as the logging call made it: its handlers format it in the listener's thread."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


@contextmanager
def logged_by_a_thread(names: Sequence[str]) -> Iterator[None]:
    """Within the block, the handlers of the loggers ``names`` (those that have any) run in a thread per logger."""
    with ExitStack() as stack:
        for name in names:
            logger = logging.getLogger(name)
            handlers = list(logger.handlers)
            if not handlers:
                continue
            records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
            listener = logging.handlers.QueueListener(records, *handlers, respect_handler_level=True)
            logger.handlers = [_AsLogged(records)]
            listener.start()
            stack.callback(listener.stop)  # writes what is queued, once the handlers are back (the line below)
            stack.callback(setattr, logger, "handlers", handlers)
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, functools.partial(_written_then_ended, stack))
            stack.callback(signal.signal, signal.SIGTERM, signal.SIG_DFL)
        yield


def _written_then_ended(stack: ExitStack, signum: int, frame: FrameType | None) -> None:
    """A SIGTERM's default action, once the queued lines are written (and the handlers restored)."""
    stack.close()
    signal.raise_signal(signum)
