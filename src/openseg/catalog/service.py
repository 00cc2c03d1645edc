"""Catalog service: datasets, batches and their files, scoped to one org and sandbox."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openseg import lake_files
from openseg.catalog import lake
from openseg.catalog.failed_records import remove_failed_records
from openseg.catalog.validation import EVENT, PROFILE, UNION
from openseg.clock import new_hex_id, now_ms
from openseg.errors import BadRequest, NotFound
from openseg.json_patch import apply_patch
from openseg.lake_files import Lake
from openseg.request_fields import optional_object, optional_string

# Scope is re-exported until profiles/service.py, profiles/entities.py, scheduling/scheduler.py,
# scheduling/schedules.py and segmentation/job_execution.py move over to openseg.scope.
from openseg.scope import Scope as Scope
from openseg.store.models import Batch, DataFile, Dataset, StagedFile

PROFILE_SCHEMA = "https://ns.adobe.com/xdm/context/profile"
EVENT_SCHEMA = "https://ns.adobe.com/xdm/context/experienceevent"
UNION_SCHEMA = "https://ns.adobe.com/xdm/context/profile__union"
FORMATS = ("json", "parquet")


def dataset_kind(dataset: Dataset) -> str:
    """``event`` for ExperienceEvent datasets, ``union`` for export targets, else ``profile``."""
    schema_id = str((dataset.schema_ref or {}).get("id", "")).lower()
    if schema_id.endswith("__union"):
        return UNION
    if "experienceevent" in schema_id:
        return EVENT
    return PROFILE


def is_profile_enabled(dataset: Dataset) -> bool:
    tags = dataset.tags or {}
    values = tags.get("unifiedProfile") or []
    return any(str(v).replace(" ", "").lower() == "enabled:true" for v in values)


# -- datasets ---------------------------------------------------------------------------------------------

#: Fields a JSON Patch of a dataset may touch (``PATCH /dataSets/{id}`` with an array body).
DATASET_PATCHABLE = ("name", "description", "tags", "fileDescription")
#: Fields of a dataset's answer that a client may send back in a PUT: openseg sets them.
_DATASET_READ_ONLY = {"imsOrg", "sandboxId", "created", "updated", "createdUser", "createdClient", "updatedUser",
                      "version", "lastBatchId", "lastBatchStatus", "id"}


def _dataset_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The columns of a dataset from a full body (a create or a PUT); 400 naming the first bad field."""
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("'name' is required and must be a non-empty string", field="name")
    schema_ref = body.get("schemaRef")
    if not isinstance(schema_ref, dict) or not isinstance(schema_ref.get("id"), str) or not schema_ref["id"]:
        raise BadRequest("'schemaRef.id' is required (for example https://ns.adobe.com/xdm/context/profile)",
                         field="schemaRef.id")
    tags = body.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, list) for v in tags.values()):
        raise BadRequest("'tags' must be an object of tag name -> list of strings", field="tags")
    known = {"name", "description", "schemaRef", "tags", "fileDescription", "aspect"}
    return {
        "name": name.strip(), "description": optional_string(body, "description"), "schema_ref": schema_ref,
        "tags": tags, "file_description": optional_object(body, "fileDescription"),
        "aspect": optional_string(body, "aspect"),
        "extra": {k: v for k, v in body.items() if k not in known and k not in _DATASET_READ_ONLY},
    }


def create_dataset(session: Session, scope: Scope, body: dict[str, Any]) -> Dataset:
    now = now_ms()
    dataset = Dataset(id=new_hex_id(24), org_id=scope.org_id, sandbox_id=scope.sandbox_id, created=now, updated=now,
                      **_dataset_fields(body))
    session.add(dataset)
    session.flush()
    return dataset


def replace_dataset(session: Session, scope: Scope, dataset_id: str, body: dict[str, Any]) -> Dataset:
    """``PUT /dataSets/{id}``: the dataset becomes ``body`` (a field left out is cleared; the schema stays)."""
    dataset = get_dataset(session, scope, dataset_id)
    fields = _dataset_fields({"schemaRef": dataset.schema_ref, **body})
    if fields["schema_ref"] != dataset.schema_ref:
        raise BadRequest("'schemaRef' of a dataset cannot change", field="schemaRef")
    for column, value in fields.items():
        setattr(dataset, column, value)
    dataset.updated = now_ms()
    return dataset


def get_dataset(session: Session, scope: Scope, dataset_id: str) -> Dataset:
    return scope.get(session, Dataset, dataset_id, "dataset")


def list_datasets(session: Session, scope: Scope, *, limit: int, start: int, order_by: str | None,
                  name: str | None = None) -> list[Dataset]:
    query = select(Dataset).where(Dataset.org_id == scope.org_id, Dataset.sandbox_id == scope.sandbox_id)
    if name:
        query = query.where(Dataset.name == name)
    query = query.order_by(*_order(Dataset, order_by, default="created"))
    return list(session.scalars(query.offset(start).limit(limit)))


