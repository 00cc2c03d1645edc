"""UPS export jobs: ``/data/core/ups/export/jobs`` (integer ids, ``records``/``page``/``link`` paging)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, services, tenant, typed_body
from openseg.api.models._base import plain
from openseg.api.models.exports import ExportJobRequest
from openseg.api.paging import MAX_QUERY_TEXT, AsciiInteger
from openseg.container import Services
from openseg.exports import jobs as exports

router = APIRouter(prefix="/data/core/ups/export", tags=["export jobs"])


@router.post("/jobs")
def create(who: Tenant = Depends(tenant), svc: Services = Depends(services),
           body: ExportJobRequest = typed_body(ExportJobRequest)) -> JSONResponse:
    job = exports.create_export(svc.uow(), scope_of(who), plain(body))
    return JSONResponse(exports.export_json(job), status_code=200)


@router.get("/jobs")
def list_(who: Tenant = Depends(tenant), svc: Services = Depends(services),
          limit: Annotated[int, Query(ge=1, le=1000, description="export jobs per page"), AsciiInteger] = 50,
          offset: Annotated[str | None, Query(max_length=MAX_QUERY_TEXT,
                                              description="the page's cursor (page.pageOffset of the page before)")] = None,
          status: Annotated[str | None, Query(max_length=MAX_QUERY_TEXT, description="only jobs of this status")] = None,
          ) -> dict[str, Any]:
    rows, more = exports.list_exports(svc.uow(), scope_of(who), limit=limit, offset=offset, status=status)
    records = [exports.export_json(j) for j in rows]
    last = exports.cursor(rows[-1]) if rows else ""
    following = f"/export/jobs/?limit={limit}&offset={last}" + (f"&status={quote(status)}" if status else "")
    return {
        "records": records,
        "page": {"sortField": "createdTime", "sort": "desc", "pageOffset": last, "pageSize": len(records)},
        "link": {"next": following if more else ""},
    }


@router.get("/jobs/{job_id}")
def get(job_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    return exports.export_json(exports.get_export(svc.uow(), scope_of(who), job_id))


@router.delete("/jobs/{job_id}")
def cancel_or_delete(job_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    """AEP's "cancel or delete": 200 with ``{"status", "message"}`` (``segmentation.yaml``)."""
    cancelled = exports.delete_export(svc.uow(), scope_of(who), job_id)
    if cancelled is not None:
        return {"status": True, "message": "Export job has been marked for cancelling"}
    return {"status": True, "message": f"Export job {job_id} has been deleted"}
