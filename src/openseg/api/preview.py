"""UPS preview and estimate: ``/data/core/ups/preview``, ``/data/core/ups/estimate``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, services, tenant, typed_body
from openseg.api.models._base import plain
from openseg.api.models.segments import PreviewRequest
from openseg.api.profile_build import mark
from openseg.container import Services
from openseg.errors import BadRequest
from openseg.pql.errors import NotSupportedOnEngine
from openseg.segmentation import preview

router = APIRouter(prefix="/data/core/ups", tags=["preview and estimate"])


@router.post("/preview")
def create(who: Tenant = Depends(tenant), svc: Services = Depends(services),
           body: PreviewRequest = typed_body(PreviewRequest)) -> JSONResponse:
    try:
        created = preview.create_preview(svc, scope_of(who), plain(body))
    except NotSupportedOnEngine as exc:
        raise BadRequest(f"'predicateExpression' cannot run on the {exc.engine} engine: {exc}",
                         field="predicateExpression") from exc
    answer = preview.preview_json(created)
    response = JSONResponse(answer, status_code=201)
    mark(response, answer.get("openseg:profileBuild"))
    return response


@router.get("/preview/{preview_id}")
def get(preview_id: str, response: Response, who: Tenant = Depends(tenant),
        svc: Services = Depends(services)) -> dict[str, Any]:
    body = preview.preview_json(preview.get_preview(svc.uow(), scope_of(who), preview_id))
    mark(response, body.get("openseg:profileBuild"))
    return body


@router.delete("/preview/{preview_id}")
def delete(preview_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    """AEP answers 200 with ``{"status", "message"}`` (``segmentation.yaml``)."""
    preview.delete_preview(svc.uow(), scope_of(who), preview_id)
    return {"status": True, "message": f"preview {preview_id} was deleted"}


@router.get("/estimate/{preview_id}")
def estimate(preview_id: str, response: Response, who: Tenant = Depends(tenant),
             svc: Services = Depends(services)) -> dict[str, Any]:
    body = preview.estimate_json(preview.get_preview(svc.uow(), scope_of(who), preview_id))
    mark(response, body.get("openseg:profileBuild"))
    return body
