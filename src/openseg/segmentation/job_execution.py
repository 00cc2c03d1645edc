"""Running a segment job on the worker: one plan per merge policy, membership diff, atomic publish.

The job runs on what :class:`~openseg.segmentation.ports.SegmentJobServices` gives it: units of work on the
metadata store (the job, merge policies and profile store records), the settings and the engine.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from openseg import failures
from openseg import job_lifecycle as lifecycle
from openseg.clock import ms_to_datetime, now_ms
from openseg.pql import parse
from openseg.profiles.service import ensure_store
from openseg.profiles.store import resolve_store
from openseg.scope import Scope
from openseg.segmentation import membership
from openseg.segmentation.evaluate import Progress, SegmentsFailed, evaluate_segments
from openseg.segmentation.jobs import DELETED
from openseg.segmentation.model import SegmentJob
from openseg.segmentation.ports import JobExecutionUnitOfWork, QueuedJob, SegmentJobServices
from openseg.segmentation.streaming_drift import DRIFT_METRIC, continuous_segments, streaming_drift

log = logging.getLogger("openseg.segmentation")

#: A job whose work item was tried this often (crashes included) fails instead of retrying forever.
MAX_ATTEMPTS = 3


#: The error code of a segment that could not be evaluated (the job's other segments complete).
SEGMENT_FAILED = "0090000012"


class JobFailed(Exception):
    """A user-facing failure: ``code`` and message go to the job's ``errors`` (with one entry per failed
    segment when ``segments`` names them)."""

    def __init__(self, code: str, message: str, segments: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.segments = segments or {}


@dataclass
class PolicyOutcome:
    policy_id: str
    store_path: Path
    members: membership.MembershipStore
    staged: membership.StagedMembership
    total_profiles: int
    counts: dict[str, dict[str, int]]
    qualified: dict[str, int]
    by_namespace: dict[str, dict[str, int]]
    cost: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Running:
    """The fields of a job the lifecycle moves (``job_lifecycle.JobRecord``), changed in place and written back
    with the repository's ``update``."""

    status: str
    metrics: Any
    errors: Any
    created: int
    updated: int

    @classmethod
    def of(cls, job: SegmentJob) -> _Running:
        return cls(job.status, job.metrics, job.errors, job.created, job.updated)

    def applied_to(self, job: SegmentJob) -> SegmentJob:
        return replace(job, status=self.status, metrics=self.metrics, errors=self.errors, updated=self.updated)


@contextmanager
def _job(services: SegmentJobServices, job_id: str) -> Iterator[tuple[JobExecutionUnitOfWork, _Running | None]]:
    """The job in a unit of work, for the block to move through its lifecycle: written back and committed
    when the block ends normally, rolled back when it raises (a cancel seen at a step)."""
    with services.uow() as uow:
        job = uow.segment_jobs.get(job_id)
        running = _Running.of(job) if job is not None else None
        yield uow, running
        if job is not None and running is not None:
            uow.segment_jobs.update(running.applied_to(job))
        uow.commit()


def membership_store(services: SegmentJobServices, sandbox_id: str, policy_id: str) -> membership.MembershipStore:
    """The membership store of a (sandbox, merge policy)."""
    return membership.store_for(services.settings.home, sandbox_id, policy_id)


