"""Segment jobs (UPS ``/segment/jobs``): create, read, list, cancel, delete — the records the worker runs.

Each service function takes a fresh unit of work (``ports.SegmentationUnitOfWork``), runs in one
transaction of it and commits on success; an error leaves nothing written. :func:`queue_job` works inside
a unit of work the caller already holds (a schedule's fire starts its job in its own transaction).
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from openseg.clock import new_uuid, now_ms
from openseg.errors import BadRequest, NotFound
from openseg.scope import in_scope
from openseg.segmentation.model import SegmentDefinition, SegmentJob
from openseg.segmentation.ports import SandboxScope, SegmentationUnitOfWork

__all__ = [
    "DELETED",
    "PUBLISHED",
    "RUN_SEGMENT_JOB",
    "STATUSES",
    "TERMINAL",
    "cancel_job",
    "create_job",
    "delete_job",
    "get_job",
    "job_json",
    "list_jobs",
    "queue_job",
    "read_jobs",
]

RUN_SEGMENT_JOB = "segment_job"
STATUSES = ("NEW", "QUEUED", "PROCESSING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED")
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
#: A finished job that ``DELETE`` removed keeps its row under one of these statuses, which no read shows (AEP
#: deletes the record): the membership a job published keeps its history (that of jobs in ``PUBLISHED``
#: counts), and compute job numbers, counted over the org's rows, are never given twice.
DELETED = {"SUCCEEDED": "DELETED_SUCCESS", "FAILED": "DELETED_FAILURE", "CANCELLED": "DELETED_CANCEL"}
#: The statuses of jobs whose membership was published: their history files are facts.
PUBLISHED = ("SUCCEEDED", DELETED["SUCCEEDED"])


def _segment_entry(definition: SegmentDefinition, policy_version: int) -> dict[str, Any]:
    return {
        "segmentId": definition.id,
        "segment": {
            "id": definition.id,
            "version": definition.version,
            "expression": definition.expression,
            "mergePolicy": {"id": definition.merge_policy_id, "version": policy_version},
        },
    }


def _requested(body: object) -> list[str]:
    if not isinstance(body, list) or not body:
        raise BadRequest("the body must be a non-empty array of {\"segmentId\": ...}", field="body")
    requested: list[str] = []
    for index, entry in enumerate(body):
        segment_id = entry.get("segmentId") if isinstance(entry, dict) else None
        if not isinstance(segment_id, str) or not segment_id:
            raise BadRequest(f"item {index} needs a 'segmentId' string", field=f"[{index}].segmentId")
        requested.append(segment_id)
    return requested


def queue_job(uow: SegmentationUnitOfWork, scope: SandboxScope, body: object, *, origin: str = "api") -> SegmentJob:
    """Snapshot the requested definitions (their current version) and queue the job, in the unit of work
    the caller holds open and commits.

    Args:
        uow: An open unit of work; nothing is committed here.
        scope: The org and sandbox of the job.
        body: AEP's array of ``{"segmentId": ...}``; ``"*"`` is every definition not ``inactive``.
        origin: Who asked (``api``, ``schedule``, ``demo``), kept with the job.

    Raises:
        BadRequest: A malformed body, or segment ids the sandbox does not have.
    """
    requested = _requested(body)
    everything = {d.id: d for d in uow.segment_definitions.in_sandbox(scope.sandbox_id)}
    if "*" in requested:
        chosen = [d for d in everything.values() if d.lifecycle_state != "inactive"]
        if not chosen:
            raise BadRequest("'*' selects every segment definition, but this sandbox has none", field="segmentId")
    else:
        unknown = [s for s in requested if s not in everything]
        if unknown:
            raise BadRequest(f"segment definitions not found in this sandbox: {', '.join(unknown)}",
                             field="segmentId", report={"unknownSegments": unknown})
        chosen = [everything[s] for s in dict.fromkeys(requested)]
    versions = {p.id: p.version for p in uow.merge_policies.in_sandbox(scope.sandbox_id)}
    now = now_ms()
    # The job is recorded and queued in one transaction, so it is never seen NEW (not yet queued).
    job = SegmentJob(
        id=new_uuid(), org_id=scope.org_id, sandbox_id=scope.sandbox_id,
        compute_job_id=uow.segment_jobs.count_in_org(scope.org_id) + 1, request_id=secrets.token_urlsafe(24),
        status="QUEUED", segments=[_segment_entry(d, versions.get(d.merge_policy_id, 1)) for d in chosen],
        errors=[], metrics={}, origin=origin, created=now, updated=now,
    )
    uow.segment_jobs.add(job)
    uow.work_queue.enqueue(RUN_SEGMENT_JOB, job.id)
    return job


def create_job(uow: SegmentationUnitOfWork, scope: SandboxScope, body: object, *, origin: str = "api") -> SegmentJob:
    """Create and queue a segment job (UPS ``POST /segment/jobs``); see :func:`queue_job`.

    Raises:
        BadRequest: A malformed body, or segment ids the sandbox does not have.
    """
    with uow:
        job = queue_job(uow, scope, body, origin=origin)
        uow.commit()
    return job


def _get(uow: SegmentationUnitOfWork, scope: SandboxScope, job_id: str) -> SegmentJob:
    job = in_scope(uow.segment_jobs.get(job_id), scope, "segment job", job_id)
    if job.status not in STATUSES:  # deleted
        raise NotFound.of("segment job", job_id)
    return job


def get_job(uow: SegmentationUnitOfWork, scope: SandboxScope, job_id: str) -> SegmentJob:
    """The job with this id in the scope.

    Raises:
        NotFound: No such job in this org and sandbox.
    """
    with uow:
        return _get(uow, scope, job_id)


def read_jobs(uow: SegmentationUnitOfWork, scope: SandboxScope, job_ids: list[str]) -> dict[str, SegmentJob]:
    """Those of ``job_ids`` that exist in the scope, in the order asked (a bulk get answers the others as
    not found)."""
    found: dict[str, SegmentJob] = {}
    with uow:
        for job_id in job_ids:
            try:
                found[job_id] = _get(uow, scope, job_id)
            except NotFound:
                continue
    return found


def list_jobs(uow: SegmentationUnitOfWork, scope: SandboxScope, *, start: int, limit: int, status: str | None,
              descending: bool) -> tuple[list[SegmentJob], int]:
    """One page of the sandbox's jobs by creation time, and how many there are.

    Args:
        status: Comma-separated statuses to keep (any case); all when empty.

    Raises:
        BadRequest: An unknown status.
    """
    statuses = list(STATUSES)  # never the deleted
    if status:
        statuses = [s.strip().upper() for s in status.split(",")]
        bad = [s for s in statuses if s not in STATUSES]
        if bad:
            raise BadRequest(f"unknown status {', '.join(bad)}; one of {', '.join(STATUSES)}", field="status")
    with uow:
        return uow.segment_jobs.page(scope.sandbox_id, start=start, limit=limit, statuses=statuses,
                                     newest_first=descending)


def cancel_job(uow: SegmentationUnitOfWork, scope: SandboxScope, job_id: str) -> SegmentJob:
    """Cancel a job (what ``DELETE /segment/jobs/{id}`` does to one that has not ended, see :func:`delete_job`):
    a queued job is cancelled at once; a running one is asked to stop and ends CANCELLED without writing any
    membership.

    Raises:
        NotFound: No such job in this org and sandbox.
        BadRequest: The job has ended already.
    """
    with uow:
        job = _get(uow, scope, job_id)
        if job.status in TERMINAL:
            raise BadRequest(f"segment job '{job_id}' is {job.status}; only a queued or running job can be cancelled",
                             field="id")
        job = _cancelled(uow, job)
        uow.commit()
    return job


def _cancelled(uow: SegmentationUnitOfWork, job: SegmentJob) -> SegmentJob:
    job = replace(job, status="CANCELLED" if job.status in ("NEW", "QUEUED") else "CANCELLING", updated=now_ms())
    uow.segment_jobs.update_status(job.id, job.status, updated=job.updated)
    return job


def delete_job(uow: SegmentationUnitOfWork, scope: SandboxScope, job_id: str) -> SegmentJob | None:
    """AEP's ``DELETE /segment/jobs/{id}``, "cancel or delete": a queued or running job is cancelled as
    :func:`cancel_job` does; a finished one is deleted — no read finds it again — while what it produced stays
    (the membership it published and its history).

    Returns:
        The cancelled job, or None when the job was deleted.

    Raises:
        NotFound: No such job in this org and sandbox.
    """
    with uow:
        job = _get(uow, scope, job_id)
        cancelled: SegmentJob | None = None
        if job.status in TERMINAL:
            uow.segment_jobs.update_status(job.id, DELETED[job.status], updated=now_ms())
        else:
            cancelled = _cancelled(uow, job)
        uow.commit()
    return cancelled


def job_json(job: SegmentJob, sandbox: dict[str, Any]) -> dict[str, Any]:
    """The job as AEP shows it. ``metrics`` is always there (``segmentation.yaml`` requires it, with
    ``totalTime`` and ``profileSegmentationTime``): before the worker reports, the total time starts at the
    job's creation and the segmentation time is empty."""
    href = f"/segment/jobs/{job.id}"
    metrics = {"totalTime": {"startTimeInMs": job.created}, "profileSegmentationTime": {}, **(job.metrics or {})}
    return {
        "profileInstanceId": "ups",
        "errors": job.errors or [],
        "computeJobId": job.compute_job_id,
        "modelName": "_xdm.context.profile",
        "id": job.id,
        "status": job.status,
        "segments": job.segments,
        "requestId": job.request_id,
        "computeGatewayJobId": job.id,
        "metrics": metrics,
        "schema": {"name": "_xdm.context.profile"},
        "updateTime": job.updated,
        "updateEpoch": job.updated // 1000,
        "imsOrgId": job.org_id,
        "sandbox": sandbox,
        "creationTime": job.created,
        "_links": {"cancel": {"href": href, "method": "DELETE"}, "checkStatus": {"href": href, "method": "GET"}},
    }
