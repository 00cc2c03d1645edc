"""Wiring: real adapters for the server, the worker and the CLI (tests wire the same with temp dirs)."""

from __future__ import annotations

from openseg.catalog.processing import INGEST_BATCH, process_batch
from openseg.catalog.query_jobs import RUN_QUERY, run_query_item
from openseg.config import Settings
from openseg.exports.jobs import RUN_EXPORT, start_from_schedule, validate_for_schedule
from openseg.exports.runner import run_export
from openseg.profiles.service import BUILD_PROFILES, after_batch, run_build
from openseg.scheduling.scheduler import tick
from openseg.segmentation.jobs import RUN_SEGMENT_JOB
from openseg.segmentation.runner import run_segment_job
from openseg.services import Services
from openseg.store.db import Database
from openseg.worker.loop import Handler, Worker

#: How often the scheduler looks for due schedules.
SCHEDULER_SECONDS = 15.0


def handlers() -> dict[str, Handler]:
    """Every kind of queued work and the function that runs it."""
    return {INGEST_BATCH: process_batch, BUILD_PROFILES: run_build, RUN_SEGMENT_JOB: run_segment_job,
            RUN_EXPORT: run_export, RUN_QUERY: run_query_item}


def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    settings.ensure_dirs()
    db = Database(settings.database_url)
    if migrate:
        db.migrate()
    services = Services(settings=settings, db=db, after_batch=[after_batch], export_starter=start_from_schedule,
                        export_validator=validate_for_schedule)
    services.worker = Worker(services, handlers(), periodic=((SCHEDULER_SECONDS, tick),))
    return services
