"""Catalog Service: ``/data/foundation/catalog`` datasets and batches (objects keyed by id)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from openseg.api.deps import Tenant, services, tenant, typed_body
from openseg.api.models._base import plain
from openseg.api.models.catalog import BatchRecord, DatasetChange, DatasetMerge, DatasetRequest
from openseg.api.paging import MAX_QUERY_TEXT, AsciiInteger, Start
from openseg.catalog import batch_records
from openseg.catalog import service as catalog
from openseg.catalog.batch_records import batch_object as batch_json
from openseg.catalog.service import dataset_kind, is_profile_enabled
from openseg.container import Services
from openseg.errors import NotFound
from openseg.profiles.service import request_build
from openseg.scope import Scope
from openseg.store.models import Dataset
from openseg.store.repositories import SqlAlchemyWorkQueue

router = APIRouter(prefix="/data/foundation/catalog", tags=["catalog"])


def scope_of(who: Tenant) -> Scope:
    return Scope(org_id=who.org_id, sandbox_id=who.sandbox.id)


def dataset_json(dataset: Dataset) -> dict[str, Any]:
    body: dict[str, Any] = dict(dataset.extra or {})
    kept = body.get("classification")  # managedBy and the like, kept from a create, PUT or v2 PATCH
    body.update({
        "name": dataset.name,
        "schemaRef": dataset.schema_ref,
        "tags": dataset.tags or {},
        "classification": {**(kept if isinstance(kept, dict) else {}),
                           "dataBehavior": "time-series" if dataset_kind(dataset) == "event" else "record"},
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


def _project(body: dict[str, Any], properties: str | None) -> dict[str, Any]:
    if not properties:
        return body
    wanted = {p.strip() for p in properties.split(",") if p.strip()}
    return {k: v for k, v in body.items() if k in wanted}


def _text(description: str, alias: str | None = None) -> Any:
    return Query(alias=alias, max_length=MAX_QUERY_TEXT, description=description)


Limit = Annotated[int, Query(ge=1, le=100, description="objects per page"), AsciiInteger]
OrderBy = Annotated[str | None, _text("desc:created, asc:name, ... (orderby is taken too)", "orderBy")]
OrderByLower = Annotated[str | None, _text("as orderBy", "orderby")]
Properties = Annotated[str | None, _text("the fields to answer, comma-separated")]
DatasetFilter = Annotated[str | None, _text("only batches of this dataset", "dataSet")]
Status = Annotated[str | None, _text("only batches of this status")]



@router.post("/dataSets", status_code=201)
def create_dataset(who: Tenant = Depends(tenant), svc: Services = Depends(services),
                   body: DatasetRequest = typed_body(DatasetRequest)) -> JSONResponse:
    with svc.db.session() as session:
        dataset = catalog.create_dataset(session, scope_of(who), plain(body))
        return JSONResponse([f"@/dataSets/{dataset.id}"], status_code=201)


@router.get("/dataSets")
def list_datasets(who: Tenant = Depends(tenant), svc: Services = Depends(services), limit: Limit = 50,
                  start: Start = 0, order_by: OrderBy = None, orderby: OrderByLower = None,
                  properties: Properties = None,
                  name: Annotated[str | None, _text("only datasets of this name")] = None) -> dict[str, Any]:
    with svc.db.session() as session:
        datasets = catalog.list_datasets(session, scope_of(who), limit=limit, start=start, order_by=order_by or orderby,
                                         name=name)
        return {d.id: _project(dataset_json(d), properties) for d in datasets}


@router.get("/dataSets/{dataset_id}")
def get_dataset(dataset_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
                properties: Properties = None) -> dict[str, Any]:
    with svc.db.session() as session:
        dataset = catalog.get_dataset(session, scope_of(who), dataset_id)
        return {dataset.id: _project(dataset_json(dataset), properties)}


@router.put("/dataSets/{dataset_id}")
def replace_dataset(dataset_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
                    body: DatasetRequest = typed_body(DatasetRequest)) -> list[str]:
    with svc.db.session() as session:
        catalog.replace_dataset(session, scope_of(who), dataset_id, plain(body))
    return [f"@/dataSets/{dataset_id}"]


@router.patch("/dataSets/{dataset_id}")
def patch_dataset(dataset_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
                  body: DatasetChange = typed_body(DatasetChange)) -> list[str]:
    """The fields to change as an object, or as a JSON Patch (the spec's ``application/json-patch+json``
    example adds ``/tags/unifiedProfile``)."""
    change = plain(body)
    with svc.db.session() as session:
        if isinstance(change, list):
            catalog.patch_dataset(session, scope_of(who), dataset_id, change)
        else:
            catalog.update_dataset(session, scope_of(who), dataset_id, change)
    return [f"@/dataSets/{dataset_id}"]


@router.patch("/v2/dataSets/{dataset_id}")
def merge_dataset(dataset_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
                  body: DatasetMerge = typed_body(DatasetMerge)) -> list[str]:
    with svc.db.session() as session:
        catalog.merge_dataset(session, scope_of(who), dataset_id, plain(body))
    return [f"@/dataSets/{dataset_id}"]


@router.delete("/dataSets/{dataset_id}")
def delete_dataset(dataset_id: str, who: Tenant = Depends(tenant),
                   svc: Services = Depends(services)) -> list[str]:
    with svc.db.session() as session:
        catalog.delete_dataset(session, scope_of(who), dataset_id, svc.settings.data_lake, home=svc.settings.home)
    return [f"@/dataSets/{dataset_id}"]


@router.get("/dataSets/{dataset_id}/credentials")
def dataset_credentials(dataset_id: str, who: Tenant = Depends(tenant)) -> None:
    """AEP hands out storage credentials for a dataset's files (deprecated there); openseg has none to give."""
    raise NotFound(f"openseg gives no storage credentials for dataset '{dataset_id}': read its files through Data "
                   "Access (GET /data/foundation/export/batches/{batchId}/files, then /export/files/{fileId}) and "
                   "write them through batch ingestion (/data/foundation/import/batches)",
                   report={"resource": "credentials", "id": dataset_id})


