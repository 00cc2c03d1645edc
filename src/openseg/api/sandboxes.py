"""Sandbox Management API: ``/data/foundation/sandbox-management/sandboxes``."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from openseg.api.deps import Caller, caller, services, typed_body
from openseg.api.models.tenancy import SandboxRequest
from openseg.container import Services
from openseg.errors import BadRequest, Conflict, NotFound
from openseg.store import tenancy
from openseg.store.models import Sandbox

router = APIRouter(prefix="/data/foundation/sandbox-management", tags=["sandboxes"])
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def sandbox_json(sandbox: Sandbox) -> dict[str, Any]:
    return {
        "id": sandbox.id,
        "name": sandbox.name,
        "title": sandbox.title,
        "state": sandbox.state,
        "type": sandbox.type,
        "region": "local",
        "isDefault": sandbox.is_default,
        "eTag": 1,
        "createdDate": sandbox.created,
        "lastModifiedDate": sandbox.updated,
    }


@router.get("/sandboxes")
def list_sandboxes(who: Caller = Depends(caller), svc: Services = Depends(services)) -> dict[str, Any]:
    with svc.db.session() as session:
        items = [sandbox_json(s) for s in tenancy.list_sandboxes(session, who.org_id)]
    return {"sandboxes": items, "_page": {"limit": len(items), "count": len(items)}, "_links": {}}


@router.get("/sandboxes/{name}")
def get_sandbox(name: str, who: Caller = Depends(caller), svc: Services = Depends(services)) -> dict[str, Any]:
    with svc.db.session() as session:
        sandbox = tenancy.find_sandbox(session, who.org_id, name)
        if sandbox is None:
            raise NotFound.of("sandbox", name)
        return sandbox_json(sandbox)


@router.post("/sandboxes", status_code=201)
def create_sandbox(who: Caller = Depends(caller), svc: Services = Depends(services),
                   body: SandboxRequest = typed_body(SandboxRequest)) -> JSONResponse:
    name = body.name
    if not _NAME.match(name):
        raise BadRequest("'name' must be lower-case letters, digits and hyphens (at most 64)", field="name")
    sandbox_type = body.type if body.type is not None else "development"
    if sandbox_type not in ("development", "production"):
        raise BadRequest("'type' must be 'development' or 'production'", field="type")
    with svc.db.session() as session:
        if tenancy.find_sandbox(session, who.org_id, name) is not None:
            raise Conflict(f"sandbox '{name}' already exists", field="name")
        sandbox = tenancy.create_sandbox(session, who.org_id, name, title=body.title, type_=sandbox_type)
        return JSONResponse(sandbox_json(sandbox), status_code=201)
