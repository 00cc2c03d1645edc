"""The worker's side of batch ingestion: a completed batch becomes Parquet in the lake, or fails whole."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from openseg import failures
from openseg.catalog import lake
from openseg.catalog.failed_records import failed_dir, keep_failed_records
from openseg.catalog.ingestion import IngestResult, ingest_files
from openseg.catalog.service import dataset_kind, record_batch_success, record_last_batch, staged_files
from openseg.clock import now_ms
from openseg.store.models import Batch, Dataset, WorkItem

if TYPE_CHECKING:
    from openseg.container import Services

INGEST_BATCH = "ingest_batch"


def process_batch(services: Services, item: WorkItem) -> None:
    """Validate and write one completed batch. Idempotent: a re-run after a crash starts over cleanly."""
    settings = services.settings
    with services.db.session() as session:
        batch = session.get(Batch, item.ref_id)
        if batch is None or batch.status != "processing":
            return
        dataset = session.get(Dataset, batch.dataset_id)
        assert dataset is not None
        files = [(f.name, Path(f.path)) for f in staged_files(session, batch.id)]
        fmt = batch.input_format.get("format", "json")
        kind = dataset_kind(dataset)
        sandbox_id, dataset_id, batch_id = batch.sandbox_id, dataset.id, batch.id
        batch.started = now_ms()

    staged = settings.data_lake.stage(settings.data_lake.location(sandbox_id, dataset_id, batch_id), settings.staging)
    try:
        result = ingest_files(files, fmt, kind, staged.path)
    except Exception as exc:  # noqa: BLE001 - a bug or an I/O failure: the batch fails visibly instead of hanging
        result = IngestResult()
        if failures.is_disk_full(exc):
            result.error_count += 1
            result.errors.append({"code": failures.DISK_FULL, "description": failures.DISK_FULL_MESSAGE})
        else:
            result.add_file_error("(batch)", f"internal error while processing: {failures.describe(exc)}")
    now = now_ms()
    if not result.ok:
        staged.discard()
        try:
            keep_failed_records(files, fmt, result, failed_dir(settings.home, sandbox_id, batch_id))
        except (OSError, ValueError) as exc:
            result.add_file_error("(batch)", f"its failed records could not be kept: {type(exc).__name__}: {exc}")
        with services.db.session() as session:
            batch = session.get(Batch, batch_id)
            assert batch is not None
            batch.status = "failed"
            batch.errors = result.errors
            batch.records_read = result.records_read
            batch.records_written = 0
            batch.failed_records = result.failed_record_count
            batch.updated = batch.completed = now
            record_last_batch(session, batch)
        lake.remove_tree(settings.staging / batch_id)
        return

    staged.publish()
    with services.db.session() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        record_batch_success(session, batch, staged.final, result.parts, records_read=result.records_read, now=now)
    lake.remove_tree(settings.staging / batch_id)
    for hook in services.after_batch:
        hook(services, batch_id)
