"""UPS segment jobs: ``/data/core/ups/segment/jobs``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

from openseg.api import bulk
from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, services, tenant, typed_body
from openseg.api.models._base import plain
from openseg.api.models.segments import BulkGetRequest, SegmentJobRequest
from openseg.api.paging import MAX_QUERY_TEXT, AsciiInteger, Start, children_page
from openseg.container import Services
from openseg.segmentation import jobs

router = APIRouter(prefix="/data/core/ups/segment", tags=["segment jobs"])
PATH = "/data/core/ups/segment/jobs"


@router.post("/jobs", status_code=200)
def create(who: Tenant = Depends(tenant), svc: Services = Depends(services),
           body: SegmentJobRequest = typed_body(SegmentJobRequest)) -> JSONResponse:
    job = jobs.create_job(svc.uow(), scope_of(who), plain(body))
    return JSONResponse(jobs.job_json(job, who.sandbox.to_json()), status_code=200)


@router.get("/jobs")
def list_(who: Tenant = Depends(tenant), svc: Services = Depends(services),
          limit: Annotated[int, Query(ge=1, le=1000, description="jobs per page"), AsciiInteger] = 100,
          start: Start = 0,
          status: Annotated[str | None, Query(max_length=MAX_QUERY_TEXT, description="only jobs of this status")] = None,
          sort: Annotated[str | None, Query(max_length=MAX_QUERY_TEXT,
                                            description="creationTime:desc (the default) or creationTime:asc")] = None,
          ) -> dict[str, Any]:
    descending = not (sort or "creationTime:desc").lower().endswith(":asc")
    items, total = jobs.list_jobs(svc.uow(), scope_of(who), start=start, limit=limit, status=status or None,
                                  descending=descending)
    children = [jobs.job_json(j, who.sandbox.to_json()) for j in items]
    return children_page(children, total=total, start=start, limit=limit, path=PATH,
                         extra_query=f"&status={status}" if status else "")


@router.post("/jobs/bulk-get", status_code=bulk.MULTI_STATUS)
def bulk_get(who: Tenant = Depends(tenant), svc: Services = Depends(services),
             body: BulkGetRequest = typed_body(BulkGetRequest)) -> JSONResponse:
    ids = bulk.requested_ids(plain(body))
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
