"""Running an export job: select members, project, write Parquet parts, publish batches atomically."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlglot import exp

from openseg.atomic_files import StagedDir
from openseg.catalog import lake
from openseg.catalog.service import record_batch_success
from openseg.clock import now_ms
from openseg.errors import OpensegError
from openseg.exports.projection import project
from openseg.exports.request import ExportRequest, SegmentFilter, validate_request
from openseg.profiles import policies
from openseg.profiles.service import ensure_store
from openseg.profiles.store import EVENTS_FILE, PROFILES_FILE, resolve_store
from openseg.scope import Scope
from openseg.segmentation import membership
from openseg.store.models import Batch, ExportJob, ProfileStore, WorkItem

if TYPE_CHECKING:
    from openseg.services import Services

log = logging.getLogger("openseg.exports")

#: Rows per Parquet file an export writes (``OPENSEG_EXPORT_FILE_ROWS``).
FILE_ROWS = int(os.environ.get("OPENSEG_EXPORT_FILE_ROWS", "1000000"))


class ExportCancelled(Exception):
    pass


@dataclass(frozen=True)
class Target:
    batch_id: str
    segments: tuple[SegmentFilter, ...]


def run_export(services: Services, item: WorkItem) -> None:
    """Worker handler for export jobs."""
    with services.db.session() as session:
        job = session.get(ExportJob, int(item.ref_id))
        if job is None or job.status in ("SUCCEEDED", "FAILED"):
            return
        if job.status == "CANCELLED":
            _abandon_batches(session, job, "aborted")
            return
        started = now_ms()
        job.status = "PROCESSING"
        job.metrics = {"totalTime": {"startTimeInMs": job.created}}
        job.updated = started
        scope = Scope(job.org_id, job.sandbox_id)
        try:
            request = validate_request(session, scope, job.request)
        except OpensegError as exc:
            _fail(job, f"the export request is no longer valid: {exc.detail}")
            _abandon_batches(session, job, "failed")
            return
        targets = _targets(job.destination, request)
        job_id = job.id
    try:
        metrics = _export(services, scope, job_id, request, targets)
    except ExportCancelled:
        with services.db.session() as session:
            job = session.get(ExportJob, job_id)
            assert job is not None
            _abandon_batches(session, job, "aborted")
    except Exception as exc:
        log.exception("export job %s failed", job_id)
        with services.db.session() as session:
            job = session.get(ExportJob, job_id)
            assert job is not None
            _fail(job, f"Error writing profiles to dataset '{request.dataset_id}': {type(exc).__name__}: {exc}")
            _abandon_batches(session, job, "failed")
    else:
        log.info("export job %s succeeded: %s", job_id, metrics)


def _targets(destination: dict[str, Any], request: ExportRequest) -> list[Target]:
    if "batches" in destination:
        return [Target(b["batchId"], (s,)) for b, s in zip(destination["batches"], request.segments, strict=True)]
    return [Target(destination["batchId"], request.segments)]


def _fail(job: ExportJob, message: str) -> None:
    now = now_ms()
    job.errors = [*(job.errors or []), {"code": "0090000009", "msg": message}]
    total = dict((job.metrics or {}).get("totalTime") or {"startTimeInMs": job.created})
    total.update(endTimeInMs=now, totalTimeInMs=now - total["startTimeInMs"])
    job.metrics = {**(job.metrics or {}), "totalTime": total}
    job.status = "FAILED"
    job.updated = now


def _abandon_batches(session: Any, job: ExportJob, status: str) -> None:
    for batch_id in _batch_ids(job.destination):
        batch = session.get(Batch, batch_id)
        if batch is not None and batch.status == "loading":
            batch.status = status
            batch.updated = batch.completed = now_ms()


def _batch_ids(destination: dict[str, Any]) -> list[str]:
    if "batches" in destination:
        return [b["batchId"] for b in destination["batches"]]
    return [destination["batchId"]]


def _check_cancel(services: Services, job_id: int) -> None:
    with services.db.session() as session:
        job = session.get(ExportJob, job_id)
        if job is None or job.status == "CANCELLED":
            raise ExportCancelled()


def _export(services: Services, scope: Scope, job_id: int, request: ExportRequest,
            targets: list[Target]) -> dict[str, Any]:
    with services.db.session() as session:
        policy = policies.get_policy(session, scope, request.merge_policy_id)
        session.expunge(policy)
        record = session.get(ProfileStore, policy.id)
        pointer = record.membership_path if record else None
    store = resolve_store(ensure_store(services, scope, policy))
    members = membership.store_for(services.settings.home, scope.sandbox_id, policy.id)
    state = members.state(pointer)
    export_start = now_ms()
    written: dict[str, list[tuple[str, int]]] = {}
    finals = {}
    with ExitStack() as discard_on_failure:
        staged = {}
        for target in targets:
            pending = discard_on_failure.enter_context(StagedDir(
                lake.batch_dir(services.settings.lake, scope.sandbox_id, request.dataset_id, target.batch_id)))
            table_reader = select_members(store, members, state, request, target.segments)
            written[target.batch_id] = write_parts(table_reader, pending.path, FILE_ROWS)
            staged[target.batch_id] = pending
            _check_cancel(services, job_id)
        export_end = now_ms()
        write_start = now_ms()
        for batch_id, pending in staged.items():
            pending.publish()
            finals[batch_id] = pending.final
    with services.db.session() as session:
        job = session.get(ExportJob, job_id)
        assert job is not None
        if job.status == "CANCELLED":
            for final in finals.values():
                lake.remove_tree(final)
            _abandon_batches(session, job, "aborted")
            return {}
        now = now_ms()
        # The dataset reflects the latest export: earlier export batches stop being read.
        for old in session.scalars(select(Batch).where(Batch.dataset_id == request.dataset_id,
                                                       Batch.origin == "export", Batch.status == "success")):
            old.status, old.updated = "replaced", now
        records = 0
        for batch_id, parts in written.items():
            batch = session.get(Batch, batch_id)
            assert batch is not None
            rows_written = sum(rows for _, rows in parts)
            records += rows_written
            batch.started = export_start
            record_batch_success(session, batch, finals[batch_id], parts, records_read=rows_written, now=now)
        write_end = now_ms()
        metrics = {
            "totalTime": {"startTimeInMs": job.created, "endTimeInMs": write_end,
                          "totalTimeInMs": write_end - job.created},
            "profileExportTime": {"startTimeInMs": export_start, "endTimeInMs": export_end,
                                  "totalTimeInMs": export_end - export_start},
            "aCPDatasetWriteTime": {"startTimeInMs": write_start, "endTimeInMs": write_end,
                                    "totalTimeInMs": write_end - write_start},
            "openseg:exportedProfiles": records,
        }
        job.metrics, job.status, job.updated = metrics, "SUCCEEDED", write_end
        return metrics


def select_members(store: Path, members: membership.MembershipStore, state: membership.State | None,
                   request: ExportRequest, segments: tuple[SegmentFilter, ...]) -> pa.RecordBatchReader:
    """The merged profiles the export writes for ``segments``, projected, with ``segmentMembership``,
    as a stream of record batches (in the store's ``_profile_id`` order).

    Membership comes from the membership store as AEP's ``segmentMembership.ups`` rows (views
    ``membership``: every segment, and ``chosen``: the filtered segments)."""
    profiles_path = str(store / PROFILES_FILE)
    events_path = str(store / EVENTS_FILE)
    schema = pq.read_schema(profiles_path)
    params: dict[str, Any] = {"profiles_path": profiles_path}
    conditions: list[str] = []
    if not request.empty_profiles:
        conditions.append("p._hasProfileRecord")
    if request.from_ingest is not None:
        params["from_ingest"] = request.from_ingest.replace(tzinfo=None)
        conditions.append("p._lastModifiedAt > $from_ingest")
    selection = ""
    if segments:
        alternatives = []
        for index, segment in enumerate(segments):
            if not segment.is_ups:
                continue  # imported audiences (AAM...) are not held by openseg: they select nobody
            params[f"seg{index}"] = segment.segment_id
            params[f"st{index}"] = list(segment.statuses)
            window = ""
            if request.qualified_from is not None:
                params["q_from"] = request.qualified_from
                window += " AND m.lastQualificationTime >= $q_from"
            if request.qualified_to is not None:
                params["q_to"] = request.qualified_to
                window += " AND m.lastQualificationTime <= $q_to"
            alternatives.append(f"(m.segment_id = $seg{index} AND list_contains($st{index}, m.status){window})")
        selection = f"SELECT DISTINCT m._profile_id FROM chosen m WHERE {' OR '.join(alternatives) or 'false'}"
    # Membership maps are built only for the profiles that are exported.
    members_of = "WHERE _profile_id IN (SELECT _profile_id FROM sel)" if selection else ""
    join = "JOIN sel ON sel._profile_id = p._profile_id" if selection else ""
    items = project(schema, request.fields, "p", always=("identityMap",))
    projection = ", ".join(item.sql("duckdb") for item in items)
    events_join = ""
    events_item = ""
    if request.event_fields is not None:
        event_schema = pq.read_schema(events_path)
        event_items = project(event_schema, request.event_fields, "e", always=("_id", "timestamp"))
        packed = exp.Struct(expressions=[exp.PropertyEQ(this=exp.to_identifier(i.alias_or_name, quoted=True),
                                                        expression=i.unalias() if isinstance(i, exp.Alias) else i)
                                         for i in event_items]).sql("duckdb")
        event_filter = ["e._profile_id IN (SELECT _profile_id FROM sel)"] if selection else []
        if request.events_from_ingest is not None:
            params["events_from"] = request.events_from_ingest.replace(tzinfo=None)
            event_filter.append("e._ingestTime > $events_from")
        where_events = f"WHERE {' AND '.join(event_filter)}" if event_filter else ""
        events_join = (f"LEFT JOIN (SELECT e._profile_id, list({packed} ORDER BY e.timestamp) AS eventList "
                       f"FROM read_parquet($events_path) e {where_events} GROUP BY e._profile_id) ev "
                       "ON ev._profile_id = p._profile_id")
        events_item = ", coalesce(ev.eventList, []) AS eventList"
        params["events_path"] = events_path
    where = " AND ".join(conditions) or "true"
    sql = f"""
        WITH sel AS ({selection or "SELECT NULL::VARCHAR AS _profile_id WHERE false"}),
        mm AS (
            SELECT _profile_id, map_from_entries(list(struct_pack(
                key := segment_id,
                value := struct_pack(status := status,
                                     lastQualificationTime := strftime(lastQualificationTime AT TIME ZONE 'UTC',
                                                                       '%Y-%m-%dT%H:%M:%S.%gZ')))
                ORDER BY segment_id)) AS ups
            FROM membership {members_of} GROUP BY _profile_id
        )
        SELECT {projection},
               CASE WHEN mm.ups IS NULL THEN NULL ELSE MAP {{'ups': mm.ups}} END AS segmentMembership
               {events_item}
        FROM read_parquet($profiles_path) p
        {join}
        LEFT JOIN mm ON mm._profile_id = p._profile_id
        {events_join}
        WHERE {where}
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    members.register_long_form(con, state, "membership")
    members.register_long_form(con, state, "chosen", [s.segment_id for s in segments if s.is_ups])
    reader = con.sql(sql, params=params).to_arrow_reader(batch_size=100_000)
    return _closing(reader, con)


