"""Wiring: real adapters for the server, the worker and the CLI (tests wire the same with temp dirs)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from openseg.catalog.processing import INGEST_BATCH, process_batch
from openseg.catalog.query_jobs import RUN_QUERY, run_query_item
from openseg.catalog.streaming import CatalogLakeSink
from openseg.config import Settings
from openseg.container import Services
from openseg.exports.job_execution import run_export
from openseg.exports.jobs import RUN_EXPORT, check_for_schedule, queue_from_schedule
from openseg.profiles.service import BUILD_PROFILES, after_batch, run_build
from openseg.scheduling.ports import SandboxScope
from openseg.scheduling.scheduler import tick
from openseg.scope import Scope
from openseg.segmentation.job_execution import run_segment_job
from openseg.segmentation.jobs import RUN_SEGMENT_JOB, queue_job
from openseg.store.db import Database
from openseg.store.stream_due import SqliteDueIndex
from openseg.store.unit_of_work import JobServices, SqlAlchemyUnitOfWork
from openseg.streaming.flusher import Streamer
from openseg.streaming.segmenter import StreamSegmenter
from openseg.streaming_target import StoresSegmentationTarget
from openseg.worker.loop import Handler, Worker

#: How often the scheduler looks for due schedules.
SCHEDULER_SECONDS = 15.0


#: The worker's lanes (a thread each): Query Service queries run beside the jobs, never in front of them
#: (a tenant's long query does not hold up another tenant's segment job), and jobs never block queries.
LANES = ((INGEST_BATCH, BUILD_PROFILES, RUN_SEGMENT_JOB, RUN_EXPORT), (RUN_QUERY,))


def handlers() -> dict[str, Handler]:
    """Every kind of queued work and the function that runs it."""
    return {INGEST_BATCH: process_batch, BUILD_PROFILES: run_build, RUN_SEGMENT_JOB: run_segment_job,
            RUN_EXPORT: run_export, RUN_QUERY: run_query_item}


def _scope(scope: SandboxScope) -> Scope:
    return Scope(scope.org_id, scope.sandbox_id)


def _start_segment_job(uow: SqlAlchemyUnitOfWork, scope: SandboxScope, segment_ids: list[str], origin: str) -> str:
    return queue_job(uow, scope, [{"segmentId": s} for s in segment_ids], origin=origin).id


def _start_export(uow: SqlAlchemyUnitOfWork, scope: SandboxScope, request: Mapping[str, Any]) -> str:
    return queue_from_schedule(uow, _scope(scope), request)


def _check_export(uow: SqlAlchemyUnitOfWork, scope: SandboxScope, request: Mapping[str, Any]) -> None:
    check_for_schedule(uow, _scope(scope), request)


def unit_of_work_factory(db: Database) -> Callable[[], SqlAlchemyUnitOfWork]:
    """Fresh units of work on ``db``, starting the jobs schedules create through their services."""
    jobs = JobServices(start_segment_job=_start_segment_job, start_export=_start_export, check_export=_check_export)
    return partial(SqlAlchemyUnitOfWork, db, jobs)


def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    settings.ensure_dirs()
    settings.data_lake  # noqa: B018 - an object store lake is opened for this process's readers (lake_files)
    db = Database(settings.database_url)
    if migrate:
        db.migrate()
    services = Services(settings=settings, db=db, uow=unit_of_work_factory(db), after_batch=[after_batch])
    services.worker = Worker(services, handlers(), periodic=((SCHEDULER_SECONDS, tick),), lanes=LANES,
                             daemons=(partial(_stream, services),) if settings.streamer else ())
    return services


def _stream(services: Services, stop: threading.Event) -> None:
    streamer(services).run(stop)


def streamer(services: Services) -> Streamer:
    """The streaming consumer of this host's stream log (a daemon of the worker; ``openseg streamer`` alone)."""
    sink = CatalogLakeSink(services, services.settings.home / "stream" / "flusher.lock")
    stream_log = services.stream_log()
    due = SqliteDueIndex(services.settings.home / "stream" / "due.sqlite",
                         fsync_each_commit=services.settings.stream_fsync_each_commit)
    return Streamer(stream_log, sink, segmenter=StreamSegmenter(stream_log, StoresSegmentationTarget(services), due=due))
