"""The service container: settings, metadata store and worker, wired once by ``bootstrap``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from openseg.config import Settings
from openseg.store.db import Database

if TYPE_CHECKING:
    from openseg.engines.base import Engine
    from openseg.store.unit_of_work import SqlAlchemyUnitOfWork

BatchHook = Callable[["Services", str], None]


class Worker(Protocol):
    """What the container's callers use of the worker (``worker.loop.Worker``, which imports this module:
    declared here so that the two do not import each other)."""

    worker_id: str

    def run_once(self, kinds: Sequence[str] | None = None) -> bool: ...

    def run_until_idle(self, max_items: int = 10_000) -> int: ...

    def recover(self, max_age_ms: int = ...) -> int: ...

    def recover_dead_local(self) -> int: ...

    def serve_forever(self, kinds: Sequence[str] | None = None, first: bool = True) -> None: ...

    def serve_lanes(self) -> None: ...

    def start(self) -> None: ...

    def stop(self, timeout: float = 30.0) -> None: ...


@dataclass
class Services:
    settings: Settings
    db: Database
    #: Opens a fresh unit of work on the metadata store (``store.unit_of_work``; the scheduling services, the
    #: segment definition and job services take one; the profile store services, profile access and the export
    #: runner open their own through this, taking the container as ``ProfileServices`` / ``ExportServices``).
    uow: Callable[[], SqlAlchemyUnitOfWork]
    after_batch: list[BatchHook] = field(default_factory=list)
    worker: Worker | None = None
    _engine: Engine | None = field(default=None, repr=False)
    _reader: Engine | None = field(default=None, repr=False)

    def engine(self) -> Engine:
        """The evaluation engine of ``OPENSEG_ENGINE`` (created once; Spark sessions are expensive)."""
        if self._engine is None:
            if self.settings.engine == "spark":
                from openseg.engines.spark import SparkEngine

                self._engine = SparkEngine(master=self.settings.spark_master)
            else:
                from openseg.engines.duckdb import DuckDBEngine

                self._engine = DuckDBEngine(memory_limit=self.settings.job_memory_limit,
                                            temp_directory=self.settings.home / "tmp")
        return self._engine

    def reader(self) -> Engine:
        """The engine of requests that read a few rows of local files (membership history): embedded
        DuckDB whatever ``OPENSEG_ENGINE`` says, since such a read must answer in milliseconds and a Spark
        query costs more than that to start."""
        if self._reader is None:
            from openseg.engines.duckdb import DuckDBEngine

            self._reader = DuckDBEngine(threads=2)
        return self._reader
