"""Batch Ingestion API: ``/data/foundation/import`` create batch, upload files, complete or abort."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from openseg.api.catalog import batch_json, scope_of
from openseg.api.deps import Tenant, json_object, services, tenant
from openseg.catalog import service as catalog
from openseg.catalog.processing import INGEST_BATCH
from openseg.catalog.service import Scope
from openseg.errors import BadRequest
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
    partial = target.with_name(f".{target.name}.part")
    handle = await run_in_threadpool(partial.open, "wb")
    length = 0
    pending = bytearray()
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
    await run_in_threadpool(_record_upload, svc, scope, batch_id, dataset_id, file_name, partial, target, length)
    return Response(status_code=200)


def _staging_target(svc: Services, scope: Scope, batch_id: str, dataset_id: str, file_name: str) -> Path:
    with svc.db.session() as session:
        catalog.check_upload(session, scope, batch_id, dataset_id)
    target = catalog.stage_file_target(svc.settings.staging, batch_id, file_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _record_upload(svc: Services, scope: Scope, batch_id: str, dataset_id: str, file_name: str, partial: Path,
                   target: Path, length: int) -> None:
    os.replace(partial, target)
    with svc.db.session() as session:
        batch = catalog.check_upload(session, scope, batch_id, dataset_id)
        catalog.record_upload(session, batch, file_name, target, length)


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
