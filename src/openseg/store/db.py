"""Engine, sessions and migrations for the metadata store."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import BigInteger, Engine, Executable, Integer, column, create_engine, event, table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"

#: Tables whose rows change by the second and that nothing kept across requests reads (work items and their
#: heartbeats, stream offsets, jobs, queries, previews): a commit that changes only these leaves the metadata
#: generation where it was. Every other table's change raises it.
VOLATILE_TABLES = frozenset({"work_items", "stream_offsets", "segment_jobs", "export_jobs", "queries", "previews",
                             "metadata_generation"})
T = TypeVar("T")
_GENERATION = table("metadata_generation", column("id", Integer), column("value", BigInteger))
_CHANGED = "openseg:lasting-change"
#: Read by every authenticated request: a constant statement handed to the driver as it is (a compiled
#: ``select()`` through SQLAlchemy's statement cache took 80 µs a call, this 28 µs).
_READ_GENERATION = "SELECT value FROM metadata_generation WHERE id = 1"


def make_engine(url: str) -> Engine:
    """Create the SQLAlchemy engine; SQLite gets WAL and a busy timeout so worker threads can share it."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Lasting:
    """What a process read of the metadata, good for one metadata generation (shared by its threads).

    At most :attr:`MAX_KEYS` reads are kept: past that they are all dropped and read again, so that requests
    naming ever new keys (unknown tokens, ids) cannot grow a process's memory.
    """

    MAX_KEYS = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = -1
        self._values: dict[tuple[str, ...], Any] = {}

    def at(self, generation: int) -> dict[tuple[str, ...], Any]:
        """The reads kept for ``generation``, to read from and add to: shared while it is the newest seen, else
        the caller's own (-1, no generation, keeps nothing; an older one, read before another thread's newer,
        must not replace what that thread keeps)."""
        with self._lock:
            if generation > self._generation or len(self._values) > self.MAX_KEYS:
                self._generation, self._values = max(generation, self._generation), {}
            return self._values if generation == self._generation and generation >= 0 else {}


class _SqliteGeneration:
    """The generation of a SQLite store file, read again only after some connection committed to it.

    A connection of its own, which never writes, asks ``PRAGMA data_version`` first: it changes whenever another
    connection (of this process or another) has committed since, and else the generation read last is still the
    store's. Every authenticated request, edge call and streaming micro-batch asks (28 us through the engine; the
    pragma about a tenth of that)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        #: The data version and the generation read at it.
        self._seen: tuple[int, int] | None = None

    def read(self) -> int:
        with self._lock:
            if self._connection is None:
                self._connection = sqlite3.connect(self._path, timeout=30, isolation_level=None,
                                                   check_same_thread=False)
            try:
                (version,) = self._connection.execute("PRAGMA data_version").fetchone()
                if self._seen is not None and self._seen[0] == version:
                    return self._seen[1]
                found = self._connection.execute(_READ_GENERATION).fetchone()
            except sqlite3.OperationalError:  # no such table (a store not migrated yet), or the file unreadable now
                self._seen = None  # asked again next time, as the engine's query was
                return -1
            generation = -1 if found is None or found[0] is None else int(found[0])
            self._seen = (version, generation)
            return generation

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
            self._connection, self._seen = None, None


def _sqlite_file(engine: Engine) -> str | None:
    """The file of a SQLite engine's store (None: another database, or one in memory)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.query or not url.database or url.database == ":memory:" or \
            url.database.startswith("file:"):
        return None
    return url.database


class Database:
    """The metadata store: an engine plus a session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        _count_generations(self._sessions)
        #: The reads this process keeps while the generation stays (:meth:`lasting`).
        self.kept = Lasting()
        path = _sqlite_file(self.engine)
        self._generation = None if path is None else _SqliteGeneration(path)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def migrate(self) -> None:
        migrate(self.engine)

    def generation(self) -> int:
        """The metadata generation: it moves with every commit that changed lasting metadata, so what was read
        at one value is still true while it stays (-1 before migration 0012: nothing may be kept then)."""
        if self._generation is not None:
            return self._generation.read()
        try:
            with self.engine.connect() as connection:
                found = connection.exec_driver_sql(_READ_GENERATION).scalar()
        except (OperationalError, ProgrammingError):  # no such table: a store not migrated yet
            return -1
        return -1 if found is None else int(found)

    def lasting(self, key: tuple[str, ...], read: Callable[[], T]) -> T:
        """``read()``, kept by this process until a commit changes lasting metadata: one small query (the
        generation, read first, so what ``read`` returns is at least that new) instead of ``read``'s.

        ``read`` must read only lasting metadata (not ``VOLATILE_TABLES``) and return what no caller changes;
        ``key`` names what it reads, arguments included. None (nothing found) is not kept: misses are read
        again."""
        memo = self.kept.at(self.generation())
        if key in memo:
            kept: T = memo[key]
            return kept
        found = read()
        if found is not None:
            memo[key] = found
        return found

    def new_session(self) -> Session:
        """A session the caller commits and closes (``store.unit_of_work`` does)."""
        return self._sessions()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on error."""
        session = self.new_session()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        if self._generation is not None:
            self._generation.close()
        self.engine.dispose()


def _raise_generation(dialect: str) -> Executable:
    """The generation's row plus one (an upsert: the row comes back should a clean-up have deleted it)."""
    raised = {"value": _GENERATION.c.value + 1}
    if dialect == "postgresql":
        return postgresql.insert(_GENERATION).values(id=1, value=1).on_conflict_do_update(
            index_elements=[_GENERATION.c.id], set_=raised)
    return sqlite.insert(_GENERATION).values(id=1, value=1).on_conflict_do_update(
        index_elements=[_GENERATION.c.id], set_=raised)


def _lasting(table_name: str) -> bool:
    return table_name not in VOLATILE_TABLES


def _count_generations(sessions: sessionmaker[Session]) -> None:
    """Raise the metadata generation in every commit that changed lasting metadata, in the same transaction
    (so a reader that sees the change sees the new generation): rows flushed through the ORM and bulk
    ``insert``/``update``/``delete`` statements a session executes."""

    @event.listens_for(sessions, "after_flush")
    def _flushed(session: Session, _context: Any) -> None:
        changed = chain(session.new, session.dirty, session.deleted)
        if any(_lasting(type(row).__table__.name) for row in changed):
            session.info[_CHANGED] = True

    @event.listens_for(sessions, "do_orm_execute")
    def _executed(state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            target = getattr(state.statement, "table", None)  # a table not known counts as lasting
            if _lasting(str(getattr(target, "name", ""))):
                state.session.info[_CHANGED] = True

    @event.listens_for(sessions, "before_commit")
    def _committing(session: Session) -> None:
        session.flush()  # before_commit comes before the commit's own flush: what it writes must count
        if session.info.pop(_CHANGED, False):
            session.execute(_raise_generation(session.get_bind().dialect.name))

    @event.listens_for(sessions, "after_transaction_end")
    def _ended(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # committed or rolled back: the next transaction starts unchanged
            session.info.pop(_CHANGED, None)
