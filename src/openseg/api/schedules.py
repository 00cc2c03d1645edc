"""UPS schedules: ``/data/core/ups/config/schedules`` (PATCH, or POST as the seed prints, take JSON Patch)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, json_body, services, tenant
from openseg.api.paging import children_page, parse_int
from openseg.scheduling import schedules
from openseg.services import Services

router = APIRouter(prefix="/data/core/ups/config", tags=["schedules"])
PATH = "/data/core/ups/config/schedules"


@router.post("/schedules")
def create(who: Tenant = Depends(tenant), svc: Services = Depends(services),
           body: Any = Depends(json_body)) -> JSONResponse:
    with svc.db.session() as session:
        schedule = schedules.create_schedule(session, scope_of(who), body, svc.export_validator)
        return JSONResponse(schedules.schedule_json(schedule, who.sandbox.to_json()), status_code=200)


@router.get("/schedules")
def list_(request: Request, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    params = request.query_params
    limit = parse_int(params.get("limit"), "limit", 100, minimum=1, maximum=1000)
    start = parse_int(params.get("start"), "start", 0)
    with svc.db.session() as session:
        items, total = schedules.list_schedules(session, scope_of(who), start=start, limit=limit)
        children = [schedules.schedule_json(s, who.sandbox.to_json()) for s in items]
    return children_page(children, total=total, start=start, limit=limit, path=PATH)


@router.get("/schedules/{schedule_id}")
def get(schedule_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    with svc.db.session() as session:
        return schedules.schedule_json(schedules.get_schedule(session, scope_of(who), schedule_id),
                                       who.sandbox.to_json())


def _patch(schedule_id: str, who: Tenant, svc: Services, operations: Any) -> Response:
    with svc.db.session() as session:
        schedules.update_schedule(session, scope_of(who), schedule_id, operations, svc.export_validator)
    return Response(status_code=204)


@router.patch("/schedules/{schedule_id}")
def patch(schedule_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
          operations: Any = Depends(json_body)) -> Response:
    return _patch(schedule_id, who, svc, operations)


@router.post("/schedules/{schedule_id}")
def post_patch(schedule_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
               operations: Any = Depends(json_body)) -> Response:
    """The seed prints POST with a JSON Patch body; it is the same as PATCH."""
    return _patch(schedule_id, who, svc, operations)


@router.delete("/schedules/{schedule_id}")
def delete(schedule_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> Response:
    with svc.db.session() as session:
        schedules.delete_schedule(session, scope_of(who), schedule_id)
    return Response(status_code=204)
