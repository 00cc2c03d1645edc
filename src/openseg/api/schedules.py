"""UPS schedules: ``/data/core/ups/config/schedules`` (PATCH, or POST as the seed prints, take JSON Patch)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, services, tenant, typed_body
from openseg.api.models._base import plain
from openseg.api.models.patch import JsonPatch
from openseg.api.models.schedules import ScheduleRequest
from openseg.api.paging import AsciiInteger, Start, children_page
from openseg.container import Services
from openseg.scheduling import schedules
from openseg.scheduling.cron import frequency
from openseg.scheduling.model import Schedule

router = APIRouter(prefix="/data/core/ups/config", tags=["schedules"])
PATH = "/data/core/ups/config/schedules"


def schedule_json(schedule: Schedule, sandbox: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": schedule.id,
        "imsOrgId": schedule.org_id,
        "sandbox": sandbox,
        "name": schedule.name,
        "state": schedule.state,
        "type": schedule.type,
        "schedule": schedule.schedule,
        "properties": schedule.properties,
        "createEpoch": schedule.created // 1000,
        "updateEpoch": schedule.updated // 1000,
        "frequency": frequency(schedule.schedule),
        "lastRun": schedule.last_run,
        "lastJobId": schedule.last_job_id,
        "nextRun": schedule.next_run,
    }


@router.post("/schedules")
def create(who: Tenant = Depends(tenant), svc: Services = Depends(services),
           body: ScheduleRequest = typed_body(ScheduleRequest)) -> JSONResponse:
    schedule = schedules.create_schedule(svc.uow(), scope_of(who), plain(body))
    return JSONResponse(schedule_json(schedule, who.sandbox.to_json()), status_code=200)


@router.get("/schedules")
def list_(who: Tenant = Depends(tenant), svc: Services = Depends(services),
          limit: Annotated[int, Query(ge=1, le=1000, description="schedules per page"), AsciiInteger] = 100,
          start: Start = 0) -> dict[str, Any]:
    items, total = schedules.list_schedules(svc.uow(), scope_of(who), start=start, limit=limit)
    children = [schedule_json(s, who.sandbox.to_json()) for s in items]
    return children_page(children, total=total, start=start, limit=limit, path=PATH)


@router.get("/schedules/{schedule_id}")
def get(schedule_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    return schedule_json(schedules.get_schedule(svc.uow(), scope_of(who), schedule_id), who.sandbox.to_json())


def _patch(schedule_id: str, who: Tenant, svc: Services, operations: JsonPatch) -> Response:
    schedules.update_schedule(svc.uow(), scope_of(who), schedule_id, plain(operations))
    return Response(status_code=204)


@router.patch("/schedules/{schedule_id}")
def patch(schedule_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
          operations: JsonPatch = typed_body(JsonPatch)) -> Response:
    return _patch(schedule_id, who, svc, operations)


@router.post("/schedules/{schedule_id}")
def post_patch(schedule_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
               operations: JsonPatch = typed_body(JsonPatch)) -> Response:
    """The seed prints POST with a JSON Patch body; it is the same as PATCH."""
    return _patch(schedule_id, who, svc, operations)


@router.delete("/schedules/{schedule_id}")
def delete(schedule_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> Response:
    schedules.delete_schedule(svc.uow(), scope_of(who), schedule_id)
    return Response(status_code=204)
