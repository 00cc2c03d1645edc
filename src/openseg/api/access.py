"""UPS profile access: ``/data/core/ups/access/entities`` and openseg's ``/access/membership-history``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, services, tenant
from openseg.errors import BadRequest
from openseg.segmentation.history import profile_of, timeline
from openseg.services import Services

router = APIRouter(prefix="/data/core/ups/access", tags=["profile access"])


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise BadRequest(f"query parameter '{name}' is required", field=name)
    return value


@router.get("/membership-history")
def membership_history(request: Request, who: Tenant = Depends(tenant),
                       svc: Services = Depends(services)) -> dict[str, Any]:
    """Every entry into and exit from every segment of one profile (found by any of its identities)."""
    entity_id = _required(request, "entityId")
    namespace = _required(request, "entityIdNS")
    profile_id, policy_id = profile_of(svc, scope_of(who), namespace, entity_id)
    return {"entityId": entity_id, "entityIdNS": namespace, "profileId": profile_id, "mergePolicyId": policy_id,
            "history": timeline(svc, scope_of(who), profile_id, policy_id)}
