"""openseg extensions on segment definitions: ``.../definitions/{id}/explain`` and ``.../definitions/{id}/dryRun``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from openseg import inspection
from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, services, tenant, typed_body
from openseg.api.models._base import MAX_ID, MAX_TEXT, plain
from openseg.api.models.segments import DryRunRequest
from openseg.container import Services

router = APIRouter(prefix="/data/core/ups/segment/definitions", tags=["segment definitions"])


@router.get("/{definition_id}/explain")
def explain(definition_id: str, entity_id: Annotated[str, Query(alias="entityId", min_length=1, max_length=MAX_TEXT)],
            entity_namespace: Annotated[str, Query(alias="entityIdNS", min_length=1, max_length=MAX_ID)],
            who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    """Why one profile (any of its identities) is or is not in the segment: each condition of the expression
    with its PQL, English and value for the profile."""
    return inspection.explain_segment(svc, scope_of(who), definition_id, entity_namespace, entity_id)


@router.post("/{definition_id}/dryRun")
def dry_run(definition_id: str, who: Tenant = Depends(tenant), body: DryRunRequest = typed_body(DryRunRequest),
            svc: Services = Depends(services)) -> dict[str, Any]:
    """What saving ``expression`` (or the current one, with ``{}``) would do to the segment's membership now:
    who would enter, exit and stay. Nothing is written."""
    return inspection.dry_run_segment(svc, scope_of(who), definition_id, plain(body))
