"""Query Service: ``/data/foundation/query/queries`` and openseg's ``/results``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, json_body, services, tenant
from openseg.api.paging import parse_int
from openseg.catalog import query_jobs
from openseg.container import Services
from openseg.errors import BadRequest

router = APIRouter(prefix="/data/foundation/query", tags=["query service"])


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    if value.lower() not in ("true", "false"):
        raise BadRequest(f"query parameter '{name}' must be true or false, not '{value[:40]}'", field=name)
    return value.lower() == "true"


@router.get("/queries")
def list_queries(request: Request, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    params = request.query_params
    page = query_jobs.QueryPage(
        orderby=params.get("orderby") or "-created",
        limit=parse_int(params.get("limit"), "limit", 50, minimum=1, maximum=1000),
        start=params.get("start") or None, property=params.get("property") or None,
        exclude_soft_deleted=_flag(request, "excludeSoftDeleted", True))
    with svc.db.session() as session:
        return query_jobs.list_queries(session, scope_of(who), page)


@router.post("/queries")
def submit(who: Tenant = Depends(tenant), svc: Services = Depends(services),
           body: Any = Depends(json_body)) -> JSONResponse:
    with svc.db.session() as session:
        query = query_jobs.submit_query(session, scope_of(who), body, user_id=who.credential_id)
        return JSONResponse(query_jobs.query_json(query), status_code=202)


@router.get("/queries/{query_id}")
def get(query_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    with svc.db.session() as session:
        return query_jobs.query_json(query_jobs.get_query(session, scope_of(who), query_id))


@router.patch("/queries/{query_id}")
def change(query_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
           body: Any = Depends(json_body)) -> JSONResponse:
    with svc.db.session() as session:
        return JSONResponse(query_jobs.change_query(session, scope_of(who), query_id, body), status_code=202)


@router.get("/queries/{query_id}/results")
def results(query_id: str, request: Request, who: Tenant = Depends(tenant),
            svc: Services = Depends(services)) -> dict[str, Any]:
    limit = parse_int(request.query_params.get("limit"), "limit", 1000, minimum=1, maximum=100_000)
    start = parse_int(request.query_params.get("start"), "start", 0)
    with svc.db.session() as session:
        query = query_jobs.get_query(session, scope_of(who), query_id)
        return query_jobs.query_results(query, start=start, limit=limit)
