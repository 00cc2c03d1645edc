"""Catalog Service: ``/data/foundation/catalog`` datasets and batches (objects keyed by id)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from openseg.api.deps import Tenant, json_object, services, tenant
from openseg.api.paging import parse_int
from openseg.catalog import service as catalog
from openseg.catalog.service import dataset_kind
from openseg.scope import Scope
from openseg.services import Services
from openseg.store.models import Batch, Dataset

router = APIRouter(prefix="/data/foundation/catalog", tags=["catalog"])


def scope_of(who: Tenant) -> Scope:
    return Scope(org_id=who.org_id, sandbox_id=who.sandbox.id)


def dataset_json(dataset: Dataset) -> dict[str, Any]:
    body: dict[str, Any] = dict(dataset.extra or {})
    body.update({
        "name": dataset.name,
        "schemaRef": dataset.schema_ref,
        "tags": dataset.tags or {},
        "classification": {"dataBehavior": "time-series" if dataset_kind(dataset) == "event" else "record"},
        "fileDescription": dataset.file_description or {},
        "imsOrg": dataset.org_id,
        "sandboxId": dataset.sandbox_id,
        "created": dataset.created,
        "updated": dataset.updated,
        "createdUser": "openseg",
        "version": dataset.version,
    })
    if dataset.description is not None:
        body["description"] = dataset.description
    if dataset.aspect is not None:
        body["aspect"] = dataset.aspect
    if dataset.last_batch_id:
        body["lastBatchId"] = dataset.last_batch_id
        body["lastBatchStatus"] = dataset.last_batch_status
    return body


def batch_json(batch: Batch) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": batch.id,
        "imsOrg": batch.org_id,
        "sandboxId": batch.sandbox_id,
        "status": batch.status,
        "relatedObjects": [{"type": "dataSet", "id": batch.dataset_id}],
        "inputFormat": batch.input_format,
        "metrics": {
            "recordsRead": batch.records_read,
            "recordsWritten": batch.records_written,
            "failedRecordCount": sum(1 for e in batch.errors or [] if "record" in e),
        },
        "errors": batch.errors or [],
        "created": batch.created,
        "updated": batch.updated,
        "createdUser": "openseg",
        "version": "1.0.0",
    }
    if batch.started:
        body["started"] = batch.started
    if batch.completed:
        body["completed"] = batch.completed
    return body


def _project(body: dict[str, Any], properties: str | None) -> dict[str, Any]:
    if not properties:
        return body
    wanted = {p.strip() for p in properties.split(",") if p.strip()}
    return {k: v for k, v in body.items() if k in wanted}


def _page(request: Request) -> tuple[int, int, str | None]:
    params = request.query_params
    return (parse_int(params.get("limit"), "limit", 50, minimum=1, maximum=100),
            parse_int(params.get("start"), "start", 0), params.get("orderBy") or params.get("orderby"))



@router.post("/dataSets", status_code=201)
def create_dataset(who: Tenant = Depends(tenant), svc: Services = Depends(services),
                   body: dict[str, Any] = Depends(json_object)) -> JSONResponse:
    with svc.db.session() as session:
        dataset = catalog.create_dataset(session, scope_of(who), body)
        return JSONResponse([f"@/dataSets/{dataset.id}"], status_code=201)


@router.get("/dataSets")
def list_datasets(request: Request, who: Tenant = Depends(tenant),
                  svc: Services = Depends(services)) -> dict[str, Any]:
    limit, start, order_by = _page(request)
    properties = request.query_params.get("properties")
    with svc.db.session() as session:
        datasets = catalog.list_datasets(session, scope_of(who), limit=limit, start=start, order_by=order_by,
                                         name=request.query_params.get("name"))
        return {d.id: _project(dataset_json(d), properties) for d in datasets}


@router.get("/dataSets/{dataset_id}")
def get_dataset(dataset_id: str, request: Request, who: Tenant = Depends(tenant),
                svc: Services = Depends(services)) -> dict[str, Any]:
    with svc.db.session() as session:
        dataset = catalog.get_dataset(session, scope_of(who), dataset_id)
        return {dataset.id: _project(dataset_json(dataset), request.query_params.get("properties"))}


@router.patch("/dataSets/{dataset_id}")
def patch_dataset(dataset_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
                  body: dict[str, Any] = Depends(json_object)) -> list[str]:
    with svc.db.session() as session:
        catalog.update_dataset(session, scope_of(who), dataset_id, body)
    return [f"@/dataSets/{dataset_id}"]


@router.delete("/dataSets/{dataset_id}")
def delete_dataset(dataset_id: str, who: Tenant = Depends(tenant),
                   svc: Services = Depends(services)) -> list[str]:
    with svc.db.session() as session:
        catalog.delete_dataset(session, scope_of(who), dataset_id, svc.settings.lake)
    return [f"@/dataSets/{dataset_id}"]


@router.get("/batches")
def list_batches(request: Request, who: Tenant = Depends(tenant),
                 svc: Services = Depends(services)) -> dict[str, Any]:
    limit, start, order_by = _page(request)
    params = request.query_params
    with svc.db.session() as session:
        batches = catalog.list_batches(session, scope_of(who), dataset_id=params.get("dataSet"),
                                       status=params.get("status"), limit=limit, start=start, order_by=order_by)
        return {b.id: _project(batch_json(b), params.get("properties")) for b in batches}


@router.get("/batches/{batch_id}")
def get_batch(batch_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    with svc.db.session() as session:
        batch = catalog.get_batch(session, scope_of(who), batch_id)
        return {batch.id: batch_json(batch)}
