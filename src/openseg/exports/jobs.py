"""Export jobs (UPS ``/export/jobs``): create with batches reserved up front, read, list, cancel, delete.

The services take a unit of work (``exports.ports.ExportsUnitOfWork``): those that start with ``queue_`` or
``check_`` work in one the caller has open (a schedule firing), the others open it and commit what they change.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from openseg.clock import now_ms
from openseg.errors import BadRequest, NotFound
from openseg.exports.model import ExportJob
from openseg.exports.ports import ExportsUnitOfWork
from openseg.exports.request import ExportRequest, validate
from openseg.request_fields import ascii_integer
from openseg.scope import Scope, in_scope

RUN_EXPORT = "export_job"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
STATUSES = ("NEW", "PROCESSING", *TERMINAL)
#: The status of a finished export that ``DELETE`` removed: no read shows it (AEP deletes the record); the row
#: stays so that its integer id is never given to another export. Its batches (the exported files) stay.
DELETED = "DELETED"


def queue_export(uow: ExportsUnitOfWork, scope: Scope, body: object, *, origin: str = "api") -> ExportJob:
    """A new export job in the open unit of work: the request validated, the destination's batches reserved
    (empty until the export publishes; readers skip them till then), the job queued for the worker."""
    request = validate(uow, scope, body)
    now = now_ms()

    def reserve() -> str:
        return uow.export_batches.reserve(scope, request.dataset_id, now=now)

    if request.segment_per_batch and request.segments:
        destination: dict[str, Any] = {
            "datasetId": request.dataset_id, "segmentPerBatch": True,
            "batches": [{"segmentId": s.segment_id, "segmentNs": s.namespace, "status": list(s.statuses),
                         "batchId": reserve()} for s in request.segments],
        }
    else:
        destination = {"datasetId": request.dataset_id, "segmentPerBatch": request.segment_per_batch,
                       "batchId": reserve()}
    stored = {**request.raw, "mergePolicy": {"id": request.merge_policy_id, "version": request.merge_policy_version}}
    job = uow.export_jobs.add(ExportJob(
        id=0, org_id=scope.org_id, sandbox_id=scope.sandbox_id, request=stored, status="NEW",
        request_id=secrets.token_urlsafe(24), errors=[], metrics={"totalTime": {"startTimeInMs": now}},
        destination=destination, origin=origin, created=now, updated=now))
    uow.work_queue.enqueue(RUN_EXPORT, str(job.id))
    return job


def create_export(uow: ExportsUnitOfWork, scope: Scope, body: object, *, origin: str = "api") -> ExportJob:
    """:func:`queue_export`, committed."""
    with uow:
        job = queue_export(uow, scope, body, origin=origin)
        uow.commit()
    return job


def queue_from_schedule(uow: ExportsUnitOfWork, scope: Scope, properties: Any) -> str:
    """The scheduler's entry, in its open unit of work: an export schedule's ``properties`` are an export
    request."""
    return str(queue_export(uow, scope, properties, origin="schedule").id)


def check_for_schedule(uow: ExportsUnitOfWork, scope: Scope, properties: Any) -> None:
    """Validate an export schedule's ``properties`` as an export request, in the caller's open unit of work."""
    try:
        validate(uow, scope, properties)
    except BadRequest as exc:
        raise BadRequest(f"properties: {exc.detail}", field=f"properties.{exc.field}" if exc.field else "properties",
                         report=exc.report) from exc


def _get(uow: ExportsUnitOfWork, scope: Scope, job_id: str) -> ExportJob:
    number = ascii_integer(job_id)  # export job ids are integers
    if number is None:
        raise NotFound.of("export job", job_id)
    job = in_scope(uow.export_jobs.get(number), scope, "export job", number)
    if job.status == DELETED:
        raise NotFound.of("export job", job_id)
    return job


def get_export(uow: ExportsUnitOfWork, scope: Scope, job_id: str) -> ExportJob:
    """The export job, or 404 (another sandbox's, a deleted one and a malformed id alike)."""
    with uow:
        return _get(uow, scope, job_id)


def list_exports(uow: ExportsUnitOfWork, scope: Scope, *, limit: int, offset: str | None,
                 status: str | None = None) -> tuple[list[ExportJob], bool]:
    """Newest first. ``offset`` is a count to skip, or the seed's cursor ``<createdTime>_<id>`` of the
    last record already seen; ``status`` keeps the jobs in that status (any case). Returns the page and
    whether more follow."""
    statuses: tuple[str, ...] = STATUSES  # every status but DELETED
    if status:
        if status.upper() not in STATUSES:
            raise BadRequest(f"'status' must be one of {', '.join(STATUSES)}", field="status")
        statuses = (status.upper(),)
    skip, before = 0, None
    if offset:
        created_text, _, ident_text = offset.partition("_")
        created, ident, count = ascii_integer(created_text), ascii_integer(ident_text), ascii_integer(offset)
        if created is not None and ident is not None:
            before = (created, ident)
        elif count is not None:
            skip = count
        else:
            raise BadRequest("'offset' must be a number or a '<createdTime>_<id>' cursor", field="offset")
    with uow:
        rows = uow.export_jobs.page(scope.sandbox_id, statuses=statuses, before=before, skip=skip, limit=limit + 1)
    return rows[:limit], len(rows) > limit


def _cancel(uow: ExportsUnitOfWork, job: ExportJob, job_id: str) -> ExportJob:
    if job.status in TERMINAL:
        raise BadRequest(f"export job {job_id} is {job.status}; only a new or running export can be cancelled",
                         field="id")
    job = replace(job, status="CANCELLED", updated=now_ms())
    uow.export_jobs.update(job)
    return job


def cancel_export(uow: ExportsUnitOfWork, scope: Scope, job_id: str) -> ExportJob:
    """Cancel a new or running export (400 for a finished one)."""
    with uow:
        job = _cancel(uow, _get(uow, scope, job_id), job_id)
        uow.commit()
    return job


def delete_export(uow: ExportsUnitOfWork, scope: Scope, job_id: str) -> ExportJob | None:
    """AEP's ``DELETE /export/jobs/{id}``, "cancel or delete": a new or running export is cancelled (as
    :func:`cancel_export`); a finished one is deleted, its exported batches kept. Returns the cancelled job, or
    None when it was deleted."""
    with uow:
        job = _get(uow, scope, job_id)
        if job.status not in TERMINAL:
            cancelled: ExportJob | None = _cancel(uow, job, job_id)
        else:
            uow.export_jobs.update(replace(job, status=DELETED, updated=now_ms()))
            cancelled = None
        uow.commit()
    return cancelled


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
    "TERMINAL",
    "ExportRequest",
    "cancel_export",
    "check_for_schedule",
    "create_export",
    "cursor",
    "delete_export",
    "export_json",
    "get_export",
    "list_exports",
    "queue_export",
    "queue_from_schedule",
]
