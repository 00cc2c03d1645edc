"""Running a segment job on the worker: one plan per merge policy, membership diff, atomic publish."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from openseg.store.models import MergePolicy, ProfileStore, SegmentJob, WorkItem

if TYPE_CHECKING:
    from openseg.container import Services

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


def membership_store(services: Services, sandbox_id: str, policy_id: str) -> membership.MembershipStore:
    """The membership store of a (sandbox, merge policy)."""
    return membership.store_for(services.settings.home, sandbox_id, policy_id)


def run_segment_job(services: Services, item: WorkItem) -> None:
    """Worker handler: evaluate, diff, then publish membership and metrics in one transaction."""
    with services.db.session() as session:
        job = session.get(SegmentJob, item.ref_id)
        if job is None or job.status in lifecycle.FINAL or job.status in DELETED.values():
            return
        if job.status == "CANCELLING":
            lifecycle.finish(job, "CANCELLED")
            return
        if item.attempts > MAX_ATTEMPTS:
            lifecycle.fail(job, "0090000010", f"the job was interrupted {item.attempts - 1} times; giving up")
            return
        started = lifecycle.start(job)
        scope = Scope(job.org_id, job.sandbox_id)
        segments = list(job.segments)
        job_id = job.id
    try:
        outcomes, failed, segmentation_time = _evaluate(services, scope, job_id, segments)
        _publish(services, job_id, started, segmentation_time, outcomes, failed)
    except lifecycle.Cancelled:
        with services.db.session() as session:
            job = session.get(SegmentJob, job_id)
            assert job is not None
            lifecycle.finish(job, "CANCELLED")
    except JobFailed as exc:
        with services.db.session() as session:
            job = session.get(SegmentJob, job_id)
            assert job is not None
            if exc.segments:
                lifecycle.add_errors(job, segment_errors(exc.segments))
                lifecycle.finish(job, "FAILED")
            else:
                lifecycle.fail(job, exc.code, str(exc))
    except Exception as exc:
        log.exception("segment job %s failed", job_id)
        with services.db.session() as session:
            job = session.get(SegmentJob, job_id)
            assert job is not None
            if failures.is_disk_full(exc):
                lifecycle.fail(job, failures.DISK_FULL, failures.describe(exc))
            else:
                reason = failures.describe(exc, services.settings.lake)
                lifecycle.fail(job, lifecycle.UNEXPECTED, f"evaluation failed: {reason}")


def _check_cancel(services: Services, job_id: str) -> None:
    with services.db.session() as session:
        lifecycle.check_cancel(session.get(SegmentJob, job_id))


def _evaluate(services: Services, scope: Scope, job_id: str, segments: list[dict[str, Any]]
              ) -> tuple[dict[str, PolicyOutcome], dict[str, str], dict[str, int]]:
    """Evaluate the job's segments, one plan per merge policy: the outcomes, the segments that could not be
    evaluated (segment id -> why; they keep their membership) and the segmentation time."""
    by_policy: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for entry in segments:
        segment = entry["segment"]
        by_policy[segment["mergePolicy"]["id"]].append((segment["id"], segment["expression"]["value"]))
    outcomes: dict[str, PolicyOutcome] = {}
    failed_segments: dict[str, str] = {}
    seg_start = now_ms()
    for index, (policy_id, members) in enumerate(by_policy.items()):
        with services.db.session() as session:
            policy = session.get(MergePolicy, policy_id)
            if policy is None or policy.sandbox_id != scope.sandbox_id:
                names = ", ".join(s for s, _ in members)
                raise JobFailed("0090000011", f"merge policy '{policy_id}' of segment(s) {names} no longer exists")
            record = session.get(ProfileStore, policy_id)
            pointer = record.membership_path if record else None
            session.expunge(policy)
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
        try:
            evaluation = evaluate_segments(services, store, parsed, as_of, store_of_members,
                                           store_of_members.state(pointer), job_id,
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
            cost=evaluation.cost,
        )
    seg_end = now_ms()
    if failed_segments and not outcomes:
        raise JobFailed(SEGMENT_FAILED, "no segment of the job could be evaluated: " + "; ".join(
            f"{segment_id}: {reason}" for segment_id, reason in failed_segments.items()), failed_segments)
    return outcomes, failed_segments, {"startTimeInMs": seg_start, "endTimeInMs": seg_end,
                                       "totalTimeInMs": seg_end - seg_start}


def _reporter(services: Services, job_id: str, policy_id: str, index: int, policies: int) -> Progress:
    """Progress of one merge policy's evaluation into the job's ``metrics["openseg:progress"]`` while it
    runs; a job cancelled meanwhile stops at the next step."""

    def report(step: str, done: int, total: int) -> None:
        with services.db.session() as session:
            job = session.get(SegmentJob, job_id)
            lifecycle.check_cancel(job)
            assert job is not None
            lifecycle.progress(job, "openseg:progress", {
                "mergePolicyId": policy_id, "mergePolicy": index + 1, "mergePolicies": policies,
                "step": step, "stepsDone": done, "stepsTotal": total,
            })

    return report


def segment_errors(failed: dict[str, str]) -> list[dict[str, str]]:
    """One ``errors[]`` entry per segment that could not be evaluated: code, segment id and why."""
    return [{"code": SEGMENT_FAILED, "msg": f"segment {segment_id} could not be evaluated and keeps its previous "
             f"membership: {reason}", "segmentId": segment_id} for segment_id, reason in failed.items()]


def _publish(services: Services, job_id: str, started: int, segmentation_time: dict[str, int],
             outcomes: dict[str, PolicyOutcome], failed: dict[str, str] | None = None) -> None:
    """Write membership files, then flip the pointers and finish the job in one transaction: readers see
    the old membership or the new one, never half."""
    for outcome in outcomes.values():
        membership.publish(outcome.staged)
    with services.db.session() as session:
        job = session.get(SegmentJob, job_id)
        assert job is not None
        if job.status in ("CANCELLING", "CANCELLED"):
            lifecycle.finish(job, "CANCELLED")
            for outcome in outcomes.values():
                outcome.staged.unpublish()
            return
        for outcome in outcomes.values():
            record = session.get(ProfileStore, outcome.policy_id)
            assert record is not None
            record.membership_path = str(outcome.staged.state.path)
            record.membership_job_id = job_id
        metrics: dict[str, Any] = {
            "totalTime": {"startTimeInMs": started},
            "profileSegmentationTime": segmentation_time,
            "totalProfiles": sum(o.total_profiles for o in outcomes.values()),
            "totalProfilesByMergePolicy": {o.policy_id: o.total_profiles for o in outcomes.values()},
            "segmentedProfileCounter": {},
            "segmentedProfileByNamespaceCounter": {},
            "segmentedProfileByStatusCounter": {},
            "openseg:segmentCost": {},
            "openseg:engine": services.engine().describe(),
        }
        for outcome in outcomes.values():
            metrics["segmentedProfileCounter"].update(outcome.qualified)
            metrics["segmentedProfileByNamespaceCounter"].update(outcome.by_namespace)
            metrics["segmentedProfileByStatusCounter"].update(outcome.counts)
            metrics["openseg:segmentCost"].update(outcome.cost)
        job.metrics = metrics
        if failed:
            lifecycle.add_errors(job, segment_errors(failed))
        lifecycle.finish(job, "SUCCEEDED")
    # Retention: older snapshots go once the new state is the current one (history stays).
    for outcome in outcomes.values():
        outcome.members.prune(outcome.staged.state, services.settings.membership_snapshots)
