"""Running an export job: the engine selects, projects and writes the Parquet parts; batches are published
atomically."""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
from sqlglot import exp

from openseg import failures
from openseg import job_lifecycle as lifecycle
from openseg.catalog import lake
from openseg.clock import now_ms
from openseg.errors import OpensegError
from openseg.exports.model import ExportJob
from openseg.exports.ports import ExportServices, ExportsUnitOfWork
from openseg.exports.request import ExportRequest, SegmentFilter, validate
from openseg.exports.selection import select_members
from openseg.profiles.ports import QueuedWork
from openseg.profiles.service import ensure_store
from openseg.profiles.store import resolve_store
from openseg.scope import Scope, in_scope
from openseg.segmentation import membership

if TYPE_CHECKING:
    from openseg.engines.base import Workspace

log = logging.getLogger("openseg.exports")

#: Rows per Parquet file an export writes (``OPENSEG_EXPORT_FILE_ROWS``).
FILE_ROWS = int(os.environ.get("OPENSEG_EXPORT_FILE_ROWS", "1000000"))


@dataclass(frozen=True)
class Target:
    batch_id: str
    segments: tuple[SegmentFilter, ...]


def run_export(services: ExportServices, item: QueuedWork) -> None:
    """Worker handler for export jobs."""
    with services.uow() as uow:
        job = uow.export_jobs.get(int(item.ref_id))
        if job is None or job.status in ("SUCCEEDED", "FAILED", "DELETED"):  # DELETED: see exports.jobs.DELETED
            return
        if job.status == "CANCELLED":
            _abandon_batches(uow, job, "aborted")
            uow.commit()
            return
        lifecycle.start(job, since=job.created)
        scope = Scope(job.org_id, job.sandbox_id)
        try:
            request = validate(uow, scope, job.request)
        except OpensegError as exc:
            _fail(job, f"the export request is no longer valid: {exc.detail}")
            _abandon_batches(uow, job, "failed")
            uow.export_jobs.update(job)
            uow.commit()
            return
        targets = _targets(job.destination, request)
        job_id = job.id
        uow.export_jobs.update(job)
        uow.commit()
    try:
        metrics = _export(services, scope, job_id, request, targets)
    except lifecycle.Cancelled:
        with services.uow() as uow:
            job = uow.export_jobs.get(job_id)
            assert job is not None
            _abandon_batches(uow, job, "aborted")
            uow.commit()
    except Exception as exc:
        log.exception("export job %s failed", job_id)
        with services.uow() as uow:
            job = uow.export_jobs.get(job_id)
            assert job is not None
            reason = failures.describe(exc, services.settings.data_lake.root)
            _fail(job, f"Error writing profiles to dataset '{request.dataset_id}': {reason}")
            _abandon_batches(uow, job, "failed")
            uow.export_jobs.update(job)
            uow.commit()
    else:
        log.info("export job %s succeeded: %s", job_id, metrics)


def _targets(destination: dict[str, Any], request: ExportRequest) -> list[Target]:
    if "batches" in destination:
        return [Target(b["batchId"], (s,)) for b, s in zip(destination["batches"], request.segments, strict=True)]
    return [Target(destination["batchId"], request.segments)]


def _fail(job: ExportJob, message: str) -> None:
    lifecycle.fail(job, lifecycle.UNEXPECTED, message)


def _abandon_batches(uow: ExportsUnitOfWork, job: ExportJob, status: str) -> None:
    uow.export_batches.abandon(_batch_ids(job.destination), status, now=now_ms())


def _batch_ids(destination: dict[str, Any]) -> list[str]:
    if "batches" in destination:
        return [b["batchId"] for b in destination["batches"]]
    return [destination["batchId"]]


def _check_cancel(services: ExportServices, job_id: int) -> None:
    with services.uow() as uow:
        lifecycle.check_cancel(uow.export_jobs.get(job_id))


def _export(services: ExportServices, scope: Scope, job_id: int, request: ExportRequest,
            targets: list[Target]) -> dict[str, Any]:
    with services.uow() as uow:
        policy = in_scope(uow.merge_policies.get(request.merge_policy_id), scope, "merge policy",
                          request.merge_policy_id)
        record = uow.profile_stores.get(policy.id)
        pointer = record.membership_path if record else None
    store = resolve_store(ensure_store(services, scope, policy))
    members = membership.store_for(services.settings.home, scope.sandbox_id, policy.id)
    state = members.state(pointer)
    export_start = now_ms()
    written: dict[str, list[tuple[str, int]]] = {}
    finals: dict[str, str] = {}
    data_lake = services.settings.data_lake
    # Inside reading(): the membership change files the queries list stay until they are written.
    with services.engine().workspace() as workspace, members.reading(), ExitStack() as discard_on_failure:
        staged = {}
        for target in targets:
            pending = discard_on_failure.enter_context(data_lake.stage(
                data_lake.location(scope.sandbox_id, request.dataset_id, target.batch_id), services.settings.staging))
            query = select_members(workspace, store, members, state, request, target.segments)
            written[target.batch_id] = write_parts(workspace, query, pending.path, FILE_ROWS)
            staged[target.batch_id] = pending
            _check_cancel(services, job_id)
        export_end = now_ms()
        write_start = now_ms()
        for batch_id, pending in staged.items():
            pending.publish()
            finals[batch_id] = pending.final
    with services.uow() as uow:
        job = uow.export_jobs.get(job_id)
        assert job is not None
        if job.status == "CANCELLED":
            for final in finals.values():
                data_lake.remove(final)
            _abandon_batches(uow, job, "aborted")
            uow.commit()
            return {}
        now = now_ms()
        # The dataset reflects the latest export: earlier export batches stop being read.
        uow.export_batches.replace_exported(request.dataset_id, now=now)
        records = 0
        for batch_id, parts in written.items():
            records += sum(rows for _, rows in parts)
            uow.export_batches.publish(batch_id, finals[batch_id], parts, started=export_start, now=now)
        write_end = now_ms()
        metrics = {
            "totalTime": {"startTimeInMs": job.created, "endTimeInMs": write_end,
                          "totalTimeInMs": write_end - job.created},
            "profileExportTime": {"startTimeInMs": export_start, "endTimeInMs": export_end,
                                  "totalTimeInMs": export_end - export_start},
            "aCPDatasetWriteTime": {"startTimeInMs": write_start, "endTimeInMs": write_end,
                                    "totalTimeInMs": write_end - write_start},
            "openseg:exportedProfiles": records,
            "openseg:engine": services.engine().describe(),
        }
        job.metrics, job.status, job.updated = metrics, "SUCCEEDED", write_end
        uow.export_jobs.update(job)
        uow.commit()
        return metrics


def write_parts(workspace: Workspace, query: exp.Query, out_dir: Path, rows_per_file: int) -> list[tuple[str, int]]:
    """Have the engine write ``query``'s rows into ``out_dir`` as Parquet files of at most ``rows_per_file``
    rows, named as the lake names a batch's files; an empty export still writes one zero-row file with the
    export's schema, so readers see an empty table.

    Returns:
        Each file's name and rows (read from its Parquet footer).
    """
    workspace.write(query, out_dir, file_rows=rows_per_file)
    parts = []
    for index, part in enumerate(sorted(out_dir.glob("*.parquet"))):
        name = lake.part_name(index)
        if part.name != name:
            part.rename(out_dir / name)
        parts.append((name, pq.read_metadata(out_dir / name).num_rows))
    return parts
