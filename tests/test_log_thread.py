"""Log lines written by a thread of their own (``openseg.log_thread``): what ``openseg serve`` does with uvicorn's
per-request log, so that a write waiting on the disk never pauses the event loop."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

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


_ENDED_BY_SIGTERM = """
import logging, os, signal, sys, time
from openseg.log_thread import logged_by_a_thread

class Slow(logging.FileHandler):
    def emit(self, record):
        time.sleep(0.002)
        super().emit(record)

logger = logging.getLogger("ended")
logger.setLevel(logging.INFO)
logger.addHandler(Slow(sys.argv[1]))
with logged_by_a_thread(["ended"]):
    for n in range(300):
        logger.info("line %d", n)
    os.kill(os.getpid(), signal.SIGTERM)  # as uvicorn re-raises the SIGTERM it shut down for
    time.sleep(30)
"""


def test_a_sigterm_ends_the_process_once_the_queued_lines_are_written(tmp_path: Path) -> None:
    # 300 lines at 2 ms each: without the handler, SIGTERM's default action ended the process with most unwritten.
    written = tmp_path / "lines.log"
    ended = subprocess.run([sys.executable, "-c", _ENDED_BY_SIGTERM, str(written)], timeout=60, check=False)
    assert ended.returncode == -signal.SIGTERM
    assert written.read_text().splitlines() == [f"line {n}" for n in range(300)]