def run_segment_job(services: SegmentJobServices, item: QueuedJob) -> None:
    """Worker handler: evaluate, diff, then publish membership and metrics in one transaction."""
    with services.uow() as uow:
        job = uow.segment_jobs.get(item.ref_id)
        if job is None or job.status in lifecycle.FINAL or job.status in DELETED.values():
            return
        running, started = _Running.of(job), 0
        if job.status == "CANCELLING":
            lifecycle.finish(running, "CANCELLED")
        elif item.attempts > MAX_ATTEMPTS:
            lifecycle.fail(running, "0090000010", f"the job was interrupted {item.attempts - 1} times; giving up")
        else:
            started = lifecycle.start(running)
        uow.segment_jobs.update(running.applied_to(job))
        uow.commit()
        if running.status in lifecycle.FINAL:
            return
        scope = Scope(job.org_id, job.sandbox_id)
        segments = list(job.segments)
        job_id = job.id
    # One job of a (sandbox, merge policy) at a time, across worker processes: a job diffs against the
    # membership the previous one published (and retention prunes older snapshots). Taken in one order, so two
    # jobs of the same policies wait for each other and never for each other's other lock.
    with ExitStack() as held:
        for policy_id in sorted({entry["segment"]["mergePolicy"]["id"] for entry in segments}):
            held.enter_context(membership_store(services, scope.sandbox_id, policy_id).job_lock())
        try:
            outcomes, failed, segmentation_time = _evaluate(services, scope, job_id, segments)
            _publish(services, job_id, started, segmentation_time, outcomes, failed)
        except lifecycle.Cancelled:
            with _job(services, job_id) as (_, cancelled):
                assert cancelled is not None
                lifecycle.finish(cancelled, "CANCELLED")
        except JobFailed as exc:
            with _job(services, job_id) as (_, failing):
                assert failing is not None
                if exc.segments:
                    lifecycle.add_errors(failing, segment_errors(exc.segments))
                    lifecycle.finish(failing, "FAILED")
                else:
                    lifecycle.fail(failing, exc.code, str(exc))
        except Exception as exc:
            log.exception("segment job %s failed", job_id)
            with _job(services, job_id) as (_, failing):
                assert failing is not None
                if failures.is_disk_full(exc):
                    lifecycle.fail(failing, failures.DISK_FULL, failures.describe(exc))
                else:
                    reason = failures.describe(exc, services.settings.data_lake.root)
                    lifecycle.fail(failing, lifecycle.UNEXPECTED, f"evaluation failed: {reason}")


def _check_cancel(services: SegmentJobServices, job_id: str) -> None:
    with services.uow() as uow:
        job = uow.segment_jobs.get(job_id)
        lifecycle.check_cancel(_Running.of(job) if job is not None else None)


def _evaluate(services: SegmentJobServices, scope: Scope, job_id: str, segments: list[dict[str, Any]]
              ) -> tuple[dict[str, PolicyOutcome], dict[str, str], dict[str, int]]:
    """Evaluate the job's segments, one plan per merge policy: the outcomes, the segments that could not be
    evaluated (segment id -> why; they keep their membership) and the segmentation time."""
    by_policy: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for entry in segments:
        segment = entry["segment"]
        by_policy[segment["mergePolicy"]["id"]].append((segment["id"], segment["expression"]["value"]))
    outcomes: dict[str, PolicyOutcome] = {}
    failed_segments: dict[str, str] = {}
    with services.uow() as uow:
        continuous = continuous_segments(uow.segment_definitions.in_sandbox(scope.sandbox_id))
        uow.commit()
    seg_start = now_ms()
    for index, (policy_id, members) in enumerate(by_policy.items()):
        with services.uow() as uow:
            policy = uow.merge_policies.get(policy_id)
            if policy is None or policy.sandbox_id != scope.sandbox_id:
                names = ", ".join(s for s, _ in members)
                raise JobFailed("0090000011", f"merge policy '{policy_id}' of segment(s) {names} no longer exists")
            record = uow.profile_stores.get(policy_id)
            pointer = record.membership_path if record else None
        store = resolve_store(ensure_store(services, scope, policy))
        _check_cancel(services, job_id)
        as_of = ms_to_datetime(now_ms())
        parsed, failures = [], {}
        for segment_id, text in members:
            try:
                parsed.append((segment_id, parse(text)))
            except Exception as error:  # noqa: BLE001 - a definition stored before a check existed
                failures[segment_id] = f"{type(error).__name__}: {error}"
        store_of_members = membership_store(services, scope.sandbox_id, policy_id)
        failed_segments.update(failures)
        if not parsed:
            continue  # nothing of this merge policy could be parsed: its membership stays as it was
        previous = store_of_members.state(pointer)
        try:
            evaluation = evaluate_segments(services, store, parsed, as_of, store_of_members, previous, job_id,
                                           _reporter(services, job_id, policy_id, index, len(by_policy)))
        except SegmentsFailed as failed:
            # Nothing of this merge policy could be evaluated: its membership stays as it was.
            failed_segments.update(failed.failures)
            continue
        failed_segments.update(evaluation.failures)
        _check_cancel(services, job_id)
        outcomes[policy_id] = PolicyOutcome(
            policy_id=policy_id, store_path=store, members=store_of_members,
            staged=evaluation.staged, total_profiles=evaluation.total_profiles,
            counts=evaluation.counts, qualified=evaluation.qualified, by_namespace=evaluation.by_namespace,
            cost=evaluation.cost, drift=streaming_drift(continuous, evaluation.counts, previous),
        )
    seg_end = now_ms()
    if failed_segments and not outcomes:
        raise JobFailed(SEGMENT_FAILED, "no segment of the job could be evaluated: " + "; ".join(
            f"{segment_id}: {reason}" for segment_id, reason in failed_segments.items()), failed_segments)
    return outcomes, failed_segments, {"startTimeInMs": seg_start, "endTimeInMs": seg_end,
                                       "totalTimeInMs": seg_end - seg_start}