def update_dataset(session: Session, scope: Scope, dataset_id: str, body: dict[str, Any]) -> Dataset:
    dataset = get_dataset(session, scope, dataset_id)
    if "name" in body:
        if not isinstance(body["name"], str) or not body["name"].strip():
            raise BadRequest("'name' must be a non-empty string", field="name")
        dataset.name = body["name"].strip()
    if "description" in body:
        dataset.description = optional_string(body, "description")
    if "tags" in body:
        if not isinstance(body["tags"], dict):
            raise BadRequest("'tags' must be an object of tag name -> list of strings", field="tags")
        dataset.tags = body["tags"]
    if "fileDescription" in body:
        dataset.file_description = optional_object(body, "fileDescription")
    if "schemaRef" in body and body["schemaRef"] != dataset.schema_ref:
        raise BadRequest("'schemaRef' of a dataset cannot change", field="schemaRef")
    dataset.updated = now_ms()
    return dataset


def patch_dataset(session: Session, scope: Scope, dataset_id: str, operations: list[Any]) -> Dataset:
    """``PATCH /dataSets/{id}`` with a JSON Patch (RFC 6902) over the dataset's writable fields."""
    dataset = get_dataset(session, scope, dataset_id)
    current: dict[str, Any] = {"name": dataset.name, "tags": dict(dataset.tags or {}),
                               "fileDescription": dict(dataset.file_description or {})}
    if dataset.description is not None:
        current["description"] = dataset.description
    patched = apply_patch(current, operations, allowed=tuple(f"/{k}" for k in DATASET_PATCHABLE))
    return update_dataset(session, scope, dataset_id, {
        "name": patched.get("name"), "description": patched.get("description"), "tags": patched.get("tags") or {},
        "fileDescription": patched.get("fileDescription"),
    })


def merge_dataset(session: Session, scope: Scope, dataset_id: str, body: dict[str, Any]) -> Dataset:
    """``PATCH /v2/dataSets/{id}``: ``body`` merged in depth (nested objects are merged, missing ones created,
    a ``null`` removes a member, as in a JSON merge patch); the schema and the data behaviour stay."""
    dataset = get_dataset(session, scope, dataset_id)
    if "schemaRef" in body and body["schemaRef"] != dataset.schema_ref:
        raise BadRequest("'schemaRef' of a dataset cannot change", field="schemaRef")
    classification = optional_object(body, "classification")
    behaviour = "time-series" if dataset_kind(dataset) == EVENT else "record"
    if classification.get("dataBehavior", behaviour) != behaviour:
        raise BadRequest(f"'classification.dataBehavior' follows the dataset's schema: it is '{behaviour}'",
                         field="classification.dataBehavior")
    current: dict[str, Any] = {**(dataset.extra or {}), "name": dataset.name, "tags": dict(dataset.tags or {}),
                               "fileDescription": dict(dataset.file_description or {})}
    if dataset.description is not None:
        current["description"] = dataset.description
    merged = _merged(current, {k: v for k, v in body.items() if k != "schemaRef" and k not in _DATASET_READ_ONLY})
    fields = _dataset_fields({**merged, "schemaRef": dataset.schema_ref, "aspect": dataset.aspect})
    for column, value in fields.items():
        setattr(dataset, column, value)
    dataset.updated = now_ms()
    return dataset


def _merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def delete_dataset(session: Session, scope: Scope, dataset_id: str, data_lake: Lake, *,
                   home: Path | None = None) -> None:
    """Remove a dataset, its batches and its lake folder (and, given ``home``, its batches' failed records)."""
    dataset = get_dataset(session, scope, dataset_id)
    for batch in session.scalars(select(Batch).where(Batch.dataset_id == dataset.id)):
        if home is not None:
            remove_failed_records(home, batch.sandbox_id, batch.id)
        session.delete(batch)
    session.delete(dataset)
    data_lake.remove(data_lake.location(scope.sandbox_id, dataset.id))


def _order(model: Any, order_by: str | None, default: str) -> list[Any]:
    """Catalog ``orderBy``: ``created``, ``desc:created``, ``asc:updated`` ..."""
    direction, _, column = (order_by or f"asc:{default}").rpartition(":")
    attribute = getattr(model, column, None)
    if attribute is None or column not in ("created", "updated", "name", "id", "status"):
        raise BadRequest(f"cannot order by '{column}'", field="orderBy")
    ordered = attribute.desc() if direction.lower() == "desc" else attribute.asc()
    return [ordered, model.id.asc()]


# -- batches ----------------------------------------------------------------------------------------------

