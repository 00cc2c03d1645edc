"""The lake side of streaming ingestion (``streaming.ports.LakeSink``): flushed messages become ordinary
batches of their dataset, validated and typed by the batch ingestion itself, and the flusher's offset
moves in the same metadata transaction that records them."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from openseg.atomic_files import locked
from openseg.catalog import lake
from openseg.catalog.ingestion import MAX_REPORTED_ERRORS, IngestResult, ingest_files
from openseg.catalog.service import record_batch_success, record_last_batch
from openseg.catalog.validation import RecordError
from openseg.clock import now_ms
from openseg.lake_files import StagedParts
from openseg.store.models import Batch, Dataset, ProfileStore, StreamOffset
from openseg.store.repositories import SqlAlchemyProfileSourceRepository
from openseg.streaming.model import STREAM_SEQ, STREAMED_ORIGIN, StreamBatch

if TYPE_CHECKING:
    from openseg.container import Services

log = logging.getLogger("openseg.streaming")

#: The file name a streamed batch's records carry in its errors (``record`` is then the log position).
STREAM_FILE = "stream"


class CatalogLakeSink:
    """Writes flushed batches into the lake and the catalog.

    Args:
        services: The container (settings for the lake, the metadata store, the ``after_batch`` hooks that
            refresh the profile store).
        lock_path: The file whose lock makes one flusher per log.
    """

    def __init__(self, services: Services, lock_path: Path, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.services = services
        self.lock_path = lock_path
        self.monotonic = monotonic
        #: Per sandbox, a flushed batch whose build is not requested yet, and when a build was last requested.
        self._waiting: dict[str, str] = {}
        self._requested: dict[str, float] = {}

    def request_builds(self, *, now: bool = False) -> None:
        # A build of 1M profiles rewrites the store's files: streamed batches ask for one at most every
        # OPENSEG_STREAM_BUILD_SECONDS, and the overlay shows what they hold meanwhile.
        interval = self.services.settings.stream_build_seconds
        for sandbox_id, batch_id in list(self._waiting.items()):
            if now or self.monotonic() >= self._requested.get(sandbox_id, float("-inf")) + interval:
                for hook in self.services.after_batch:
                    hook(self.services, batch_id)
                self._requested[sandbox_id] = self.monotonic()
                del self._waiting[sandbox_id]

    def exclusive(self) -> AbstractContextManager[bool]:
        return locked(self.lock_path, wait=False)

    def unbuilt(self) -> dict[str, int]:
        floors: dict[str, int] = {}
        with self.services.db.session() as session:
            for store in session.scalars(select(ProfileStore).where(ProfileStore.path.is_not(None))):
                watermark = store.stream_watermark
                floors[store.sandbox_id] = min(floors.get(store.sandbox_id, watermark), watermark)
            sources = SqlAlchemyProfileSourceRepository(session)
            return {dataset_id: floor for sandbox_id, floor in floors.items()
                    for dataset_id in sources.source_datasets(sandbox_id)}

    def offset(self, consumer: str) -> int:
        with self.services.db.session() as session:
            row = session.get(StreamOffset, consumer)
            return 0 if row is None else row.seq

    def _ingest(self, batch: StreamBatch) -> tuple[StagedParts | None, IngestResult]:
        """The valid records of ``batch`` through batch ingestion, staged beside their lake folder."""
        settings = self.services.settings
        staging = settings.staging / batch.batch_id
        staging.mkdir(parents=True, exist_ok=True)
        source = staging / f"{STREAM_FILE}.json"
        with source.open("w", encoding="utf-8") as handle:
            for record in batch.records:
                handle.write(json.dumps(record, separators=(",", ":")))
                handle.write("\n")
        staged = settings.data_lake.stage(
            settings.data_lake.location(batch.sandbox_id, batch.dataset_id, batch.batch_id), settings.staging)
        try:
            result = ingest_files([(STREAM_FILE, source)], "json", batch.kind, staged.path)
        except Exception as exc:  # noqa: BLE001 - the batch fails visibly, the offset still moves past it
            result = IngestResult()
            result.add_file_error(STREAM_FILE, f"internal error while processing: {type(exc).__name__}: {exc}")
        if not result.ok:
            staged.discard()
            return None, result
        return staged, result

    @staticmethod
    def _failures(batch: StreamBatch) -> IngestResult:
        result = IngestResult(records_read=len(batch.failures))
        for seq, problems in batch.failures:
            for field, reason in problems:
                result.add_record_error(RecordError(STREAM_FILE, seq, field, reason))
        return result

    def write(self, consumer: str, batches: Sequence[StreamBatch], through: int) -> list[str]:
        settings = self.services.settings
        written: list[tuple[StreamBatch, StagedParts | None, IngestResult]] = []
        for batch in batches:
            if batch.records:
                staged, result = self._ingest(batch)
            else:
                staged, result = None, self._failures(batch)
            written.append((batch, staged, result))
        # The files go into place first (a retry after a crash replaces them: same batch id, same folder),
        # then one transaction records every batch and the new offset.
        for _, staged, _ in written:
            if staged is not None:
                staged.publish()
        succeeded: list[str] = []
        now = now_ms()
        with self.services.db.session() as session:
            for batch, staged, result in written:
                if session.get(Dataset, batch.dataset_id) is None:
                    log.warning("dataset %s was deleted: %d streamed record(s) dropped", batch.dataset_id,
                                len(batch.records) + len(batch.failures))
                    continue
                row = Batch(id=batch.batch_id, org_id=batch.org_id, sandbox_id=batch.sandbox_id,
                            dataset_id=batch.dataset_id, status="processing",
                            input_format={"format": "json", STREAM_SEQ: {"first": batch.first_seq,
                                                                         "last": batch.last_seq}},
                            origin=STREAMED_ORIGIN, created=now, updated=now, started=now)
                session.add(row)
                session.flush()
                if staged is not None:
                    record_batch_success(session, row, staged.final, result.parts, records_read=result.records_read,
                                         now=now)
                    succeeded.append(batch.batch_id)
                else:
                    row.status, row.errors = "failed", result.errors[:MAX_REPORTED_ERRORS]
                    row.records_read, row.records_written = result.records_read, 0
                    row.completed = now
                    record_last_batch(session, row)
            offset = session.get(StreamOffset, consumer)
            if offset is None:
                session.add(StreamOffset(consumer=consumer, seq=through, updated=now))
            else:
                offset.seq, offset.updated = through, now
        for batch, _, _ in written:
            lake.remove_tree(settings.staging / batch.batch_id)
        sandboxes = {batch.batch_id: batch.sandbox_id for batch, _, _ in written}
        for batch_id in succeeded:
            self._waiting[sandboxes[batch_id]] = batch_id
        self.request_builds()
        return succeeded
