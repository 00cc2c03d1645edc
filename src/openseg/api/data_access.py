"""Data Access API: ``/data/foundation/export`` batch files, file listings and the bytes (with Range)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from openseg import lake_files
from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, services, tenant
from openseg.api.paging import AsciiInteger, Start
from openseg.catalog import service as catalog
from openseg.catalog.batch_meta import meta_files
from openseg.catalog.failed_records import failed_files
from openseg.catalog.previews import dataset_preview
from openseg.container import Services
from openseg.errors import NotFound

router = APIRouter(prefix="/data/foundation/export", tags=["data access"])


@router.get("/batches/{batch_id}/files")
def batch_files(batch_id: str, request: Request, who: Tenant = Depends(tenant),
                svc: Services = Depends(services)) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    with svc.db.session() as session:
        batch = catalog.get_batch(session, scope_of(who), batch_id)
        files = catalog.batch_files(session, batch.id)
        data = [
            {
                "dataSetFileId": f.id,
                "dataSetViewId": f.dataset_id,
                "version": "1.0.0",
                "created": str(f.created),
                "updated": str(f.created),
                "records": str(f.records),
                "size": str(f.length),
                "isValid": True,
                "_links": {"self": {"href": f"{base}/data/foundation/export/files/{f.id}"}},
            }
            for f in files
        ]
    return {"data": data, "_page": {"limit": 100, "count": len(data)}}


#: ``?path=``: the one file to download (its name in the listing).
FilePath = Annotated[str | None, Query(max_length=1024, description="the file to download (its name in the listing)")]
Limit = Annotated[int, Query(ge=1, le=100, description="files per page"), AsciiInteger]


def _listing(names_and_lengths: list[tuple[str, int]], href: str, start: int, limit: int) -> dict[str, Any]:
    """AEP's ``files`` listing: ``{data: [{name, length, _links.self.href}], _page: {limit, count}}``."""
    page = names_and_lengths[start:start + limit]
    data = [{"name": name, "length": str(length), "_links": {"self": {"href": f"{href}?path={quote(name)}"}}}
            for name, length in page]
    return {"data": data, "_page": {"limit": limit, "count": len(data)}}


@router.get("/batches/{batch_id}/failed", response_model=None)
def failed_batch_files(batch_id: str, request: Request, who: Tenant = Depends(tenant),
                       svc: Services = Depends(services), path: FilePath = None, start: Start = 0,
                       limit: Limit = 100) -> dict[str, Any] | FileResponse:
    """The failed records of a failed batch, one file per input file that had any (``?path=`` downloads one)."""
    with svc.db.session() as session:
        batch = catalog.get_batch(session, scope_of(who), batch_id)
        sandbox_id = batch.sandbox_id
    files = failed_files(svc.settings.home, sandbox_id, batch_id)
    if path is None:
        href = f"{str(request.base_url).rstrip('/')}/data/foundation/export/batches/{batch_id}/failed"
        return _listing([(name, file.stat().st_size) for name, file in files.items()], href, start, limit)
    if path not in files:
        raise NotFound(f"failed batch '{batch_id}' has no file '{path}'", field="path")
    return FileResponse(files[path], media_type="application/octet-stream", filename=path)


@router.get("/batches/{batch_id}/meta", response_model=None)
def batch_meta(batch_id: str, request: Request, who: Tenant = Depends(tenant),
               svc: Services = Depends(services), path: FilePath = None, start: Start = 0,
               limit: Limit = 100) -> dict[str, Any] | Response:
    """The batch's meta files (``input_files``, ``row_errors_sample.json``); ``?path=`` downloads one."""
    with svc.db.session() as session:
        batch = catalog.get_batch(session, scope_of(who), batch_id)
        files = meta_files(batch, catalog.staged_files(session, batch.id))
    if path is None:
        href = f"{str(request.base_url).rstrip('/')}/data/foundation/export/batches/{batch_id}/meta"
        return _listing([(name, len(content)) for name, content in files.items()], href, start, limit)
    if path not in files:
        raise NotFound(f"batch '{batch_id}' has no meta file '{path}'; it has: "
                       f"{', '.join(files) or 'none'}", field="path")
    return Response(files[path], media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{path}"'})


@router.head("/files/{file_id}", response_model=None)
def file_headers(file_id: str, request: Request, who: Tenant = Depends(tenant),
                 svc: Services = Depends(services), path: FilePath = None) -> Response:
    """The headers a GET would answer with: ``Accept-Ranges``, ``Content-Length``, ``Content-Type``."""
    answer = file_or_listing(file_id, request, who, svc, path)
    if isinstance(answer, FileResponse):
        return answer  # Starlette sends a file's headers alone to a HEAD request
    if isinstance(answer, StreamingResponse):
        return Response(status_code=200, headers=dict(answer.headers))
    body = JSONResponse(answer)
    return Response(status_code=200, headers={"Accept-Ranges": "none", "Content-Length": str(len(body.body)),
                                              "Content-Type": "application/json"})


@router.get("/files/{file_id}", response_model=None)
def file_or_listing(file_id: str, request: Request, who: Tenant = Depends(tenant),
                    svc: Services = Depends(services), path: FilePath = None,
                    ) -> dict[str, Any] | FileResponse | StreamingResponse:
    base = str(request.base_url).rstrip("/")
    with svc.db.session() as session:
        data_file = catalog.get_data_file(session, scope_of(who), file_id)
        name, stored, length = data_file.name, data_file.path, data_file.length
    if path is None:
        href = f"{base}/data/foundation/export/files/{file_id}?path={name}"
        return {"data": [{"name": name, "length": str(length), "_links": {"self": {"href": href}}}],
                "_page": {"limit": 100, "count": 1}}
    if path != name or not lake_files.exists(stored):
        raise NotFound(f"file '{path}' is not part of dataSetFile '{file_id}'", field="path")
    if not lake_files.is_remote(stored):
        return FileResponse(stored, media_type="application/octet-stream", filename=name)
    # An object store lake's file: streamed through (no ranges; the listing gave its length).
    size, _ = lake_files.stat(stored)
    return StreamingResponse(lake_files.chunks(stored), media_type="application/octet-stream",
                             headers={"Content-Length": str(size), "Accept-Ranges": "none",
                                      "Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/datasets/{dataset_id}/preview")
def preview_dataset(dataset_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    """The dataset's first 100 records (of its successful batches, oldest first) as ``{"data": [...]}``."""
    with svc.db.session() as session:
        return dataset_preview(session, scope_of(who), dataset_id)