def create_batch(session: Session, scope: Scope, body: dict[str, Any]) -> Batch:
    dataset_id = body.get("datasetId")
    if not isinstance(dataset_id, str) or not dataset_id:
        raise BadRequest("'datasetId' is required", field="datasetId")
    try:
        dataset = get_dataset(session, scope, dataset_id)
    except NotFound as exc:
        raise BadRequest(f"dataset '{dataset_id}' does not exist in this sandbox", field="datasetId") from exc
    if dataset_kind(dataset) == UNION:
        raise BadRequest("a profile__union dataset is written by export jobs, not by ingestion", field="datasetId")
    input_format = body.get("inputFormat") or {"format": "json"}
    fmt = str(input_format.get("format", "")).lower() if isinstance(input_format, dict) else ""
    if fmt not in FORMATS:
        raise BadRequest(f"'inputFormat.format' must be one of {', '.join(FORMATS)}", field="inputFormat.format")
    tags = body.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, list) for v in tags.values()):
        raise BadRequest("'tags' must be an object of tag name -> list of strings", field="tags")
    extra: dict[str, Any] = {}
    if body.get("externalId") is not None:
        extra["externalId"] = optional_string(body, "externalId")
    if body.get("replay") is not None:
        extra["replay"] = optional_object(body, "replay")
    now = now_ms()
    batch = Batch(
        id=new_hex_id(32), org_id=scope.org_id, sandbox_id=scope.sandbox_id, dataset_id=dataset.id,
        status="loading", input_format={"format": fmt}, origin="ingestion", tags=tags, extra=extra, created=now,
        updated=now,
    )
    session.add(batch)
    session.flush()
    return batch


def get_batch(session: Session, scope: Scope, batch_id: str) -> Batch:
    return scope.get(session, Batch, batch_id, "batch")


def list_batches(session: Session, scope: Scope, *, dataset_id: str | None, status: str | None, limit: int,
                 start: int, order_by: str | None) -> list[Batch]:
    query = select(Batch).where(Batch.org_id == scope.org_id, Batch.sandbox_id == scope.sandbox_id)
    if dataset_id:
        query = query.where(Batch.dataset_id == dataset_id)
    if status:
        query = query.where(Batch.status == status)
    query = query.order_by(*_order(Batch, order_by, default="created"))
    return list(session.scalars(query.offset(start).limit(limit)))


#: The longest file name (UTF-8 bytes) a batch takes. File systems allow 255; the six bytes short of that
#: made room for the upload's staging name ``.{name}.part``, which ``atomic_files`` no longer needs (it
#: shortens a staging name that would be too long), and stay so that the limit clients see is unchanged.
MAX_FILE_NAME_BYTES = 249


def stage_file_target(staging: Path, batch_id: str, file_name: str) -> Path:
    if not file_name or "/" in file_name or "\\" in file_name or file_name.startswith(".") or "\x00" in file_name:
        raise BadRequest(f"invalid file name '{file_name}'", field="fileName")
    if len(file_name.encode("utf-8")) > MAX_FILE_NAME_BYTES:
        raise BadRequest(f"the file name is {len(file_name.encode('utf-8'))} bytes long; at most "
                         f"{MAX_FILE_NAME_BYTES} bytes (UTF-8) are allowed", field="fileName")
    return staging / batch_id / file_name


def check_upload(session: Session, scope: Scope, batch_id: str, dataset_id: str) -> Batch:
    batch = get_batch(session, scope, batch_id)
    if batch.dataset_id != dataset_id:
        raise BadRequest(
            f"batch '{batch_id}' belongs to dataset '{batch.dataset_id}', not '{dataset_id}'", field="datasetId"
        )
    if batch.origin != "ingestion":
        raise BadRequest(f"batch '{batch_id}' was created by {batch.origin}, not by the batch ingestion API: "
                         "files cannot be uploaded to it", field="batchId")
    if batch.status != "loading":
        raise BadRequest(f"batch '{batch_id}' is {batch.status}: files can only be uploaded while it is loading",
                         field="batchId")
    return batch


def record_upload(session: Session, batch: Batch, name: str, path: Path, length: int) -> None:
    existing = session.scalars(
        select(StagedFile).where(StagedFile.batch_id == batch.id, StagedFile.name == name)
    ).first()
    if existing is None:
        session.add(StagedFile(batch_id=batch.id, name=name, path=str(path), length=length, created=now_ms()))
    else:  # re-uploading a file replaces it, as AEP does
        existing.length = length
    session.flush()
    batch.size = session.scalar(select(func.coalesce(func.sum(StagedFile.length), 0))
                                .where(StagedFile.batch_id == batch.id))
    batch.updated = now_ms()


def staged_file(session: Session, batch_id: str, name: str) -> StagedFile | None:
    return session.scalars(select(StagedFile).where(StagedFile.batch_id == batch_id, StagedFile.name == name)).first()


