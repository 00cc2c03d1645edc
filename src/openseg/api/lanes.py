"""Request lanes: pools of their own for the routes whose work is heavy or whose latency is promised.

FastAPI runs a plain handler in one shared pool (anyio's, 40 threads). Under load, requests that decode the
profile store (profile lookups, edge segmentation) fill it, and a streamed message's acknowledgement or a job's
status waits behind them. A lane bounds how much of the process a kind of request may hold at once; its
requests queue among themselves, and what is left keeps serving the others:

- ``collection``: ``POST /collection/...`` acknowledgements (a check and the log's group commit) of batches,
  of large messages and of authenticated inlets; a small message to an open inlet is checked on the event
  loop, which awaits the commit (``api/collection.py``);
- ``edge``: ``POST /ee/v2/interact`` and ``/ee/v2/collect`` (one profile's segmentation each);
- ``lookups``: ``GET``/``POST /access/entities`` (profiles, events and membership by identity).

A lane runs its work in threads of the API's process, or, for the heavy lanes of ``openseg serve``
(``OPENSEG_API_PROCESSES``), in processes of its own (:class:`LaneProcesses`): their work is mostly Python,
which one process runs one thread at a time, so in threads it takes the interpreter from the event loop that
reads every acknowledgement; in processes it takes only a core, which the kernel shares out.

A handler is an ``async def`` that awaits :func:`run_in` with its work: a module-level function whose first
argument is the :class:`Services` it runs over (the app's in a thread, the child's own in a process) and whose
other arguments and result are plain data (they are pickled to and from a lane's process).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import multiprocessing
import os
import pickle
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import Request

from openseg.errors import OpensegError
from openseg.heap import freeze_start_up

if TYPE_CHECKING:
    from openseg.config import Settings
    from openseg.container import Services

T = TypeVar("T")
P = ParamSpec("P")

#: Threads per lane in the API's process. The heavy lanes are narrow: their work is mostly Python, which one
#: process runs one thread at a time, so more threads would add no throughput, only take the interpreter from
#: the others more often (at 1M profiles, four lookup threads polling held acknowledgements to ~85 a second).
LANES = {"collection": 8, "edge": 2, "lookups": 2}

#: The lanes ``openseg serve`` may run in processes of their own.
PROCESS_LANES = ("edge", "lookups")
#: How often a lane's process checks that the server that started it still runs.
PARENT_POLL_SECONDS = 0.5
#: What a lane's process imports before it takes work. Its first requests imported them otherwise, inside the
#: latency they promise (at 1M profiles, imports were a third to a half of each edge and lookups process's first
#: 14 s of traffic): the lanes' handlers (a request names its work by module) and pandas, which pyarrow's compute
#: functions import on first use.
PRELOADED = ("pandas", "openseg.api.access", "openseg.api.edge")


class LaneUnavailable(OpensegError):
    """A lane's process ended (killed, out of memory) while it held the request; the lane starts a new one."""

    status = 503
    title = "Service unavailable"


def _limiter(request: Request, lane: str) -> CapacityLimiter:
    """The app's limiter of ``lane`` in the running event loop (made on first use there: an app served by
    several loops one after another, as tests do, gets limiters of each)."""
    per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, CapacityLimiter]] | None = \
        getattr(request.app.state, "lanes", None)
    if per_loop is None:
        per_loop = weakref.WeakKeyDictionary()
        request.app.state.lanes = per_loop
    loop = asyncio.get_running_loop()
    if loop not in per_loop:
        per_loop[loop] = {name: CapacityLimiter(size) for name, size in LANES.items()}
    return per_loop[loop][lane]


async def run_in(request: Request, lane: str, work: Callable[Concatenate[Services, P], T],
                 *args: P.args, **kwargs: P.kwargs) -> T:
    """``work(services, *args, **kwargs)`` in ``lane``: in one of its processes when the app has them, else in
    one of its threads over the app's services."""
    processes: LaneProcesses | None = getattr(request.app.state, "lane_processes", None)
    if processes is not None and processes.runs(lane):
        return await asyncio.wrap_future(processes.submit(lane, work, *args, **kwargs))
    return await anyio.to_thread.run_sync(functools.partial(work, request.app.state.services, *args, **kwargs),
                                          limiter=_limiter(request, lane))


#: The services of a lane's process, built once by :func:`_start_child`.
_child_services: Services | None = None


def _start_child(env: dict[str, str], server: int) -> None:
    """A lane process's start: it leaves SIGINT to the server (a Ctrl-C in its terminal reaches the whole group;
    the server then stops its lanes after the requests they hold), ends when the server does (killed, it runs no
    clean-up), builds the services of the server's settings (the metadata store is migrated already), imports
    what its requests need and leaves all that out of garbage collections (:mod:`openseg.heap`)."""
    global _child_services
    from openseg.bootstrap import build_services
    from openseg.config import Settings

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_end_with, args=(server,), name="openseg-lane-watch", daemon=True).start()
    _child_services = build_services(Settings.from_env(env), migrate=False)
    for module in PRELOADED:
        importlib.import_module(module)
    freeze_start_up()