@router.get("/batches")
def list_batches(who: Tenant = Depends(tenant), svc: Services = Depends(services), limit: Limit = 50,
                 start: Start = 0, order_by: OrderBy = None, orderby: OrderByLower = None,
                 properties: Properties = None, dataset_id: DatasetFilter = None, status: Status = None) -> dict[str, Any]:
    with svc.db.session() as session:
        batches = catalog.list_batches(session, scope_of(who), dataset_id=dataset_id, status=status, limit=limit,
                                       start=start, order_by=order_by or orderby)
        return {b.id: _project(batch_json(b), properties) for b in batches}


@router.post("/batches", status_code=201)
def create_batch(who: Tenant = Depends(tenant), svc: Services = Depends(services),
                 body: BatchRecord = typed_body(BatchRecord)) -> JSONResponse:
    """A Catalog record of a batch processed elsewhere; batches to ingest are created at /import/batches."""
    with svc.db.session() as session:
        batch = batch_records.create_batch(session, scope_of(who), plain(body))
        return JSONResponse([f"@/batches/{batch.id}"], status_code=201,
                            headers={"Location": f"/data/foundation/catalog/batches/{batch.id}"})


@router.post("/batches/{batch_id}", status_code=201)
def create_batch_with_id(batch_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
                         body: BatchRecord = typed_body(BatchRecord)) -> JSONResponse:
    """``createBatchWithId``: a Catalog batch record under the id the caller chose."""
    with svc.db.session() as session:
        batch = batch_records.create_batch(session, scope_of(who), plain(body), batch_id=batch_id)
        return JSONResponse([f"@/batches/{batch.id}"], status_code=201,
                            headers={"Location": f"/data/foundation/catalog/batches/{batch.id}"})


@router.get("/batches/uniques/{field}")
def unique_batch_values(field: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
                        limit: Limit = 50, status: Status = None, dataset_id: DatasetFilter = None) -> list[str]:
    with svc.db.session() as session:
        return batch_records.unique_values(session, scope_of(who), field, status=status, dataset_id=dataset_id,
                                           limit=limit)


@router.get("/lastBatches")
def list_last_batches(who: Tenant = Depends(tenant), svc: Services = Depends(services), limit: Limit = 50,
                      start: Start = 0, properties: Properties = None,
                      dataset_ids: Annotated[str | None, _text("dataset ids, comma-separated", "dataSetId")] = None,
                      last_batch_id: Annotated[str | None, _text("filter", "lastBatchId")] = None,
                      last_batch_status: Annotated[str | None, _text("filter", "lastBatchStatus")] = None,
                      last_successful: Annotated[str | None, _text("filter", "lastSuccessfulBatchId")] = None,
                      last_failed: Annotated[str | None, _text("filter", "lastFailedBatchId")] = None,
                      ) -> dict[str, Any]:
    given = {"lastBatchId": last_batch_id, "lastBatchStatus": last_batch_status,
             "lastSuccessfulBatchId": last_successful, "lastFailedBatchId": last_failed}
    filters = {name: value for name, value in given.items() if value and name in batch_records.LAST_BATCH_FILTERS}
    with svc.db.session() as session:
        found = batch_records.last_batches(
            session, scope_of(who),
            dataset_ids=[i.strip() for i in dataset_ids.split(",") if i.strip()] if dataset_ids else None,
            filters=filters, start=start, limit=limit)
    return {key: _project(entry, properties) for key, entry in found.items()}


@router.get("/batches/{batch_id}")
def get_batch(batch_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    with svc.db.session() as session:
        batch = catalog.get_batch(session, scope_of(who), batch_id)
        return {batch.id: batch_json(batch)}


@router.put("/batches/{batch_id}")
def replace_batch(batch_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
                  body: BatchRecord = typed_body(BatchRecord)) -> list[str]:
    with svc.db.session() as session:
        batch_records.replace_batch(session, scope_of(who), batch_id, plain(body))
    return [f"@/batches/{batch_id}"]


@router.patch("/batches/{batch_id}")
def patch_batch(batch_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
                body: BatchRecord = typed_body(BatchRecord)) -> list[str]:
    with svc.db.session() as session:
        batch_records.patch_batch(session, scope_of(who), batch_id, plain(body))
    return [f"@/batches/{batch_id}"]


@router.delete("/batches/{batch_id}")
def delete_batch(batch_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> list[str]:
    """Deprecated in AEP's Catalog, still answered: the batch and its files go."""
    settings = svc.settings
    with svc.db.session() as session:
        batch = batch_records.delete_batch(session, scope_of(who), batch_id, data_lake=settings.data_lake,
                                           staging=settings.staging, home=settings.home)
        dataset = session.get(Dataset, batch.dataset_id)
        if batch.status == "success" and dataset is not None and is_profile_enabled(dataset):
            request_build(SqlAlchemyWorkQueue(session), batch.sandbox_id)  # its records leave the merged profiles
    return [f"@/batches/{batch_id}"]