def complete_batch(session: Session, scope: Scope, batch_id: str, unfinished: Sequence[str] = ()) -> Batch:
    """Mark a loading batch ``processing``; ``unfinished`` names its large files that were never completed."""
    batch = _ingestion_batch(session, scope, batch_id)
    if batch.status != "loading":
        raise BadRequest(f"batch '{batch_id}' is already {batch.status}; only a loading batch can be completed",
                         field="action")
    if unfinished:
        raise BadRequest(f"batch '{batch_id}' has large files that were initialized but not completed: "
                         f"{', '.join(sorted(unfinished))}; complete each (POST .../files/{{name}}?action=COMPLETE) "
                         "before completing the batch", field="action")
    files, size = session.execute(
        select(func.count(), func.coalesce(func.sum(StagedFile.length), 0)).where(StagedFile.batch_id == batch.id)
    ).one()
    if not files:
        raise BadRequest(f"batch '{batch_id}' has no files; upload at least one before COMPLETE", field="action")
    batch.size = int(size)
    batch.status = "processing"
    batch.updated = now_ms()
    return batch


def _ingestion_batch(session: Session, scope: Scope, batch_id: str) -> Batch:
    batch = get_batch(session, scope, batch_id)
    if batch.origin != "ingestion":
        raise BadRequest(f"batch '{batch_id}' was created by {batch.origin}, not by the batch ingestion API: "
                         "its status is not changed through /data/foundation/import", field="batchId")
    return batch


def abort_batch(session: Session, scope: Scope, batch_id: str, staging: Path) -> Batch:
    batch = _ingestion_batch(session, scope, batch_id)
    if batch.status != "loading":
        raise BadRequest(f"batch '{batch_id}' is {batch.status}; only a loading batch can be aborted",
                         field="action")
    batch.status = "aborted"
    batch.updated = batch.completed = now_ms()
    lake.remove_tree(staging / batch.id)
    return batch


def record_batch_success(session: Session, batch: Batch, directory: str, parts: list[tuple[str, int]], *,
                         records_read: int, now: int) -> None:
    """Mark a batch whose Parquet parts are published successful: ingestion and exports both end here.

    Args:
        session: The metadata session the batch belongs to.
        batch: The batch.
        directory: Its published folder's location in the lake (a path, or an object store URI).
        parts: The file name and rows of each Parquet part in ``directory``, in order; each becomes a data file.
        records_read: The records read from its input (for an export, the rows written).
        now: The completion time (ms since the epoch).
    """
    written = 0
    for name, rows in parts:
        location = f"{directory.rstrip('/')}/{name}"
        length, _ = lake_files.stat(location)
        written += length
        session.add(DataFile(
            id=f"{batch.id}-{name.removeprefix('part-').removesuffix('.parquet')}", batch_id=batch.id,
            dataset_id=batch.dataset_id, sandbox_id=batch.sandbox_id, org_id=batch.org_id, name=name,
            path=location, length=length, records=rows, created=now,
        ))
    batch.status, batch.errors, batch.failed_records = "success", [], 0
    if batch.size is None:  # an export's batch: the bytes it wrote (an ingested one: the bytes uploaded)
        batch.size = written
    batch.records_read, batch.records_written = records_read, sum(rows for _, rows in parts)
    batch.updated = batch.completed = now
    record_last_batch(session, batch)


def record_last_batch(session: Session, batch: Batch) -> None:
    """Show a batch that has just ended as its dataset's ``lastBatchId`` and ``lastBatchStatus``."""
    dataset = session.get(Dataset, batch.dataset_id)
    if dataset is not None:
        dataset.last_batch_id, dataset.last_batch_status, dataset.updated = batch.id, batch.status, batch.updated


def staged_files(session: Session, batch_id: str) -> list[StagedFile]:
    return list(session.scalars(select(StagedFile).where(StagedFile.batch_id == batch_id).order_by(StagedFile.id)))


def batch_files(session: Session, batch_id: str) -> list[DataFile]:
    return list(session.scalars(select(DataFile).where(DataFile.batch_id == batch_id).order_by(DataFile.id)))


def get_data_file(session: Session, scope: Scope, file_id: str) -> DataFile:
    return scope.get(session, DataFile, file_id, "dataSetFile")


def successful_files(session: Session, sandbox_id: str, dataset_id: str) -> list[DataFile]:
    """Every Parquet file of the dataset's successful batches, oldest first."""
    query = (
        select(DataFile)
        .join(Batch, Batch.id == DataFile.batch_id)
        .where(DataFile.sandbox_id == sandbox_id, DataFile.dataset_id == dataset_id, Batch.status == "success")
        .order_by(Batch.completed, DataFile.id)
    )
    return list(session.scalars(query))