def _end_with(server: int) -> None:
    """End this process as soon as ``server`` is no longer its parent (it ended and this one was adopted).

    A poll rather than ``PR_SET_PDEATHSIG``: that fires when the *thread* that started the process ends, and an
    executor starts its processes from whichever thread submits first."""
    while os.getppid() == server:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(0)


def _serve_lane(connection: Connection, env: dict[str, str], server: int) -> None:
    """A lane process's life: start (:func:`_start_child`), say so with its pid, then answer each request the
    server sends on ``connection`` (a pickled ``(work, args, kwargs)``) with ``(True, result)`` or
    ``(False, error)``, one at a time, until the server sends None or closes its end."""
    _start_child(env, server)
    connection.send(os.getpid())
    while True:
        try:
            request = connection.recv_bytes()
        except (EOFError, OSError):
            return
        answer = _answer(request)
        if answer is None:
            return
        try:
            encoded = pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - an answer that cannot cross fails its request, not the lane
            encoded = pickle.dumps((False, RuntimeError(f"a lane's answer could not be sent back: {exc!r}")))
        connection.send_bytes(encoded)


def _answer(request: bytes) -> tuple[bool, Any] | None:
    """The answer to one request (None: the server's request to end)."""
    if _child_services is None:  # pragma: no cover - _serve_lane started the process first
        return False, RuntimeError("a lane process ran work before its services were built")
    try:
        unpickled = pickle.loads(request)
        if unpickled is None:
            return None
        work, args, kwargs = unpickled
        return True, work(_child_services, *args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the handler's error, the caller's to raise (as in a thread)
        return False, exc


class _Process:
    """One process of a lane (spawned, not forked: the server runs threads): its end of the pipe, and the
    request it holds (None: idle)."""

    def __init__(self, lane: str, env: dict[str, str]) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, theirs = context.Pipe()
        self.process = context.Process(target=_serve_lane, args=(theirs, env, os.getpid()),
                                       name=f"openseg-lane-{lane}", daemon=True)
        self.process.start()
        theirs.close()
        self.pid = 0
        self.held: Future[Any] | None = None

    def ready(self) -> _Process:
        """Wait until it has built its services (EOFError: it ended first)."""
        self.pid = self.connection.recv()
        return self

    def end(self) -> None:
        """Ask it to end, and wait until it has (its reader thread then closes the pipe)."""
        try:
            self.connection.send_bytes(pickle.dumps(None))
        except OSError:
            pass
        self.process.join(timeout=30)
        if self.process.is_alive():  # pragma: no cover - a request that never returns
            self.process.kill()
            self.process.join()


class _Lane:
    """A lane's processes, each with a thread of the server that reads its answers; requests wait in order for
    an idle one.

    The server hands a request to an idle process itself (one write to its pipe) and that process's reader
    thread settles it: the executor of ``concurrent.futures`` took a manager thread and a queue's feeder thread
    of the server per request besides (206-243 us of the server's CPU an empty call from an event loop, against
    72-103 us so; threads that also took the interpreter from the event loop)."""

    def __init__(self, name: str, size: int, env: dict[str, str]) -> None:
        self.name, self.size, self.env = name, size, env
        self._lock = threading.Lock()
        self._idle: list[_Process] = []
        self._running: list[_Process] = []
        self._waiting: deque[tuple[Future[Any], tuple[Any, ...]]] = deque()
        self._stopping = False
        self._readers: list[threading.Thread] = []

    def spawn(self) -> list[_Process]:
        """Its processes, starting (:meth:`start` waits for them)."""
        return [_Process(self.name, self.env) for _ in range(self.size)]

    def start(self, spawned: list[_Process]) -> None:
        for process in spawned:
            self._run(process.ready())

    def _run(self, process: _Process) -> None:
        with self._lock:
            self._running.append(process)
            self._idle.append(process)
        reader = threading.Thread(target=self._read, args=(process,), name=f"openseg-lane-{self.name}-reader",
                                  daemon=True)
        # The readers of processes that ended (each replaced by this one's) are done: only the live ones are kept.
        self._readers = [*(r for r in self._readers if r.is_alive()), reader]
        reader.start()
        self._dispatch()

    def pids(self) -> list[int]:
        with self._lock:
            return sorted(process.pid for process in self._running)

    def submit(self, request: tuple[Any, ...]) -> Future[Any]:
        answer: Future[Any] = Future()
        answer.set_running_or_notify_cancel()
        with self._lock:
            if self._stopping:
                raise LaneUnavailable(f"the '{self.name}' lane is not running (the server is stopping)")
            self._waiting.append((answer, request))
        self._dispatch()
        return answer

    def _dispatch(self) -> None:
        """Hand waiting requests to idle processes, oldest first."""
        while True:
            with self._lock:
                if not self._idle or not self._waiting:
                    return
                process = self._idle.pop()
                answer, request = self._waiting.popleft()
                process.held = answer
            try:
                encoded = pickle.dumps(request, pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # noqa: BLE001 - work that cannot cross fails its request, not the lane
                with self._lock:
                    process.held = None
                    self._idle.append(process)
                answer.set_exception(exc)
                continue
            try:
                process.connection.send_bytes(encoded)
            except OSError:  # the process ended before it read this: the request waits for its replacement
                with self._lock:
                    if process.held is answer:  # else its reader, seeing it end, has failed the request already
                        process.held = None
                        self._waiting.appendleft((answer, request))
                return

    def _read(self, process: _Process) -> None:
        """Settle each request ``process`` answers; when it ends, fail the one it held and start another."""
        while True:
            try:
                encoded = process.connection.recv_bytes()
            except (EOFError, OSError):
                break
            try:
                ok, result = pickle.loads(encoded)
            except Exception as exc:  # noqa: BLE001 - an answer this process cannot read fails its request
                ok, result = False, RuntimeError(f"a lane's answer could not be read: {exc!r}")
            with self._lock:
                answer, process.held = process.held, None
                self._idle.append(process)
            if answer is not None:
                (answer.set_result if ok else answer.set_exception)(result)
            self._dispatch()
        with self._lock:
            held, process.held = process.held, None
            if process in self._idle:
                self._idle.remove(process)
            if process in self._running:
                self._running.remove(process)
            stopping = self._stopping
        if held is not None:
            held.set_exception(LaneUnavailable(
                f"the '{self.name}' lane's process ended while it held this request; it was restarted: retry"))
        process.connection.close()
        process.process.join(timeout=5)
        while not stopping:
            try:
                self._run(_Process(self.name, self.env).ready())
                return
            except (EOFError, OSError):  # pragma: no cover - a replacement that died starting: try again
                time.sleep(1)
                with self._lock:
                    stopping = self._stopping

    def stop(self) -> None:
        """Refuse new requests, cancel those waiting, and end the processes once they answered those they hold."""
        with self._lock:
            self._stopping = True
            waiting, self._waiting = list(self._waiting), deque()
        for answer, _ in waiting:
            answer.set_exception(LaneUnavailable(f"the '{self.name}' lane stopped before it ran this request"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with self._lock:
                if all(process.held is None for process in self._running):
                    break
            time.sleep(0.01)
        with self._lock:
            processes = list(self._running)
        for process in processes:
            process.end()
        for reader in self._readers:
            reader.join(timeout=10)


class LaneProcesses:
    """Processes of their own for some lanes of the API (``openseg serve``'s ``OPENSEG_API_PROCESSES``).

    Each lane gets ``size`` processes started (spawned, not forked: the server runs threads) with the server's
    settings; each builds its own services, so its caches (decoded row groups, compiled predicates) are its own.
    A process that ends while it holds a request fails that one with 503 and is replaced; requests waiting for
    the lane wait for the replacement.

    Args:
        settings: The server's settings, given to every child.
        sizes: Processes per lane (lanes not named run in the API's threads).
    """

    def __init__(self, settings: Settings, sizes: Mapping[str, int]) -> None:
        unknown = set(sizes) - set(PROCESS_LANES)
        if unknown:
            raise ValueError(f"lanes {sorted(unknown)} cannot run in processes (only {list(PROCESS_LANES)})")
        self.env = {**os.environ, **settings.to_env()}
        self.sizes = {lane: size for lane, size in sizes.items() if size > 0}
        self._lanes: dict[str, _Lane] = {}
        self._lock = threading.Lock()

    def runs(self, lane: str) -> bool:
        return lane in self.sizes

    def start(self) -> None:
        """Start every lane's processes (and wait until each has built its services)."""
        lanes = {name: _Lane(name, size, self.env) for name, size in self.sizes.items()}
        spawned = {name: lane.spawn() for name, lane in lanes.items()}  # all at once: each imports for seconds
        for name, lane in lanes.items():
            lane.start(spawned[name])
        with self._lock:
            self._lanes = lanes

    def stop(self) -> None:
        """Stop every lane's processes once the requests they hold are answered."""
        with self._lock:
            lanes, self._lanes = list(self._lanes.values()), {}
        for lane in lanes:
            lane.stop()

    def submit(self, lane: str, work: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """``work(services, *args, **kwargs)`` in one of ``lane``'s processes (its answer, or its error)."""
        with self._lock:
            running = self._lanes.get(lane)
        if running is None:
            raise LaneUnavailable(f"the '{lane}' lane is not running (the server is stopping)")
        return running.submit((work, args, kwargs))

    def pids(self, lane: str) -> list[int]:
        """The process ids of ``lane``'s running processes."""
        running = self._lanes.get(lane)
        return running.pids() if running is not None else []
