"""Flow Service: streaming connections (``/data/foundation/flowservice/connections``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from openseg.api.deps import Tenant, services, tenant, typed_body
from openseg.api.models._base import plain
from openseg.api.models.tenancy import ConnectionRequest
from openseg.clock import now_ms
from openseg.container import Services
from openseg.streaming import connections

router = APIRouter(prefix="/data/foundation/flowservice", tags=["streaming"])


def _where(who: Tenant) -> connections.Where:
    return connections.Where(org_id=who.org_id, sandbox_id=who.sandbox.id, sandbox_name=who.sandbox.name)


@router.post("/connections", status_code=201)
def create_connection(who: Tenant = Depends(tenant), svc: Services = Depends(services),
                      body: ConnectionRequest = typed_body(ConnectionRequest)) -> JSONResponse:
    store = svc.streaming_store()
    created = connections.create_connection(store, store, _where(who), plain(body), now_ms())
    return JSONResponse({"id": created.id, "etag": created.etag}, status_code=201)


@router.get("/connections/{connection_id}")
def get_connection(connection_id: str, request: Request, who: Tenant = Depends(tenant),
                   svc: Services = Depends(services)) -> dict[str, Any]:
    found = connections.get_connection(svc.streaming_store(), _where(who), connection_id)
    return {"items": [connections.connection_json(found, str(request.base_url))]}
