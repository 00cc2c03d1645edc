"""Batch Ingestion API: ``/data/foundation/import`` create batch, upload files, complete or abort."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from openseg.api.catalog import batch_json, scope_of
from openseg.api.deps import Tenant, json_object, services, tenant
from openseg.atomic_files import StagedFile
from openseg.catalog import service as catalog
from openseg.catalog.processing import INGEST_BATCH
from openseg.errors import BadRequest
from openseg.services import Services
from openseg.worker.queue import enqueue

router = APIRouter(prefix="/data/foundation/import", tags=["ingestion"])


@router.post("/batches", status_code=201)
async def create_batch(request: Request, who: Tenant = Depends(tenant),
                       svc: Services = Depends(services)) -> JSONResponse:
    body = await json_object(request)
    with svc.db.session() as session:
        batch = catalog.create_batch(session, scope_of(who), body)
        return JSONResponse(batch_json(batch), status_code=201)


@router.put("/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}")
async def upload_file(batch_id: str, dataset_id: str, file_name: str, request: Request,
                      who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> Response:
    scope = scope_of(who)
    with svc.db.session() as session:
        catalog.check_upload(session, scope, batch_id, dataset_id)
    target = catalog.stage_file_target(svc.settings.staging, batch_id, file_name)
    length = 0
    # Stream to disk: files of several GB never sit in memory.
    with StagedFile(target) as upload:
        with upload.path.open("wb") as handle:
            async for chunk in request.stream():
                handle.write(chunk)
                length += len(chunk)
        upload.publish()
    with svc.db.session() as session:
        batch = catalog.check_upload(session, scope, batch_id, dataset_id)
        catalog.record_upload(session, batch, file_name, target, length)
    return Response(status_code=200)


@router.post("/batches/{batch_id}")
def batch_action(batch_id: str, request: Request, who: Tenant = Depends(tenant),
                 svc: Services = Depends(services)) -> dict[str, Any]:
    action = (request.query_params.get("action") or "").upper()
    with svc.db.session() as session:
        if action == "COMPLETE":
            batch = catalog.complete_batch(session, scope_of(who), batch_id)
            enqueue(session, INGEST_BATCH, batch.id)
        elif action == "ABORT":
            batch = catalog.abort_batch(session, scope_of(who), batch_id, svc.settings.staging)
        else:
            raise BadRequest("query parameter 'action' must be COMPLETE or ABORT", field="action")
        return {"id": batch.id, "status": batch.status}
