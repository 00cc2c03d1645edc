"""Batch Ingestion API: ``/data/foundation/import`` create batch, upload files, complete or abort."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, services, tenant, typed_body
from openseg.api.models._base import plain
from openseg.api.models.catalog import IngestBatchRequest
from openseg.api.paging import AsciiInteger
from openseg.atomic_files import StagedFile
from openseg.catalog import large_files, previews
from openseg.catalog import service as catalog
from openseg.catalog.batch_records import batch_object as batch_json
from openseg.catalog.processing import INGEST_BATCH
from openseg.clock import new_hex_id
from openseg.container import Services
from openseg.errors import BadRequest, NotFound
from openseg.scope import Scope
from openseg.worker.queue import enqueue

router = APIRouter(prefix="/data/foundation/import", tags=["ingestion"])


@router.post("/batches", status_code=201)
def create_batch(who: Tenant = Depends(tenant), svc: Services = Depends(services),
                 body: IngestBatchRequest = typed_body(IngestBatchRequest)) -> JSONResponse:
    with svc.db.session() as session:
        batch = catalog.create_batch(session, scope_of(who), plain(body))
        return JSONResponse(batch_json(batch), status_code=201)


#: Bytes of an upload gathered before one write to disk (each write runs in the thread pool).
_WRITE_BYTES = 1 << 20
#: How /openapi.json describes an upload's body: the file's bytes, as they are.
_FILE_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}
_ACTION_WORDS = 16


@router.put("/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}", openapi_extra=_FILE_BODY)
async def upload_file(batch_id: str, dataset_id: str, file_name: str, request: Request,
                      who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> Response:
    """Stream the body to disk: files of several GB never sit in memory. The handlers that await (the
    body, chunk by chunk) run every blocking step (the catalog, each write) in the thread pool."""
    scope = scope_of(who)
    target = await run_in_threadpool(_staging_target, svc, scope, batch_id, dataset_id, file_name)
    upload = await run_in_threadpool(StagedFile, target)
    try:
        length = await _receive(request, upload)
        await run_in_threadpool(_record_upload, svc, scope, batch_id, dataset_id, file_name, upload, length)
    except BaseException:
        # An interrupted or refused upload leaves nothing behind.
        await run_in_threadpool(upload.discard)
        raise
    return Response(status_code=200)


async def _receive(request: Request, upload: StagedFile, expected: int | None = None) -> int:
    """Write the request body to ``upload.path``; with ``expected``, refuse a body of another length."""
    length = 0
    pending = bytearray()
    handle = await run_in_threadpool(upload.path.open, "wb")
    try:
        async for chunk in request.stream():
            pending += chunk
            length += len(chunk)
            if expected is not None and length > expected:
                break
            if len(pending) >= _WRITE_BYTES:
                await run_in_threadpool(handle.write, bytes(pending))
                pending.clear()
        await run_in_threadpool(handle.write, bytes(pending))
    finally:
        await run_in_threadpool(handle.close)
    if expected is not None and length != expected:
        raise BadRequest(f"the body holds {'more than ' if length > expected else ''}{length} bytes; its "
                         f"'Content-Range' announces {expected}", field="Content-Range")
    return length


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


# -- large files: INITIALIZE, parts (PATCH + Content-Range), COMPLETE, status (HEAD) --------------------------

def _file_json(name: str, size: int) -> dict[str, Any]:
    return {"name": name, "sizeInBytes": size}


@router.post("/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}")
def large_file_action(batch_id: str, dataset_id: str, file_name: str, who: Tenant = Depends(tenant),
                      svc: Services = Depends(services),
                      action: Annotated[str | None, Query(max_length=_ACTION_WORDS,
                                                          description="INITIALIZE or COMPLETE")] = None,
                      ) -> dict[str, Any]:
    action = (action or "").upper()
    staging, scope = svc.settings.staging, scope_of(who)
    target = _staging_target(svc, scope, batch_id, dataset_id, file_name)
    if action == "INITIALIZE":
        large_files.initialize(staging, batch_id, file_name)
        return _file_json(file_name, 0)
    if action == "COMPLETE":
        size = large_files.complete(staging, batch_id, target, file_name)
        with svc.db.session() as session:
            batch = catalog.check_upload(session, scope, batch_id, dataset_id)
            catalog.record_upload(session, batch, file_name, target, size)
        return _file_json(file_name, size)
    raise BadRequest("query parameter 'action' must be INITIALIZE or COMPLETE", field="action")


@router.patch("/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}", openapi_extra=_FILE_BODY)
async def upload_file_part(batch_id: str, dataset_id: str, file_name: str, request: Request,
                           who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> Response:
    """One part of a large file, its bytes named by ``Content-Range``; streamed to disk like a PUT."""
    scope, staging = scope_of(who), svc.settings.staging
    part = await run_in_threadpool(large_files.parse_content_range, request.headers.get("content-range"))
    await run_in_threadpool(_staging_target, svc, scope, batch_id, dataset_id, file_name)
    target = await run_in_threadpool(large_files.part_target, staging, batch_id, file_name, part)
    upload = await run_in_threadpool(StagedFile, target, new_hex_id(8))  # parts of one range may arrive at once
    try:
        await _receive(request, upload, expected=part.length)
        await run_in_threadpool(upload.publish)
    except BaseException:
        await run_in_threadpool(upload.discard)
        raise
    content, received = await run_in_threadpool(_part_answer, staging, batch_id, file_name)
    return Response(content, media_type="application/json", headers={"Range": received})


def _part_answer(staging: Path, batch_id: str, file_name: str) -> tuple[bytes, str]:
    """The ``File`` object (``sizeInBytes``: the bytes received so far) and the ``Range`` received."""
    spans = _received(staging, batch_id, file_name)
    size = sum(last - first + 1 for first, last in spans)
    return json.dumps(_file_json(file_name, size)).encode(), large_files.range_header(spans)


def _received(staging: Path, batch_id: str, file_name: str) -> list[tuple[int, int]]:
    return large_files.received([part for part, _ in large_files.parts(staging, batch_id, file_name)])


@router.head("/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}")
def large_file_status(batch_id: str, dataset_id: str, file_name: str, who: Tenant = Depends(tenant),
                      svc: Services = Depends(services)) -> Response:
    """The bytes received so far, as ``Range: bytes=0-1048575,...`` (a completed file: all of it)."""
    staging = svc.settings.staging
    with svc.db.session() as session:
        batch = catalog.get_batch(session, scope_of(who), batch_id)
        if batch.dataset_id != dataset_id:
            raise NotFound(f"batch '{batch_id}' has no dataset '{dataset_id}'", field="datasetId")
        uploaded = catalog.staged_file(session, batch_id, file_name)
        length = uploaded.length if uploaded is not None else None
    if large_files.is_initialized(staging, batch_id, file_name):
        spans = _received(staging, batch_id, file_name)
    elif length is not None:
        spans = [(0, length - 1)] if length else []
    else:
        raise NotFound(f"batch '{batch_id}' has no file '{file_name}', uploaded or initialized", field="filePath")
    headers = {"Range": large_files.range_header(spans)} if spans else {}
    return Response(status_code=200, headers=headers)


@router.get("/batches/{batch_id}/datasets/{dataset_id}/preview")
def batch_preview(batch_id: str, dataset_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
                  nrow: Annotated[int, Query(ge=0, le=previews.MAX_ROWS, description="rows to show"), AsciiInteger] = 0,
                  file_format: Annotated[str | None, Query(alias="format", max_length=_ACTION_WORDS,
                                                           description="the files' format: json, parquet or csv")] = None,
                  ) -> dict[str, Any]:
    with svc.db.session() as session:
        return previews.batch_preview(session, scope_of(who), batch_id, dataset_id, file_format,
                                      nrow or previews.DEFAULT_ROWS)


@router.post("/batches/{batch_id}")
def batch_action(batch_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
                 action: Annotated[str | None, Query(max_length=_ACTION_WORDS, description="COMPLETE or ABORT")] = None,
                 ) -> dict[str, Any]:
    """COMPLETE or ABORT; the answer is the batch object, as AEP's ``completeBatch`` gives it."""
    action = (action or "").upper()
    with svc.db.session() as session:
        if action == "COMPLETE":
            unfinished = large_files.unfinished(svc.settings.staging, batch_id)
            batch = catalog.complete_batch(session, scope_of(who), batch_id, unfinished)
            enqueue(session, INGEST_BATCH, batch.id)
        elif action == "ABORT":
            batch = catalog.abort_batch(session, scope_of(who), batch_id, svc.settings.staging)
        else:
            raise BadRequest("query parameter 'action' must be COMPLETE or ABORT", field="action")
        return batch_json(batch)
