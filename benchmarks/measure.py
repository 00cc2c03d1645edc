"""Timing and peak-memory measurement: the median of N runs, in a fresh child process.

Each measurement runs in its own spawned process, so its peak resident set size is that of the
measured work alone (plus the interpreter and its imports, reported separately as ``baseline_rss``),
not of whatever the benchmark runner has allocated before. The callable and its arguments must be
picklable: a module-level function and plain data.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any


@dataclass(frozen=True)
class Measurement:
    """Wall-clock times of repeated runs of one callable, and the peak memory of the process."""

    label: str
    runs: tuple[float, ...]
    peak_rss: int | None = None
    baseline_rss: int | None = None
    result: Any = None

    @property
    def median(self) -> float:
        """The median run time in seconds."""
        return statistics.median(self.runs)


class MeasurementFailed(RuntimeError):
    """The measured callable raised, or its process died (for example killed for lack of memory)."""


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field (reported in KiB), in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _child(connection: Connection, fn: Callable[..., Any], args: tuple[Any, ...], repeat: int) -> None:
    try:
        baseline = _status_kib("VmRSS")
        runs = []
        result = None
        for _ in range(repeat):
            started = time.perf_counter()
            result = fn(*args)
            runs.append(time.perf_counter() - started)
        # VmHWM is this process's own high-water mark. ru_maxrss is not: Linux carries it over exec
        # from the forking parent, so a child of a large process would report the parent's size.
        peak = _status_kib("VmHWM")
        connection.send(("ok", runs, peak, baseline, result))
    except BaseException:  # noqa: BLE001 - everything goes back to the parent as text
        connection.send(("error", traceback.format_exc()))
    finally:
        connection.close()


def measure(label: str, fn: Callable[..., Any], *args: Any, repeat: int = 3) -> Measurement:
    """Runs ``fn(*args)`` ``repeat`` times in a fresh process; returns times, peak RSS and the last result.

    Raises:
        MeasurementFailed: ``fn`` raised (the child's traceback is in the message) or the child died.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child, args=(sender, fn, args, repeat), name=f"bench-{label}", daemon=True
    )
    process.start()
    sender.close()
    try:
        message = receiver.recv()
    except EOFError as error:
        process.join()
        raise MeasurementFailed(
            f"{label}: the measuring process died (exit code {process.exitcode})"
        ) from error
    except BaseException:  # interrupted while waiting: do not leave the child running
        process.terminate()
        process.join()
        raise
    finally:
        receiver.close()
    process.join()
    if message[0] == "error":
        raise MeasurementFailed(f"{label} failed:\n{message[1]}")
    _, runs, peak, baseline, result = message
    return Measurement(label, tuple(runs), peak, baseline, result)


def time_in_process(label: str, fn: Callable[..., Any], *args: Any, repeat: int = 1) -> Measurement:
    """Runs ``fn(*args)`` ``repeat`` times in this process (no memory figure); for unpicklable work."""
    runs = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn(*args)
        runs.append(time.perf_counter() - started)
    return Measurement(label, tuple(runs), result=result)
