"""Request lanes: thread pools of their own for the routes whose work is heavy or whose latency is promised.

FastAPI runs a plain handler in one shared pool (anyio's, 40 threads). Under load, requests that decode the
profile store (profile lookups, edge segmentation) fill it, and a streamed message's acknowledgement or a job's
status waits behind them. A lane bounds how many threads a kind of request may hold at once; its requests
queue among themselves, and what is left of the shared pool keeps serving the others:

- ``collection``: ``POST /collection/...`` acknowledgements (a check and the log's group commit);
- ``edge``: ``POST /ee/v2/interact`` and ``/ee/v2/collect`` (one profile's segmentation each);
- ``lookups``: ``GET /access/entities`` (profiles, events and membership by identity).

A handler is an ``async def`` that awaits :func:`run_in` with its work as a plain function.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import Request

T = TypeVar("T")

#: Threads per lane. The heavy lanes are narrow: their work is mostly Python, which one process runs one
#: thread at a time, so more threads would add no throughput, only take the interpreter from the others more
#: often (at 1M profiles, four lookup threads polling held acknowledgements to ~85 a second).
LANES = {"collection": 8, "edge": 2, "lookups": 2}


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


async def run_in(request: Request, lane: str, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``work(*args, **kwargs)`` in a thread of ``lane``."""
    return await anyio.to_thread.run_sync(functools.partial(work, *args, **kwargs),
                                          limiter=_limiter(request, lane))
