"""Export jobs (UPS ``/export/jobs``): create with batches reserved up front, read, list, cancel, delete."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from openseg.clock import new_hex_id, now_ms
from openseg.errors import BadRequest, NotFound
from openseg.exports.request import ExportRequest, validate_request
from openseg.request_fields import ascii_integer
from openseg.scope import Scope
from openseg.store.models import Batch, ExportJob
from openseg.worker.queue import enqueue

RUN_EXPORT = "export_job"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
STATUSES = ("NEW", "PROCESSING", *TERMINAL)
#: The status of a finished export that ``DELETE`` removed: no read shows it (AEP deletes the record); the row
#: stays so that its integer id is never given to another export. Its batches (the exported files) stay.
DELETED = "DELETED"


def _reserve_batch(session: Session, scope: Scope, dataset_id: str) -> str:
    """A batch of the destination dataset, empty until the export publishes (readers skip it till then)."""
    now = now_ms()
    batch = Batch(id=new_hex_id(32), org_id=scope.org_id, sandbox_id=scope.sandbox_id, dataset_id=dataset_id,
                  status="loading", input_format={"format": "parquet"}, origin="export", created=now, updated=now)
    session.add(batch)
    return batch.id


def create_export(session: Session, scope: Scope, body: object, *, origin: str = "api") -> ExportJob:
    request = validate_request(session, scope, body)
    if request.segment_per_batch and request.segments:
        destination: dict[str, Any] = {
            "datasetId": request.dataset_id, "segmentPerBatch": True,
            "batches": [{"segmentId": s.segment_id, "segmentNs": s.namespace, "status": list(s.statuses),
                         "batchId": _reserve_batch(session, scope, request.dataset_id)} for s in request.segments],
        }
    else:
        destination = {"datasetId": request.dataset_id, "segmentPerBatch": request.segment_per_batch,
                       "batchId": _reserve_batch(session, scope, request.dataset_id)}
    now = now_ms()
    stored = {**request.raw, "mergePolicy": {"id": request.merge_policy_id, "version": request.merge_policy_version}}
    job = ExportJob(org_id=scope.org_id, sandbox_id=scope.sandbox_id, request=stored, status="NEW",
                    request_id=secrets.token_urlsafe(24), errors=[],
                    metrics={"totalTime": {"startTimeInMs": now}}, destination=destination, origin=origin,
                    created=now, updated=now)
    session.add(job)
    session.flush()
    enqueue(session, RUN_EXPORT, str(job.id))
    return job


def start_from_schedule(session: Session, scope: Scope, properties: Any) -> str:
    """The scheduler's entry: an export schedule's ``properties`` are an export request."""
    return str(create_export(session, scope, properties, origin="schedule").id)


def validate_for_schedule(session: Session, scope: Scope, properties: Any) -> None:
    try:
        validate_request(session, scope, properties)
    except BadRequest as exc:
        raise BadRequest(f"properties: {exc.detail}", field=f"properties.{exc.field}" if exc.field else "properties",
                         report=exc.report) from exc


def get_export(session: Session, scope: Scope, job_id: str) -> ExportJob:
    number = ascii_integer(job_id)  # export job ids are integers
    if number is None:
        raise NotFound.of("export job", job_id)
    job = scope.get(session, ExportJob, number, "export job")
    if job.status == DELETED:
        raise NotFound.of("export job", job_id)
    return job


def list_exports(session: Session, scope: Scope, *, limit: int, offset: str | None,
                 status: str | None = None) -> tuple[list[ExportJob], bool]:
    """Newest first. ``offset`` is a count to skip, or the seed's cursor ``<createdTime>_<id>`` of the
    last record already seen; ``status`` keeps the jobs in that status (any case). Returns the page and
    whether more follow."""
    query = select(ExportJob).where(ExportJob.sandbox_id == scope.sandbox_id, ExportJob.status != DELETED)
    if status:
        if status.upper() not in STATUSES:
            raise BadRequest(f"'status' must be one of {', '.join(STATUSES)}", field="status")
        query = query.where(ExportJob.status == status.upper())
    skip = 0
    if offset:
        created_text, _, ident_text = offset.partition("_")
        created, ident, count = ascii_integer(created_text), ascii_integer(ident_text), ascii_integer(offset)
        if created is not None and ident is not None:
            query = query.where(or_(ExportJob.created < created,
                                    and_(ExportJob.created == created, ExportJob.id < ident)))
        elif count is not None:
            skip = count
        else:
            raise BadRequest("'offset' must be a number or a '<createdTime>_<id>' cursor", field="offset")
    rows = list(session.scalars(query.order_by(ExportJob.created.desc(), ExportJob.id.desc())
                                .offset(skip).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def count_exports(session: Session, scope: Scope) -> int:
    return int(session.scalar(select(func.count()).select_from(ExportJob)
                              .where(ExportJob.sandbox_id == scope.sandbox_id)) or 0)


def cancel_export(session: Session, scope: Scope, job_id: str) -> ExportJob:
    job = get_export(session, scope, job_id)
    if job.status in TERMINAL:
        raise BadRequest(f"export job {job_id} is {job.status}; only a new or running export can be cancelled",
                         field="id")
    job.status = "CANCELLED"
    job.updated = now_ms()
    return job


def delete_export(session: Session, scope: Scope, job_id: str) -> ExportJob | None:
    """AEP's ``DELETE /export/jobs/{id}``, "cancel or delete": a new or running export is cancelled (as
    :func:`cancel_export`); a finished one is deleted, its exported batches kept. Returns the cancelled job, or
    None when it was deleted."""
    job = get_export(session, scope, job_id)
    if job.status not in TERMINAL:
        return cancel_export(session, scope, job_id)
    job.status = DELETED
    job.updated = now_ms()
    return None


def cursor(job: ExportJob) -> str:
    return f"{job.created}_{job.id}"


def export_json(job: ExportJob) -> dict[str, Any]:
    request = job.request or {}
    destination = dict(job.destination)
    destination["dataSetId"] = destination["datasetId"]  # the seed spells it both ways
    body: dict[str, Any] = {
        "profileInstanceId": "ups",
        "jobType": "BATCH",
        "id": job.id,
        "schema": request.get("schema", {"name": "_xdm.context.profile"}),
        "status": job.status,
        "requestId": job.request_id,
        "computeGatewayJobId": {"exportJob": f"export-{job.id}"},
        "metrics": job.metrics or {},
        "destination": destination,
        "updateTime": job.updated,
        "imsOrgId": job.org_id,
        "creationTime": job.created,
    }
    for key in ("fields", "mergePolicy", "filter", "additionalFields"):
        if key in request:
            body[key] = request[key]
    body["errors"] = job.errors or []
    return body


__all__ = [
    "DELETED",
    "RUN_EXPORT",
    "STATUSES",
    "ExportRequest",
    "cancel_export",
    "count_exports",
    "create_export",
    "cursor",
    "delete_export",
    "export_json",
    "get_export",
    "list_exports",
    "start_from_schedule",
    "validate_for_schedule",
]
