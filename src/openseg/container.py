"""The service container: settings, metadata store and worker, wired once by ``bootstrap``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from openseg.config import Settings
from openseg.store.db import Database

if TYPE_CHECKING:
    from openseg.engines.base import Engine
    from openseg.store.stream_log import SqliteStreamLog
    from openseg.store.streaming import SqlAlchemyStreamingStore
    from openseg.store.unit_of_work import SqlAlchemyUnitOfWork

T = TypeVar("T")
BatchHook = Callable[["Services", str], None]
_STREAM_LOG_LOCK = threading.Lock()


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


@dataclass(eq=False)  # a container is itself: compared and hashed by identity (keys per-process caches)
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
    _stream_log: SqliteStreamLog | None = field(default=None, repr=False)
    _streaming_store: SqlAlchemyStreamingStore | None = field(default=None, repr=False)

    def engine(self) -> Engine:
        """The evaluation engine of ``OPENSEG_ENGINE`` (created once; Spark sessions are expensive)."""
        if self._engine is None:
            if self.settings.engine == "spark":
                from openseg.engines.spark import SparkEngine

                self._engine = SparkEngine(master=self.settings.spark_master,
                                           conf=self.settings.spark_conf)
            else:
                from openseg.engines.duckdb import DuckDBEngine

                self._engine = DuckDBEngine(memory_limit=self.settings.job_memory_limit,
                                            temp_directory=self.settings.home / "tmp")
        return self._engine

    def lasting(self, key: tuple[str, ...], read: Callable[[], T]) -> T:
        """``read()`` of lasting metadata, kept by this process until a commit changes such metadata
        (``Database.lasting``)."""
        return self.db.lasting(key, read)

    def reader(self) -> Engine:
        """The engine of requests that read a few rows of local files (membership history): embedded
        DuckDB whatever ``OPENSEG_ENGINE`` says, since such a read must answer in milliseconds and a Spark
        query costs more than that to start."""
        if self._reader is None:
            from openseg.engines.duckdb import DuckDBEngine

            self._reader = DuckDBEngine(threads=2)
        return self._reader

    def stream_log(self) -> SqliteStreamLog:
        """The durable log streamed messages are acknowledged into (``$OPENSEG_HOME/stream/log.sqlite``):
        one per process, so that its writer thread groups the commits of every request."""
        with _STREAM_LOG_LOCK:
            if self._stream_log is None:
                from openseg.store.stream_log import SqliteStreamLog

                self._stream_log = SqliteStreamLog(self.settings.home / "stream" / "log.sqlite",
                                                   fsync_each_commit=self.settings.stream_fsync_each_commit)
        return self._stream_log

    def open_stream_log(self) -> SqliteStreamLog | None:
        """The process's stream log if :meth:`stream_log` opened it already, else None (opening it reads and may
        write its file: an event loop calls this, never that)."""
        return self._stream_log

    def streaming_store(self) -> SqlAlchemyStreamingStore:
        """Streaming connections and the datasets they write to, on the metadata store."""
        if self._streaming_store is None:
            from openseg.store.streaming import SqlAlchemyStreamingStore

            self._streaming_store = SqlAlchemyStreamingStore(self.db)
        return self._streaming_store
