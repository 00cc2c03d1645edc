"""The one job lifecycle segment and export jobs share: start, progress, cancel, fail, finish."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from openseg import job_lifecycle as lifecycle


@dataclass
class Job:
    status: str = "QUEUED"
    metrics: Any = None
    errors: Any = field(default_factory=list)
    created: int = 1_000
    updated: int = 1_000


def test_a_job_runs_reports_progress_and_succeeds_with_its_total_time() -> None:
    job = Job()
    started = lifecycle.start(job, since=job.created)
    assert (job.status, job.metrics) == ("PROCESSING", {"totalTime": {"startTimeInMs": 1_000}})
    lifecycle.progress(job, "openseg:progress", {"step": "ev", "stepsDone": 1, "stepsTotal": 3})
    lifecycle.finish(job, "SUCCEEDED")
    total = job.metrics["totalTime"]
    assert job.status == "SUCCEEDED" and job.metrics["openseg:progress"]["step"] == "ev"
    assert total["startTimeInMs"] == 1_000 and total["endTimeInMs"] >= started
    assert total["totalTimeInMs"] == total["endTimeInMs"] - 1_000 and job.updated == total["endTimeInMs"]


def test_a_cancel_is_seen_at_the_next_step() -> None:
    job = Job()
    lifecycle.start(job)
    job.status = "CANCELLING"  # asked through the API while it runs
    with pytest.raises(lifecycle.Cancelled):
        lifecycle.progress(job, "openseg:progress", {"step": "ev"})
    with pytest.raises(lifecycle.Cancelled):
        lifecycle.check_cancel(job)
    with pytest.raises(lifecycle.Cancelled):
        lifecycle.check_cancel(None)  # the job is gone
    assert "openseg:progress" not in job.metrics


def test_a_failure_adds_its_error_and_closes_the_total_time() -> None:
    job = Job()
    lifecycle.start(job)
    lifecycle.add_errors(job, [{"code": "0090000012", "msg": "segment s could not be evaluated", "segmentId": "s"}])
    lifecycle.fail(job, lifecycle.UNEXPECTED, "evaluation failed: boom")
    assert job.status == "FAILED" and "endTimeInMs" in job.metrics["totalTime"]
    assert job.errors == [{"code": "0090000012", "msg": "segment s could not be evaluated", "segmentId": "s"},
                          {"code": "0090000009", "msg": "evaluation failed: boom"}]
