"""Catalog's batch objects (``/data/foundation/catalog/batches``): their JSON, and create, replace, patch,
delete and unique values as Catalog's API offers them.

A batch openseg ingests or an export writes (``origin`` ``ingestion`` / ``export``) has its lifecycle set by
openseg: its status, counters, errors, dataset and format. Through Catalog a user changes what describes it
(``tags``, ``externalId``, ``availableDates``, ``replay``); a lifecycle field may be sent only with the value
it has (a PUT of the object read back works). A batch created through Catalog (``origin`` ``catalog``) is a
record of work done elsewhere, as in AEP: every field of Catalog's ``batchRequest`` is the user's, and openseg
never processes it (files cannot be uploaded to it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from openseg.catalog import lake
from openseg.catalog.failed_records import remove_failed_records
from openseg.catalog.service import get_batch, get_dataset
from openseg.clock import new_hex_id, now_ms
from openseg.errors import BadRequest, NotFound
from openseg.lake_files import Lake
from openseg.request_fields import json_type
from openseg.scope import Scope
from openseg.store.models import Batch, Dataset

#: Catalog's batch statuses (``batchRequest.status``).
STATUSES = ("processing", "success", "failure", "queued", "retrying", "stalled", "aborted", "abandoned", "inactive",
            "failed", "loading", "loaded", "staged", "active", "staging", "deleted")
RELATED_TYPES = ("batch", "dataSet", "dataSetFile", "dataSetView", "transform")
INPUT_FORMATS = ("csv", "parquet", "json", "avro")
#: Fields of the answer a client may send back unchanged (a PUT of what GET gave); they are not written.
READ_ONLY = ("id", "imsOrg", "sandboxId", "created", "updated", "createdUser", "createdClient", "updatedUser",
             "version", "failedBatchLocation")
#: What describes a batch: the user's on every batch.
DESCRIPTIVE = ("externalId", "availableDates", "replay", "tags")
#: What openseg sets on the batches it ingests or writes.
LIFECYCLE = ("status", "recordCount", "failedRecordCount", "size", "started", "completed", "errors",
             "relatedObjects", "metrics", "inputFormat")
_COUNTERS = ("recordCount", "failedRecordCount", "size", "started", "completed")
#: ``GET /batches/uniques/{FIELD}``: the fields it answers, and their columns.
UNIQUE_FIELDS = {"id": Batch.id, "status": Batch.status, "dataSet": Batch.dataset_id, "created": Batch.created,
                 "updated": Batch.updated, "started": Batch.started, "completed": Batch.completed,
                 "recordCount": Batch.records_read, "failedRecordCount": Batch.failed_records, "size": Batch.size}


def batch_object(batch: Batch) -> dict[str, Any]:
    """The batch as Catalog's ``batchResponse`` (plus its ``id``) and batch ingestion's ``Batch`` show it."""
    extra = dict(batch.extra or {})
    catalog_record = batch.origin == "catalog"
    body: dict[str, Any] = {k: extra.pop(k) for k in ("externalId", "replay", "availableDates") if k in extra}
    failed = batch.failed_records
    if failed is None:  # batches processed before the column existed
        failed = sum(1 for e in batch.errors or [] if "record" in e)
    body.update({
        "id": batch.id,
        "imsOrg": batch.org_id,
        "sandboxId": batch.sandbox_id,
        "status": batch.status,
        "relatedObjects": (extra.get("relatedObjects") if catalog_record else None)
        or [{"type": "dataSet", "id": batch.dataset_id}],
        "inputFormat": batch.input_format,
        "metrics": extra.get("metrics", {}) if catalog_record else {
            "recordsRead": batch.records_read,
            "recordsWritten": batch.records_written,
            "failedRecordCount": failed,
        },
        "recordCount": batch.records_read,
        "failedRecordCount": failed,
        "size": batch.size or 0,
        "errors": batch.errors or [],
        "tags": batch.tags or {},
        "created": batch.created,
        "updated": batch.updated,
        "createdUser": "openseg",
        "version": "1.0.0",
    })
    if batch.started:
        body["started"] = batch.started
    if batch.completed:
        body["completed"] = batch.completed
    if batch.status == "failed" and batch.origin == "ingestion":
        body["failedBatchLocation"] = f"/data/foundation/export/batches/{batch.id}/failed"
    return body


# -- checking a body ---------------------------------------------------------------------------------------

def _fail(field: str, message: str) -> BadRequest:
    return BadRequest(f"'{field}' {message}", field=field)


def _check_field(name: str, value: Any) -> None:
    if name == "status":
        if not isinstance(value, str) or value not in STATUSES:
            raise _fail(name, f"must be one of {', '.join(STATUSES)}")
    elif name in _COUNTERS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _fail(name, f"must be a non-negative integer, not {json_type(value)}")
    elif name == "externalId":
        if not isinstance(value, str):
            raise _fail(name, f"must be a string, not {json_type(value)}")
    elif name == "tags":
        if not isinstance(value, dict) or not all(isinstance(v, list) and all(isinstance(i, str) for i in v)
                                                  for v in value.values()):
            raise _fail(name, "must be an object of tag name -> list of strings")
    elif name in ("metrics", "replay", "availableDates"):
        if not isinstance(value, dict):
            raise _fail(name, f"must be an object, not {json_type(value)}")
    elif name == "errors":
        _check_errors(value)
    elif name == "relatedObjects":
        _check_related(value)
    elif name == "inputFormat":
        fmt = value.get("format") if isinstance(value, dict) else None
        if not isinstance(value, dict) or (fmt is not None and str(fmt).lower() not in INPUT_FORMATS):
            raise BadRequest(f"'inputFormat' must be an object whose 'format' is one of {', '.join(INPUT_FORMATS)}",
                             field="inputFormat.format")


def _check_errors(value: Any) -> None:
    if not isinstance(value, list):
        raise _fail("errors", f"must be a list of {{code, rows, description}}, not {json_type(value)}")
    for index, error in enumerate(value):
        if not isinstance(error, dict):
            raise _fail(f"errors[{index}]", "must be an object {code, rows, description}")
        for key in ("code", "description"):
            if key in error and not isinstance(error[key], str):
                raise _fail(f"errors[{index}].{key}", "must be a string")
        rows = error.get("rows", [])
        if not isinstance(rows, list) or not all(isinstance(r, str) for r in rows):
            raise _fail(f"errors[{index}].rows", "must be a list of strings (a row, or a range such as '3-5')")


def _check_related(value: Any) -> None:
    if not isinstance(value, list):
        raise _fail("relatedObjects", f"must be a list of {{type, id}}, not {json_type(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, dict) or item.get("type") not in RELATED_TYPES or not isinstance(item.get("id"), str):
            raise _fail(f"relatedObjects[{index}]", f"must be {{type, id}} with type one of {', '.join(RELATED_TYPES)}")


def _checked(body: dict[str, Any]) -> dict[str, Any]:
    """The writable fields of ``body``, each checked; unknown fields are refused by name."""
    fields = {}
    for name, value in body.items():
        if name in READ_ONLY:
            continue
        if name not in DESCRIPTIVE and name not in LIFECYCLE:
            raise BadRequest(f"'{name}' is not a field of a Catalog batch; writable fields: "
                             f"{', '.join(DESCRIPTIVE + LIFECYCLE)}", field=name)
        _check_field(name, value)
        fields[name] = value
    return fields


def _dataset_of(session: Session, scope: Scope, related: list[dict[str, Any]]) -> Dataset:
    ids = [item["id"] for item in related if item["type"] == "dataSet"]
    if len(ids) != 1:
        raise BadRequest("'relatedObjects' must name exactly one {\"type\": \"dataSet\", \"id\": ...}: every openseg "
                         "batch belongs to one dataset", field="relatedObjects")
    try:
        return get_dataset(session, scope, ids[0])
    except NotFound as exc:
        raise BadRequest(f"dataset '{ids[0]}' does not exist in this sandbox", field="relatedObjects") from exc


# -- writing -----------------------------------------------------------------------------------------------

#: An id a caller gives a batch (``POST /catalog/batches/{id}``): what fits the store and a path segment.
_BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def create_batch(session: Session, scope: Scope, body: dict[str, Any], *, batch_id: str | None = None) -> Batch:
    """``POST /catalog/batches`` (or ``/batches/{id}`` with ``batch_id``): a record of a batch processed
    elsewhere (``status`` is required).

    Raises:
        BadRequest: a bad field (named), a ``batch_id`` that is not 1 to 32 letters, digits, ``_`` or ``-``, or
            one that a batch already has.
    """
    if batch_id is not None:
        if not _BATCH_ID.match(batch_id):
            raise BadRequest(f"batch id '{batch_id[:40]}' must be 1 to 32 letters, digits, '_' or '-'",
                             field="BATCH_ID")
        if session.get(Batch, batch_id) is not None:
            raise BadRequest(f"batch '{batch_id}' already exists", field="BATCH_ID")
    fields = _checked(body)
    if "status" not in fields:
        raise BadRequest("'status' is required", field="status")
    dataset = _dataset_of(session, scope, fields.get("relatedObjects") or [])
    now = now_ms()
    batch = Batch(id=batch_id or new_hex_id(32), org_id=scope.org_id, sandbox_id=scope.sandbox_id, dataset_id=dataset.id,
                  status="", origin="catalog", created=now, updated=now)
    _write_record(batch, fields)
    session.add(batch)
    session.flush()
    return batch


def _write_record(batch: Batch, fields: dict[str, Any]) -> None:
    """Every field of a Catalog-created batch, from a full set (absent ones are cleared)."""
    batch.status = fields["status"]
    batch.records_read = batch.records_written = fields.get("recordCount", 0)
    batch.failed_records = fields.get("failedRecordCount", 0)
    batch.size = fields.get("size", 0)
    batch.started, batch.completed = fields.get("started"), fields.get("completed")
    batch.errors = fields.get("errors", [])
    batch.input_format = {**fields.get("inputFormat", {"format": "json"})}
    batch.tags = fields.get("tags", {})
    batch.extra = {k: fields[k] for k in ("externalId", "availableDates", "replay", "metrics", "relatedObjects")
                   if k in fields}
    batch.updated = now_ms()


def replace_batch(session: Session, scope: Scope, batch_id: str, body: dict[str, Any]) -> Batch:
    """``PUT /catalog/batches/{id}``: the batch becomes what ``body`` says (``status`` is required)."""
    batch = get_batch(session, scope, batch_id)
    fields = _checked(body)
    if "status" not in fields:
        raise BadRequest("'status' is required", field="status")
    if batch.origin == "catalog":
        if "relatedObjects" in fields:
            batch.dataset_id = _dataset_of(session, scope, fields["relatedObjects"]).id
        else:
            fields["relatedObjects"] = (batch.extra or {}).get("relatedObjects", [])
        _write_record(batch, fields)
        return batch
    _refuse_lifecycle_changes(batch, fields)
    _write_descriptive(batch, {name: fields.get(name) for name in DESCRIPTIVE})
    return batch


def patch_batch(session: Session, scope: Scope, batch_id: str, body: dict[str, Any]) -> Batch:
    """``PATCH /catalog/batches/{id}``: the fields in ``body`` change, the others stay."""
    batch = get_batch(session, scope, batch_id)
    fields = _checked(body)
    if batch.origin == "catalog":
        current = batch_object(batch)
        merged = {name: current[name] for name in DESCRIPTIVE + LIFECYCLE if name in current}
        merged.update(fields)
        if "relatedObjects" in fields:
            batch.dataset_id = _dataset_of(session, scope, fields["relatedObjects"]).id
        _write_record(batch, merged)
        return batch
    _refuse_lifecycle_changes(batch, fields)
    _write_descriptive(batch, {name: fields[name] for name in DESCRIPTIVE if name in fields})
    return batch


def _refuse_lifecycle_changes(batch: Batch, fields: dict[str, Any]) -> None:
    current = batch_object(batch)
    for name in LIFECYCLE:
        if name in fields and fields[name] != current.get(name):
            raise BadRequest(
                f"'{name}' of batch '{batch.id}' is set by openseg's {batch.origin}, not through Catalog (a batch "
                f"ends by POST /data/foundation/import/batches/{batch.id}?action=COMPLETE or ABORT); Catalog "
                f"changes its {', '.join(DESCRIPTIVE)}", field=name)


def _write_descriptive(batch: Batch, fields: dict[str, Any]) -> None:
    """``tags`` and the extra fields; a None value clears one."""
    extra = dict(batch.extra or {})
    for name, value in fields.items():
        if name == "tags":
            batch.tags = value or {}
        elif value is None:
            extra.pop(name, None)
        else:
            extra[name] = value
    batch.extra = extra
    batch.updated = now_ms()


def delete_batch(session: Session, scope: Scope, batch_id: str, *, data_lake: Lake, staging: Path,
                 home: Path) -> Batch:
    """Remove a batch, its files in the lake, its staged uploads and its kept failed records.

    Raises:
        BadRequest: the batch is being processed (or, for an export's batch, being written).
    """
    batch = get_batch(session, scope, batch_id)
    busy = batch.status == "processing" or (batch.origin == "export" and batch.status == "loading")
    if busy:
        raise BadRequest(f"batch '{batch_id}' is {batch.status}: delete it once it has ended", field="batchId")
    session.delete(batch)
    session.flush()
    dataset = session.get(Dataset, batch.dataset_id)
    if dataset is not None and dataset.last_batch_id == batch.id:
        previous = session.scalars(
            select(Batch).where(Batch.dataset_id == dataset.id, Batch.status.in_(("success", "failed")))
            .order_by(Batch.completed.desc(), Batch.id.desc())
        ).first()
        dataset.last_batch_id = previous.id if previous else None
        dataset.last_batch_status = previous.status if previous else None
    data_lake.remove(data_lake.location(batch.sandbox_id, batch.dataset_id, batch.id))
    lake.remove_tree(staging / batch.id)
    remove_failed_records(home, batch.sandbox_id, batch.id)
    return batch


def unique_values(session: Session, scope: Scope, field: str, *, status: str | None, dataset_id: str | None,
                  limit: int) -> list[str]:
    """``GET /batches/uniques/{FIELD}``: the distinct values of one batch field in the sandbox, sorted."""
    column = UNIQUE_FIELDS.get(field)
    if column is None:
        raise BadRequest(f"unique values are offered for {', '.join(UNIQUE_FIELDS)}; not for '{field}'", field="FIELD")
    query = select(column).distinct().where(Batch.org_id == scope.org_id, Batch.sandbox_id == scope.sandbox_id,
                                           column.is_not(None))
    if status:
        query = query.where(Batch.status == status)
    if dataset_id:
        query = query.where(Batch.dataset_id == dataset_id)
    return [str(value) for value in session.scalars(query.order_by(column).limit(limit))]


#: ``GET /lastBatches`` filters: query parameter -> the field of the answer it compares.
LAST_BATCH_FILTERS = ("lastBatchId", "lastBatchStatus", "lastSuccessfulBatchId", "lastFailedBatchId")


def last_batches(session: Session, scope: Scope, *, dataset_ids: list[str] | None, filters: dict[str, str],
                 start: int, limit: int) -> dict[str, dict[str, Any]]:
    """``GET /lastBatches``: per dataset (oldest first) with an ended batch, its last batch, last successful
    and last failed batch (Catalog's ``lastBatchesResponse``)."""
    query = select(Dataset).where(Dataset.org_id == scope.org_id, Dataset.sandbox_id == scope.sandbox_id,
                                  Dataset.last_batch_id.is_not(None))
    if dataset_ids is not None:
        query = query.where(Dataset.id.in_(dataset_ids))
    found: dict[str, dict[str, Any]] = {}
    for dataset in session.scalars(query.order_by(Dataset.created, Dataset.id)):
        last = session.get(Batch, dataset.last_batch_id)
        if last is None:
            continue
        entry: dict[str, Any] = {"lastBatchId": last.id, "lastBatchStatus": last.status}
        for status, key in (("success", "lastSuccessfulBatchId"), ("failed", "lastFailedBatchId")):
            newest = session.scalars(select(Batch.id).where(Batch.dataset_id == dataset.id, Batch.status == status)
                                     .order_by(Batch.completed.desc(), Batch.id.desc()).limit(1)).first()
            if newest is not None:
                entry[key] = newest
        entry.update({"imsOrg": dataset.org_id, "sandboxId": dataset.sandbox_id, "created": last.created,
                      "updated": last.updated})
        if all(entry.get(name) == value for name, value in filters.items()):
            found[dataset.id] = entry
    return dict(list(found.items())[start:start + limit])
