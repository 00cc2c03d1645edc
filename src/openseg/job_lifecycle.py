"""One lifecycle for the service's jobs (segment jobs, export jobs): start, progress, cancel, fail, finish.

A job record has AEP's fields: ``status``, ``metrics`` (with ``totalTime``), ``errors`` (``{code, msg}``
entries) and ``created`` / ``updated`` times in epoch milliseconds. Every runner moves its jobs through the
same states the same way:

    QUEUED -> PROCESSING -> SUCCEEDED | FAILED
                  \\-> CANCELLING -> CANCELLED       (a cancel asked while it runs, seen at the next step)

so that ``totalTime``, the error entries and what a cancel does read alike on every kind of job.
"""

from __future__ import annotations

from typing import Any, Protocol

from openseg.clock import now_ms

#: States a job never leaves.
FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
#: States in which a cancel has been asked for.
CANCEL_ASKED = ("CANCELLING", "CANCELLED")
#: The error code of a job that failed for a reason its runner did not foresee.
UNEXPECTED = "0090000009"


class JobRecord(Protocol):
    """What the lifecycle reads and writes of a job (the metadata store's row has these columns)."""

    status: str
    metrics: Any
    errors: Any
    created: int
    updated: int


class Cancelled(Exception):
    """The job's cancel was seen at a step: the runner stops and leaves nothing half-written."""


def start(job: JobRecord, since: int | None = None) -> int:
    """Mark the job PROCESSING, its ``totalTime`` starting at ``since`` (default: now); returns now."""
    now = now_ms()
    job.status = "PROCESSING"
    job.metrics = {"totalTime": {"startTimeInMs": since if since is not None else now}}
    job.updated = now
    return now


def progress(job: JobRecord, key: str, value: dict[str, Any]) -> None:
    """Record where the job is (``metrics[key]``); raises :class:`Cancelled` when a cancel was asked."""
    if job.status in CANCEL_ASKED:
        raise Cancelled()
    job.metrics = {**(job.metrics or {}), key: value}
    job.updated = now_ms()


def check_cancel(job: JobRecord | None) -> None:
    """Raise :class:`Cancelled` when the job is gone or a cancel was asked."""
    if job is None or job.status in CANCEL_ASKED:
        raise Cancelled()


def finish(job: JobRecord, status: str) -> None:
    """Move the job to ``status`` (final), closing its ``totalTime``."""
    now = now_ms()
    metrics = dict(job.metrics or {})
    total = dict(metrics.get("totalTime") or {"startTimeInMs": now})
    total.update(endTimeInMs=now, totalTimeInMs=now - total["startTimeInMs"])
    metrics["totalTime"] = total
    job.metrics = metrics
    job.status = status
    job.updated = now


def fail(job: JobRecord, code: str, message: str, **extra: str) -> None:
    """Finish the job FAILED with one more ``errors`` entry (``code``, ``msg`` and any ``extra`` fields)."""
    add_errors(job, [{"code": code, "msg": message, **extra}])
    finish(job, "FAILED")


def add_errors(job: JobRecord, entries: list[dict[str, str]]) -> None:
    """Append ``errors`` entries (a job may succeed with some: a segment that failed alone)."""
    job.errors = [*(job.errors or []), *entries]
