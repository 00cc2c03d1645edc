"""UPS export jobs: ``/data/core/ups/export/jobs`` (integer ids, ``records``/``page``/``link`` paging)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, json_body, services, tenant
from openseg.api.paging import parse_int
from openseg.container import Services
from openseg.exports import jobs as exports

router = APIRouter(prefix="/data/core/ups/export", tags=["export jobs"])


@router.post("/jobs")
def create(who: Tenant = Depends(tenant), svc: Services = Depends(services),
           body: Any = Depends(json_body)) -> JSONResponse:
    job = exports.create_export(svc.uow(), scope_of(who), body)
    return JSONResponse(exports.export_json(job), status_code=200)


@router.get("/jobs")
def list_(request: Request, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    limit = parse_int(request.query_params.get("limit"), "limit", 50, minimum=1, maximum=1000)
    offset, status = request.query_params.get("offset"), request.query_params.get("status")
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
