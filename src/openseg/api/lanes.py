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
import signal
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
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


def _in_child(work: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    if _child_services is None:  # pragma: no cover - the pool's initializer always ran first
        raise RuntimeError("a lane process ran work before its services were built")
    return work(_child_services, *args, **kwargs)


class LaneProcesses:
    """Processes of their own for some lanes of the API (``openseg serve``'s ``OPENSEG_API_PROCESSES``).

    Each lane gets a pool of ``size`` processes started (spawned, not forked: the server runs threads) with the
    server's settings; each builds its own services, so its caches (decoded row groups, compiled predicates)
    are its own. A process that ends while it holds requests fails those with 503 and the lane starts anew.

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
        self._pools: dict[str, ProcessPoolExecutor] = {}
        self._lock = threading.Lock()

    def runs(self, lane: str) -> bool:
        return lane in self.sizes

    def start(self) -> None:
        """Start every lane's processes (and wait until each has built its services)."""
        with self._lock:
            for lane in self.sizes:
                self._pools[lane] = self._pool(lane)
        for lane, pool in list(self._pools.items()):
            for waiting in [pool.submit(os.getpid) for _ in range(self.sizes[lane])]:
                waiting.result()

    def stop(self) -> None:
        """Stop every lane's processes once the requests they hold are answered."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, lane: str, work: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """``work(services, *args, **kwargs)`` in one of ``lane``'s processes (its answer, or its error)."""
        with self._lock:
            pool = self._pools.get(lane)
            if pool is None:
                raise LaneUnavailable(f"the '{lane}' lane is not running (the server is stopping)")
            try:
                submitted = pool.submit(_in_child, work, args, kwargs)
            except BrokenProcessPool:
                pool = self._renew(lane, pool)
                submitted = pool.submit(_in_child, work, args, kwargs)
        answer: Future[T] = Future()
        submitted.add_done_callback(functools.partial(self._settle, lane, pool, answer))
        return answer

    def pids(self, lane: str) -> list[int]:
        """The process ids of ``lane``'s running processes."""
        pool = self._pools.get(lane)
        # The executor keeps its processes by id; it has no public way to list them.
        return sorted(getattr(pool, "_processes", None) or {})

    def _pool(self, lane: str) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.sizes[lane], mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_child, initargs=(self.env, os.getpid()))

    def _renew(self, lane: str, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        """The lane's pool, started anew if it still is ``broken`` (the first request to see it does); call with
        the lock held."""
        if self._pools.get(lane) is broken:
            self._pools[lane] = self._pool(lane)
        return self._pools[lane]

    def _settle(self, lane: str, pool: ProcessPoolExecutor, answer: Future[T], done: Future[T]) -> None:
        error = done.exception()
        if isinstance(error, BrokenProcessPool):
            with self._lock:
                self._renew(lane, pool)
            answer.set_exception(LaneUnavailable(
                f"the '{lane}' lane's process ended while it held this request; it was restarted: retry"))
        elif error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(done.result())
