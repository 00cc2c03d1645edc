"""Segment jobs (UPS ``/segment/jobs``): create, read, list, cancel — the records the worker runs."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openseg.clock import new_uuid, now_ms
from openseg.errors import BadRequest
from openseg.scope import Scope
from openseg.store.models import MergePolicy, SegmentDefinition, SegmentJob
from openseg.worker.queue import enqueue

RUN_SEGMENT_JOB = "segment_job"
STATUSES = ("NEW", "QUEUED", "PROCESSING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED")
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


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


def create_job(session: Session, scope: Scope, body: object, *, origin: str = "api") -> SegmentJob:
    """Snapshot the requested definitions (their current version) and queue the job."""
    if not isinstance(body, list) or not body:
        raise BadRequest("the body must be a non-empty array of {\"segmentId\": ...}", field="body")
    requested: list[str] = []
    for index, entry in enumerate(body):
        segment_id = entry.get("segmentId") if isinstance(entry, dict) else None
        if not isinstance(segment_id, str) or not segment_id:
            raise BadRequest(f"item {index} needs a 'segmentId' string", field=f"[{index}].segmentId")
        requested.append(segment_id)
    everything = {d.id: d for d in session.scalars(
        select(SegmentDefinition).where(SegmentDefinition.sandbox_id == scope.sandbox_id)
        .order_by(SegmentDefinition.created, SegmentDefinition.id))}
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
    versions = {p.id: p.version for p in session.scalars(
        select(MergePolicy).where(MergePolicy.sandbox_id == scope.sandbox_id))}
    now = now_ms()
    compute_id = int(session.scalar(select(func.count()).select_from(SegmentJob)
                                    .where(SegmentJob.org_id == scope.org_id)) or 0) + 1
    job = SegmentJob(
        id=new_uuid(), org_id=scope.org_id, sandbox_id=scope.sandbox_id, compute_job_id=compute_id,
        request_id=secrets.token_urlsafe(24), status="NEW",
        segments=[_segment_entry(d, versions.get(d.merge_policy_id, 1)) for d in chosen],
        errors=[], metrics={}, origin=origin, created=now, updated=now,
    )
    session.add(job)
    session.flush()
    enqueue(session, RUN_SEGMENT_JOB, job.id)
    job.status = "QUEUED"
    return job


def get_job(session: Session, scope: Scope, job_id: str) -> SegmentJob:
    return scope.get(session, SegmentJob, job_id, "segment job")


def list_jobs(session: Session, scope: Scope, *, start: int, limit: int, status: str | None,
              descending: bool) -> tuple[list[SegmentJob], int]:
    query = select(SegmentJob).where(SegmentJob.sandbox_id == scope.sandbox_id)
    if status:
        wanted = [s.strip().upper() for s in status.split(",")]
        bad = [s for s in wanted if s not in STATUSES]
        if bad:
            raise BadRequest(f"unknown status {', '.join(bad)}; one of {', '.join(STATUSES)}", field="status")
        query = query.where(SegmentJob.status.in_(wanted))
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    order = (SegmentJob.created.desc(), SegmentJob.id.desc()) if descending else (SegmentJob.created, SegmentJob.id)
    return list(session.scalars(query.order_by(*order).offset(start).limit(limit))), total


def cancel_job(session: Session, scope: Scope, job_id: str) -> SegmentJob:
    """A queued job is cancelled at once; a running one is asked to stop and ends CANCELLED without
    writing any membership."""
    job = get_job(session, scope, job_id)
    if job.status in TERMINAL:
        raise BadRequest(f"segment job '{job_id}' is {job.status}; only a queued or running job can be cancelled",
                         field="id")
    job.status = "CANCELLED" if job.status in ("NEW", "QUEUED") else "CANCELLING"
    job.updated = now_ms()
    return job


def job_json(job: SegmentJob, sandbox: dict[str, Any]) -> dict[str, Any]:
    href = f"/segment/jobs/{job.id}"
    body: dict[str, Any] = {
        "profileInstanceId": "ups",
        "errors": job.errors or [],
        "computeJobId": job.compute_job_id,
        "modelName": "_xdm.context.profile",
        "id": job.id,
        "status": job.status,
        "segments": job.segments,
        "requestId": job.request_id,
        "computeGatewayJobId": job.id,
        "updateTime": job.updated,
        "imsOrgId": job.org_id,
        "sandbox": sandbox,
        "creationTime": job.created,
        "_links": {"cancel": {"href": href, "method": "DELETE"}, "checkStatus": {"href": href, "method": "GET"}},
    }
    if job.metrics:
        body["metrics"] = job.metrics
    return body
