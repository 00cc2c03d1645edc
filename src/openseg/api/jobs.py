"""UPS segment jobs: ``/data/core/ups/segment/jobs``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from openseg.api import bulk
from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, json_body, json_object, services, tenant
from openseg.api.paging import children_page, parse_int
from openseg.container import Services
from openseg.segmentation import jobs

router = APIRouter(prefix="/data/core/ups/segment", tags=["segment jobs"])
PATH = "/data/core/ups/segment/jobs"


@router.post("/jobs", status_code=200)
def create(who: Tenant = Depends(tenant), svc: Services = Depends(services),
           body: Any = Depends(json_body)) -> JSONResponse:
    job = jobs.create_job(svc.uow(), scope_of(who), body)
    return JSONResponse(jobs.job_json(job, who.sandbox.to_json()), status_code=200)


@router.get("/jobs")
def list_(request: Request, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    params = request.query_params
    limit = parse_int(params.get("limit"), "limit", 100, minimum=1, maximum=1000)
    start = parse_int(params.get("start"), "start", 0)
    sort = (params.get("sort") or "creationTime:desc").lower()
    items, total = jobs.list_jobs(svc.uow(), scope_of(who), start=start, limit=limit, status=params.get("status"),
                                  descending=not sort.endswith(":asc"))
    children = [jobs.job_json(j, who.sandbox.to_json()) for j in items]
    status = params.get("status")
    return children_page(children, total=total, start=start, limit=limit, path=PATH,
                         extra_query=f"&status={status}" if status else "")


@router.post("/jobs/bulk-get", status_code=bulk.MULTI_STATUS)
def bulk_get(who: Tenant = Depends(tenant), svc: Services = Depends(services),
             body: dict[str, Any] = Depends(json_object)) -> JSONResponse:
    ids = bulk.requested_ids(body)
    found = jobs.read_jobs(svc.uow(), scope_of(who), ids)
    return bulk.multi_status(ids, found, "segment job", lambda job: jobs.job_json(job, who.sandbox.to_json()))


@router.get("/jobs/{job_id}")
def get(job_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> JSONResponse:
    # Clients poll this while a job runs: the body (plain JSON already) is written as is, skipping
    # FastAPI's generic encoder, which took most of a status read's time.
    return JSONResponse(jobs.job_json(jobs.get_job(svc.uow(), scope_of(who), job_id), who.sandbox.to_json()))


@router.delete("/jobs/{job_id}")
def cancel_or_delete(job_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> Response:
    """AEP's "cancel or delete": a queued or running job is cancelled, a finished one deleted; 204 either way."""
    jobs.delete_job(svc.uow(), scope_of(who), job_id)
    return Response(status_code=204)