def _closing(reader: pa.RecordBatchReader, con: duckdb.DuckDBPyConnection) -> pa.RecordBatchReader:
    """A reader that closes its DuckDB connection once drained."""

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        finally:
            con.close()

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def write_parts(reader: pa.RecordBatchReader, out_dir: Path, rows_per_file: int) -> list[tuple[str, int]]:
    """Stream into Parquet files of at most ``rows_per_file`` rows; an empty export still writes one
    zero-row file with the export's schema, so readers see an empty table."""
    parts: list[tuple[str, int]] = []
    writer: pq.ParquetWriter | None = None
    rows_in_file = 0

    def roll() -> pq.ParquetWriter:
        parts.append((lake.part_name(len(parts)), 0))
        return pq.ParquetWriter(out_dir / parts[-1][0], reader.schema, compression="zstd")

    try:
        for batch in reader:
            offset = 0
            while offset < batch.num_rows:
                if writer is None or rows_in_file >= rows_per_file:
                    if writer is not None:
                        writer.close()
                    writer, rows_in_file = roll(), 0
                take = min(rows_per_file - rows_in_file, batch.num_rows - offset)
                writer.write_batch(batch.slice(offset, take))
                rows_in_file += take
                parts[-1] = (parts[-1][0], rows_in_file)
                offset += take
        if writer is None:
            writer = roll()
            writer.write_table(reader.schema.empty_table())
    finally:
        if writer is not None:
            writer.close()
    return parts
