"""Log lines written by a thread of their own (``openseg.log_thread``): what ``openseg serve`` does with uvicorn's
per-request log, so that a write waiting on the disk never pauses the event loop."""

from __future__ import annotations

import logging
import threading
import uuid

from openseg.log_thread import logged_by_a_thread


class Kept(logging.Handler):
    """Keeps each line it formats, with the thread that wrote it; the first write waits for ``opened``."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        self.lines: list[tuple[str, str]] = []
        self.opened = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.opened.wait(10)
        self.lines.append((self.format(record), threading.current_thread().name))


def test_a_logging_call_returns_while_its_line_waits_to_be_written_and_every_line_is_written_in_order() -> None:
    logger = logging.getLogger(f"test.{uuid.uuid4().hex}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    kept = Kept()
    logger.addHandler(kept)
    with logged_by_a_thread([logger.name, "test.without.handlers"]):
        for n in range(100):
            logger.info('%s - "GET /health HTTP/1.1" %d', "127.0.0.1:5000", 200 + n)  # as uvicorn's access log
        # Every call returned though the first write still waits.
        assert kept.lines == []
        kept.opened.set()
    # Leaving the block writes what was queued, formatted from each call's own arguments, and gives the
    # handlers back.
    assert [line for line, _ in kept.lines] == [f'INFO 127.0.0.1:5000 - "GET /health HTTP/1.1" {200 + n}'
                                                 for n in range(100)]
    assert {thread for _, thread in kept.lines} != {threading.current_thread().name}
    assert logger.handlers == [kept]
    logger.info("after")
    assert kept.lines[-1] == ("INFO after", threading.current_thread().name)
