"""Batch Ingestion API: ``/data/foundation/import`` create batch, upload files, complete or abort."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from openseg.api.catalog import batch_json, scope_of
from openseg.api.deps import Tenant, json_object, services, tenant
from openseg.atomic_files import StagedFile
from openseg.catalog import service as catalog
from openseg.catalog.processing import INGEST_BATCH
from openseg.errors import BadRequest
from openseg.scope import Scope
from openseg.services import Services
from openseg.worker.queue import enqueue

router = APIRouter(prefix="/data/foundation/import", tags=["ingestion"])


@router.post("/batches", status_code=201)
def create_batch(who: Tenant = Depends(tenant), svc: Services = Depends(services),
                 body: dict[str, Any] = Depends(json_object)) -> JSONResponse:
    with svc.db.session() as session:
        batch = catalog.create_batch(session, scope_of(who), body)
        return JSONResponse(batch_json(batch), status_code=201)


#: Bytes of an upload gathered before one write to disk (each write runs in the thread pool).
_WRITE_BYTES = 1 << 20


@router.put("/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}")
async def upload_file(batch_id: str, dataset_id: str, file_name: str, request: Request,
                      who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> Response:
    """Stream the body to disk: files of several GB never sit in memory. The one handler that awaits (the
    body, chunk by chunk); every blocking step (the catalog, each write) runs in the thread pool."""
    scope = scope_of(who)
    target = await run_in_threadpool(_staging_target, svc, scope, batch_id, dataset_id, file_name)
    upload = await run_in_threadpool(StagedFile, target)
    length = 0
    pending = bytearray()
    try:
        handle = await run_in_threadpool(upload.path.open, "wb")
        try:
            async for chunk in request.stream():
                pending += chunk
                length += len(chunk)
                if len(pending) >= _WRITE_BYTES:
                    await run_in_threadpool(handle.write, bytes(pending))
                    pending.clear()
            await run_in_threadpool(handle.write, bytes(pending))
        finally:
            await run_in_threadpool(handle.close)
        await run_in_threadpool(_record_upload, svc, scope, batch_id, dataset_id, file_name, upload, length)
    except BaseException:
        # An interrupted or refused upload leaves nothing behind.
        await run_in_threadpool(upload.discard)
        raise
    return Response(status_code=200)


def _staging_target(svc: Services, scope: Scope, batch_id: str, dataset_id: str, file_name: str) -> Path:
    with svc.db.session() as session:
        catalog.check_upload(session, scope, batch_id, dataset_id)
    return catalog.stage_file_target(svc.settings.staging, batch_id, file_name)


def _record_upload(svc: Services, scope: Scope, batch_id: str, dataset_id: str, file_name: str, upload: StagedFile,
                   length: int) -> None:
    upload.publish()
    with svc.db.session() as session:
        batch = catalog.check_upload(session, scope, batch_id, dataset_id)
        catalog.record_upload(session, batch, file_name, upload.final, length)


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
