"""Data Access API: ``/data/foundation/export`` batch files, file listings and the bytes (with Range)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse

from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, services, tenant
from openseg.catalog import service as catalog
from openseg.errors import NotFound
from openseg.services import Services

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
                "isValid": True,
                "_links": {"self": {"href": f"{base}/data/foundation/export/files/{f.id}"}},
            }
            for f in files
        ]
    return {"data": data, "_page": {"limit": 100, "count": len(data)}}


@router.get("/files/{file_id}", response_model=None)
def file_or_listing(file_id: str, request: Request, who: Tenant = Depends(tenant),
                    svc: Services = Depends(services)) -> dict[str, Any] | FileResponse:
    base = str(request.base_url).rstrip("/")
    path_param = request.query_params.get("path")
    with svc.db.session() as session:
        data_file = catalog.get_data_file(session, scope_of(who), file_id)
        name, path, length = data_file.name, Path(data_file.path), data_file.length
    if path_param is None:
        href = f"{base}/data/foundation/export/files/{file_id}?path={name}"
        return {"data": [{"name": name, "length": str(length), "_links": {"self": {"href": href}}}],
                "_page": {"limit": 100, "count": 1}}
    if path_param != name or not path.is_file():
        raise NotFound(f"file '{path_param}' is not part of dataSetFile '{file_id}'", field="path")
    return FileResponse(path, media_type="application/octet-stream", filename=name)