def _reporter(services: SegmentJobServices, job_id: str, policy_id: str, index: int, policies: int) -> Progress:
    """Progress of one merge policy's evaluation into the job's ``metrics["openseg:progress"]`` while it
    runs; a job cancelled meanwhile stops at the next step."""

    def report(step: str, done: int, total: int) -> None:
        with _job(services, job_id) as (_, running):
            lifecycle.check_cancel(running)
            assert running is not None
            lifecycle.progress(running, "openseg:progress", {
                "mergePolicyId": policy_id, "mergePolicy": index + 1, "mergePolicies": policies,
                "step": step, "stepsDone": done, "stepsTotal": total,
            })

    return report


def segment_errors(failed: dict[str, str]) -> list[dict[str, str]]:
    """One ``errors[]`` entry per segment that could not be evaluated: code, segment id and why."""
    return [{"code": SEGMENT_FAILED, "msg": f"segment {segment_id} could not be evaluated and keeps its previous "
             f"membership: {reason}", "segmentId": segment_id} for segment_id, reason in failed.items()]


def _publish(services: SegmentJobServices, job_id: str, started: int, segmentation_time: dict[str, int],
             outcomes: dict[str, PolicyOutcome], failed: dict[str, str] | None = None) -> None:
    """Write membership files, then flip the pointers and finish the job in one transaction: readers see
    the old membership or the new one, never half."""
    for outcome in outcomes.values():
        membership.publish(outcome.staged)
    with _job(services, job_id) as (uow, job):
        assert job is not None
        if job.status in ("CANCELLING", "CANCELLED"):
            lifecycle.finish(job, "CANCELLED")
            for outcome in outcomes.values():
                outcome.staged.unpublish()
            return
        for outcome in outcomes.values():
            record = uow.profile_stores.get(outcome.policy_id)
            assert record is not None
            uow.profile_stores.put(replace(record, membership_path=str(outcome.staged.state.path),
                                           membership_job_id=job_id))
        metrics: dict[str, Any] = {
            "totalTime": {"startTimeInMs": started},
            "profileSegmentationTime": segmentation_time,
            "totalProfiles": sum(o.total_profiles for o in outcomes.values()),
            "totalProfilesByMergePolicy": {o.policy_id: o.total_profiles for o in outcomes.values()},
            "segmentedProfileCounter": {},
            "segmentedProfileByNamespaceCounter": {},
            "segmentedProfileByStatusCounter": {},
            "openseg:segmentCost": {},
            DRIFT_METRIC: {},
            "openseg:engine": services.engine().describe(),
        }
        for outcome in outcomes.values():
            metrics["segmentedProfileCounter"].update(outcome.qualified)
            metrics["segmentedProfileByNamespaceCounter"].update(outcome.by_namespace)
            metrics["segmentedProfileByStatusCounter"].update(outcome.counts)
            metrics["openseg:segmentCost"].update(outcome.cost)
            metrics[DRIFT_METRIC].update(outcome.drift)
        job.metrics = metrics
        if failed:
            lifecycle.add_errors(job, segment_errors(failed))
        lifecycle.finish(job, "SUCCEEDED")
    # Retention: older snapshots go once the new state is the current one (history stays).
    for outcome in outcomes.values():
        outcome.members.prune(outcome.staged.state, services.settings.membership_snapshots)
