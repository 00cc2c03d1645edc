"""``openseg serve``'s worker as a child process (``OPENSEG_WORKER_MODE=process``, the default).

The worker's jobs, builds and exports run Python (pyarrow, the engine's callers) that holds the interpreter's
lock, so as threads of the API's process they make its requests wait, whatever their CPU priority. As a child
``openseg worker`` they share nothing with the API but the metadata store, the home and the lake, which every
worker process shares anyway (docs/scale-out.md). The child gets the server's settings, lowers its lanes' CPU
priority itself (``OPENSEG_WORKER_NICE``, as any ``openseg worker`` does), is restarted after a backoff when it
dies, is stopped with the server, and is killed by the kernel when the server dies without stopping it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

from openseg.config import Settings

log = logging.getLogger("openseg.worker")

#: linux/prctl.h: the signal the calling process gets when the thread that started it ends.
PR_SET_PDEATHSIG = 1


def worker_command() -> list[str]:
    """``openseg worker`` with this interpreter (and so this installation of openseg)."""
    return [sys.executable, "-m", "openseg", "worker"]


class WorkerProcess:
    """Runs ``command`` (``openseg worker``) as a child process for as long as it is started.

    Args:
        settings: The server's settings, given to the child as its environment (over this process's).
        command: What to run (tests run something smaller).
        first_backoff: Seconds before the first restart of a child that ended unexpectedly; each further
            restart waits twice as long, up to ``max_backoff``, until a child has run for ``steady_seconds``.
        max_backoff: The longest wait before a restart.
        steady_seconds: How long a child must have run for its end to restart the backoff from the start.
        stop_seconds: How long :meth:`stop` lets the child finish (SIGINT: it takes no new work and waits for
            its lanes, as ``openseg worker`` does on Ctrl-C) before killing it. A job killed there is taken back
            by the next worker, as after any crash (docs/reliability.md).
    """

    def __init__(self, settings: Settings, *, command: Sequence[str] | None = None, first_backoff: float = 1.0,
                 max_backoff: float = 60.0, steady_seconds: float = 60.0, stop_seconds: float = 30.0) -> None:
        self.command = list(command or worker_command())
        self.env = {**os.environ, **settings.to_env()}
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.steady_seconds = steady_seconds
        self.stop_seconds = stop_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The running child's process id."""
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    def start(self) -> None:
        """Start the child, and restart it whenever it ends until :meth:`stop`."""
        self._thread = threading.Thread(target=self._supervise, name="openseg-worker-process", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the child (SIGINT, then SIGKILL after ``stop_seconds``) and start no other."""
        self._stop.set()
        with self._lock:
            child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(self.stop_seconds)
            except subprocess.TimeoutExpired:
                log.warning("the worker process %d did not stop within %.0f s: killed", child.pid, self.stop_seconds)
                child.kill()
                child.wait()
        if self._thread is not None:
            self._thread.join()

    def _supervise(self) -> None:
        # The child is started from this thread, which lives until the child has ended: PR_SET_PDEATHSIG fires
        # when the thread that started a process ends, not only when its process does.
        backoff = self.first_backoff
        while True:
            with self._lock:
                if self._stop.is_set():
                    return
                started = time.monotonic()
                try:
                    child = self._child = self._spawn()
                except OSError:
                    log.exception("could not start the worker process; trying again in %.1f s", backoff)
                    child = None
            if child is not None:
                code = child.wait()
                if self._stop.is_set():
                    return
                ran = time.monotonic() - started
                if ran >= self.steady_seconds:
                    backoff = self.first_backoff
                log.warning("the worker process %d ended (%s) after %.1f s; starting another in %.1f s",
                            child.pid, _describe(code), ran, backoff)
            if self._stop.wait(backoff):
                return
            backoff = min(self.max_backoff, backoff * 2)

    def _spawn(self) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(self.command, env=self.env, stdin=subprocess.DEVNULL,
                                 preexec_fn=_child_setup(os.getpid()),
                                 # Its own process group: a Ctrl-C in the server's terminal reaches the server
                                 # alone, which then stops the child (no restart of a child that saw it first).
                                 process_group=0)
        log.info("the worker process %d started", child.pid)
        return child


def _child_setup(parent: int) -> Callable[[], None]:
    """What a child runs before ``exec``: it hears SIGINT from its first instant, and gets SIGKILL when
    ``parent`` (the calling thread) ends.

    SIGINT: a process that ignores SIGINT (started by a shell without job control, as ``cmd &`` is) passes
    that on to the children it starts, and the kernel discards an ignored signal. ``openseg worker`` sets its
    own handler once its imports are done, so a stop soon after a start would go unheard and wait
    ``stop_seconds`` for nothing. (Under ``openseg serve`` uvicorn's handler is set by then, and a handled
    signal is at its default after ``exec``; another host, or a test run, may ignore it.) At its default, a
    SIGINT before the child's handler ends it at once, before it has taken any work.

    SIGKILL with the parent, even a parent killed with SIGKILL, which runs no clean-up: no worker is ever left
    running without its server. Linux only; elsewhere :meth:`WorkerProcess.stop` alone stops it."""
    if not sys.platform.startswith("linux"):  # pragma: no cover - openseg is served from Linux
        return _hear_sigint
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork: the child only calls it

    def die_with_parent() -> None:
        _hear_sigint()
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the server ended before the line above: nobody will stop this child
            os.kill(os.getpid(), signal.SIGKILL)

    return die_with_parent


def _hear_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:  # pragma: no cover - a signal Python has no name for
            return f"killed by signal {-code}"
    return f"exit code {code}"
