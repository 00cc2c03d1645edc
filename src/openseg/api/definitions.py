"""UPS segment definitions: ``/data/core/ups/segment/definitions``."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from openseg.api import bulk
from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, services, tenant, typed_body
from openseg.api.models._base import plain
from openseg.api.models.segments import BulkGetRequest, ConversionRequest, DefinitionChanges, DefinitionCreate
from openseg.api.paging import AsciiInteger, Start, at_most
from openseg.container import Services
from openseg.errors import BadRequest
from openseg.profiles.service import sandbox_schema
from openseg.request_fields import MAX_INT
from openseg.segmentation import definitions
from openseg.segmentation.expressions import convert_definition

router = APIRouter(prefix="/data/core/ups/segment", tags=["segment definitions"])
PATH = "/data/core/ups/segment/definitions"



def _json(who: Tenant, described: definitions.Described) -> dict[str, Any]:
    definition, dependents = described
    return definitions.definition_json(definition, who.sandbox.to_json(), dependents)


@router.post("/definitions", status_code=200)
def create(who: Tenant = Depends(tenant), svc: Services = Depends(services),
           body: DefinitionCreate = typed_body(DefinitionCreate)) -> JSONResponse:
    """AEP answers a created definition with 200 (``segmentation.yaml``), not 201."""
    scope = scope_of(who)
    definition = definitions.create_definition(svc.uow(), scope, plain(body), lambda: sandbox_schema(svc, scope))
    return JSONResponse(_json(who, (definition, [])), status_code=200)  # nothing can use it yet: no dependents


@router.get("/definitions")
def list_(who: Tenant = Depends(tenant), svc: Services = Depends(services),
          limit: Annotated[int, Query(ge=1, le=1000, description="definitions per page"), AsciiInteger] = 100,
          page: Annotated[int, Query(ge=0, le=MAX_INT, description="the page (of limit each)"), AsciiInteger] = 0,
          start: Annotated[int | None, Query(ge=0, le=MAX_INT, description="definitions to skip (page * limit)"),
                           AsciiInteger] = None,
          ) -> dict[str, Any]:
    page = at_most(page, "page", MAX_INT // limit)
    start = page * limit if start is None else start
    items, total = definitions.list_definitions(svc.uow(), scope_of(who), start=start, limit=limit)
    segments = [_json(who, d) for d in items]
    following = start + len(segments)
    return {
        "segments": segments,
        "page": {"totalCount": total, "totalPages": math.ceil(total / limit) if total else 0,
                 "pageOffset": start, "pageSize": len(segments)},
        "link": {"next": f"{PATH}?start={following}&limit={limit}" if following < total else ""},
    }


@router.post("/definitions/bulk-get", status_code=bulk.MULTI_STATUS)
def bulk_get(who: Tenant = Depends(tenant), svc: Services = Depends(services),
             body: BulkGetRequest = typed_body(BulkGetRequest)) -> JSONResponse:
    ids = bulk.requested_ids(plain(body))
    found = definitions.read_definitions(svc.uow(), scope_of(who), ids)
    return bulk.multi_status(ids, found, "segment definition", lambda d: _json(who, d))


@router.post("/conversion")
def conversion(who: Tenant = Depends(tenant),
               body: ConversionRequest = typed_body(ConversionRequest)) -> dict[str, Any]:
    """AEP's ``POST /segment/conversion``: the definition with its expression in the other PQL format."""
    return convert_definition(plain(body))


@router.get("/definitions/{definition_id}")
def get(definition_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    return _json(who, definitions.read_definition(svc.uow(), scope_of(who), definition_id))


@router.patch("/definitions/{definition_id}")
def patch(definition_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
          body: DefinitionChanges = typed_body(DefinitionChanges)) -> dict[str, Any]:
    scope = scope_of(who)
    return _json(who, definitions.update_definition(svc.uow(), scope, definition_id, plain(body),
                                                    lambda: sandbox_schema(svc, scope)))


@router.delete("/definitions/{definition_id}")
def delete(definition_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    """AEP answers 200 with ``{"status", "message"}`` (``segmentation.yaml``)."""
    definitions.delete_definition(svc.uow(), scope_of(who), definition_id)
    return {"status": True, "message": f"segment definition {definition_id} was deleted"}


@router.get("/definitions/{definition_id}/members")
def members(definition_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
            limit: Annotated[int, Query(ge=1, le=10_000, description="profiles per page"), AsciiInteger] = 100,
            start: Start = 0,
            at: Annotated[str | None, Query(max_length=64, description="RFC 3339 date-time; now when absent")] = None,
            ) -> dict[str, Any]:
    """openseg extension: the profiles in the segment at ``at`` (RFC 3339; now when absent)."""
    from openseg.catalog.validation import parse_rfc3339
    from openseg.clock import rfc3339, utcnow
    from openseg.segmentation.history import members_at

    moment = utcnow()
    if at:
        parsed = parse_rfc3339(at)
        if parsed is None:
            raise BadRequest("'at' must be an RFC 3339 date-time such as 2026-01-01T00:00:00Z", field="at")
        moment = parsed
    policy_id = definitions.get_definition(svc.uow(), scope_of(who), definition_id).merge_policy_id
    rows, total = members_at(svc, scope_of(who), definition_id, policy_id, moment, start=start, limit=limit)
    following = start + len(rows)
    return {
        "segmentId": definition_id,
        "at": rfc3339(moment),
        "members": rows,
        "_page": {"totalCount": total, "pageSize": len(rows), "next": str(following) if following < total else ""},
        "_links": {"next": {"href": f"{PATH}/{definition_id}/members?start={following}&limit={limit}"
                            if following < total else ""}},
    }
