"""Query Service: ``/data/foundation/query/queries`` and openseg's ``/results``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, json_body, services, tenant
from openseg.api.paging import parse_int
from openseg.catalog import query_jobs
from openseg.services import Services

router = APIRouter(prefix="/data/foundation/query", tags=["query service"])


@router.post("/queries")
def submit(who: Tenant = Depends(tenant), svc: Services = Depends(services),
           body: Any = Depends(json_body)) -> JSONResponse:
    with svc.db.session() as session:
        query = query_jobs.submit_query(session, scope_of(who), body)
        return JSONResponse(query_jobs.query_json(query), status_code=202)


@router.get("/queries/{query_id}")
def get(query_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    with svc.db.session() as session:
        return query_jobs.query_json(query_jobs.get_query(session, scope_of(who), query_id))


@router.get("/queries/{query_id}/results")
def results(query_id: str, request: Request, who: Tenant = Depends(tenant),
            svc: Services = Depends(services)) -> dict[str, Any]:
    limit = parse_int(request.query_params.get("limit"), "limit", 1000, minimum=1, maximum=100_000)
    start = parse_int(request.query_params.get("start"), "start", 0)
    with svc.db.session() as session:
        query = query_jobs.get_query(session, scope_of(who), query_id)
        return query_jobs.query_results(query, start=start, limit=limit)
