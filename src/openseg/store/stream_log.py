"""The stream log in a SQLite file (``$OPENSEG_HOME/stream/log.sqlite``): ``streaming.ports.StreamLog``.

Why SQLite and not the metadata database or a hand-made file (see docs/architecture.md, "Streaming
ingestion"): a commit in WAL mode is one append to the WAL, in the operating system's hands once written, so an
acknowledged message survives a kill of every process (``synchronous=NORMAL``: the WAL is fsync'd at each
checkpoint; with ``fsync_each_commit``, ``synchronous=FULL``, at each commit too, so that it survives a power
cut, and the acknowledgement waits on the disk: up to 130 ms while other processes' writes are written back,
measured at 500 a second); readers (the streamer, possibly in
another process) never block the writer; ``seq`` (the rowid) grows in commit order because SQLite has one
writer at a time, which is what makes an offset enough to resume; and no job, build or query of the
metadata database ever holds the lock the acknowledgements wait for.

Group commit: callers hand their entries to one writer thread, which commits everything that arrived
while it was busy in one transaction and settles each caller's future when its entries are committed
(:meth:`SqliteStreamLog.submit`; :meth:`SqliteStreamLog.append` waits for it).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from openseg.profiles.keys import identity_key
from openseg.profiles.overlay import record_identities
from openseg.streaming.model import LogEntry, LoggedMessage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stream_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    xaction_id TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    inlet_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    sandbox_id TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    record TEXT NOT NULL,
    problems TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS log_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
#: Which identities each message carries (``profiles.keys.identity_key``), so that profile access and
#: streaming segmentation find a profile's messages by its identities (``profiles/overlay.py``).
_KEYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS stream_keys (
    key TEXT NOT NULL,
    sandbox_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (key, sandbox_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stream_keys_seq ON stream_keys (seq);
"""
_INSERT_KEY = "INSERT OR IGNORE INTO stream_keys (key, sandbox_id, seq) VALUES (?, ?, ?)"
_READ = ("SELECT seq, xaction_id, received_ms, inlet_id, org_id, sandbox_id, dataset_id, kind, record, problems "
         "FROM stream_log WHERE seq > ? ORDER BY seq LIMIT ?")
_CARRYING = ("SELECT seq, xaction_id, received_ms, inlet_id, org_id, sandbox_id, dataset_id, kind, record, problems "
             "FROM stream_log WHERE seq IN (SELECT seq FROM stream_keys WHERE key IN ({keys}) AND sandbox_id = ? "
             "AND seq > ? AND seq <= ?)")
#: How many keys one query of :meth:`SqliteStreamLog.carrying` binds (SQLite allows 32,766 parameters).
CARRYING_KEYS = 500
_INSERT = ("INSERT INTO stream_log (xaction_id, received_ms, inlet_id, org_id, sandbox_id, dataset_id, kind, "
           "record, problems) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
#: The writer thread ends after this long without appends (a new append starts it again).
IDLE_SECONDS = 2.0


@dataclass
class _Pending:
    entries: Sequence[LogEntry]
    done: Future[list[int]] = field(default_factory=Future)


def connect_wal(path: Path, fsync_each_commit: bool) -> sqlite3.Connection:
    """A connection to the SQLite file at ``path`` in WAL mode, fsync'ing at each commit or only at checkpoints
    (streaming's files: the log here, the due times in ``store/stream_due.py``)."""
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={'FULL' if fsync_each_commit else 'NORMAL'}")
    return connection


def synchronous(connection: sqlite3.Connection) -> str:
    """The connection's ``synchronous`` setting by name (``NORMAL``, ``FULL``)."""
    (level,) = connection.execute("PRAGMA synchronous").fetchone()
    return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[int(level)]


class SqliteStreamLog:
    """The durable log of accepted messages, with group commit.

    Args:
        path: The SQLite file (created with its folder).
        fsync_each_commit: Whether each commit waits for the disk (``OPENSEG_STREAM_FSYNC=commit``).
    """

    def __init__(self, path: Path, *, fsync_each_commit: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fsync_each_commit = fsync_each_commit
        setup = self._connect()
        try:
            indexed = setup.execute("SELECT 1 FROM sqlite_master WHERE name = 'stream_keys'").fetchone() is not None
            setup.executescript(_SCHEMA + _KEYS_SCHEMA)
            if not indexed:  # a log written before the index: index what it holds
                rows = setup.execute("SELECT seq, sandbox_id, record FROM stream_log").fetchall()
                setup.executemany(_INSERT_KEY, [(key, sandbox, seq) for seq, sandbox, record in rows
                                                for key in _keys(json.loads(record))])
            setup.execute("INSERT OR IGNORE INTO log_meta (key, value) VALUES ('log_id', ?)", (uuid.uuid4().hex,))
            self.log_id: str = setup.execute("SELECT value FROM log_meta WHERE key = 'log_id'").fetchone()[0]
        finally:
            setup.close()
        self._queue: list[_Pending] = []
        self._ready = threading.Condition()
        self._writer: threading.Thread | None = None
        self._reader = self._connect()
        self._reading = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        return connect_wal(self.path, self.fsync_each_commit)

    def synchronous(self) -> str:
        """SQLite's ``synchronous`` setting of this log's connections: ``FULL`` or ``NORMAL``."""
        with self._reading:
            return synchronous(self._reader)

    def append(self, entries: Sequence[LogEntry]) -> list[int]:
        return self.submit(entries).result()

    def submit(self, entries: Sequence[LogEntry]) -> Future[list[int]]:
        """Hand ``entries`` to the next group commit, without waiting: the future holds their ``seq`` once they
        are on disk, or the commit's error (and then none of them is). An event loop awaits it
        (``asyncio.wrap_future``) rather than holding a thread that waits."""
        pending = _Pending(entries)
        with self._ready:
            self._queue.append(pending)
            self._ready.notify()
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="openseg-stream-log", daemon=True)
                self._writer.start()
        return pending.done

    def _write_loop(self) -> None:
        connection = self._connect()
        try:
            while True:
                with self._ready:
                    if not self._queue:
                        self._ready.wait(IDLE_SECONDS)
                    if not self._queue:
                        self._writer = None
                        return
                    group, self._queue = self._queue, []
                self._commit(connection, group)
        finally:
            connection.close()

    @staticmethod
    def _commit(connection: sqlite3.Connection, group: list[_Pending]) -> None:
        seqs: list[list[int]] = [[] for _ in group]
        try:
            connection.execute("BEGIN IMMEDIATE")
            for pending, given in zip(group, seqs, strict=True):
                for entry in pending.entries:
                    cursor = connection.execute(_INSERT, (
                        entry.xaction_id, entry.received_ms, entry.inlet_id, entry.org_id, entry.sandbox_id,
                        entry.dataset_id, entry.kind, json.dumps(entry.record, separators=(",", ":")),
                        json.dumps(entry.problems),
                    ))
                    assert cursor.lastrowid is not None
                    given.append(cursor.lastrowid)
                    connection.executemany(_INSERT_KEY, [(key, entry.sandbox_id, cursor.lastrowid)
                                                         for key in _keys(entry.record)])
            connection.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - every caller of the group hears of it: none is acknowledged
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            for pending in group:
                pending.done.set_exception(exc)
            return
        for pending, given in zip(group, seqs, strict=True):
            pending.done.set_result(given)

    def read(self, after: int, limit: int) -> list[LoggedMessage]:
        with self._reading:
            rows = self._reader.execute(_READ, (after, limit)).fetchall()
        return [_message(row) for row in rows]

    def carrying(self, sandbox_id: str, keys: Collection[str], after: int,
                 through: int | None = None) -> list[LoggedMessage]:
        """The sandbox's messages with ``after < seq <= through`` carrying one of the identity ``keys``."""
        found: dict[int, LoggedMessage] = {}
        bound = (1 << 63) - 1 if through is None else through
        every = sorted(set(keys))
        with self._reading:
            for start in range(0, len(every), CARRYING_KEYS):
                chunk = every[start:start + CARRYING_KEYS]
                rows = self._reader.execute(_CARRYING.format(keys=", ".join("?" * len(chunk))),
                                            (*chunk, sandbox_id, after, bound))
                found.update((row[0], _message(row)) for row in rows.fetchall() if row[0] not in found)
        return [found[seq] for seq in sorted(found)]

    def last_seq(self) -> int:
        # AUTOINCREMENT keeps the highest seq ever given in sqlite_sequence, also once pruning emptied the table
        # (and never gives a pruned seq again).
        with self._reading:
            row = self._reader.execute("SELECT seq FROM sqlite_sequence WHERE name = 'stream_log'").fetchone()
        return 0 if row is None else int(row[0])

    def prune(self, through: int, keep: Mapping[str, int] | None = None) -> int:
        """Delete the messages up to ``through`` (every consumer has them), but those of a dataset of ``keep``
        above its floor (a profile build does not hold them yet); returns how many went."""
        keep = keep or {}
        gone = 0
        with self._reading:
            self._reader.execute("BEGIN IMMEDIATE")
            try:
                datasets = [row[0] for row in self._reader.execute(
                    "SELECT DISTINCT dataset_id FROM stream_log WHERE seq <= ?", (through,)).fetchall()]
                for dataset_id in datasets:
                    bound = min(through, keep.get(dataset_id, through))
                    self._reader.execute("DELETE FROM stream_keys WHERE seq IN (SELECT seq FROM stream_log "
                                         "WHERE dataset_id = ? AND seq <= ?)", (dataset_id, bound))
                    cursor = self._reader.execute("DELETE FROM stream_log WHERE dataset_id = ? AND seq <= ?",
                                                  (dataset_id, bound))
                    gone += int(cursor.rowcount)
                self._reader.execute("COMMIT")
            except BaseException:
                self._reader.execute("ROLLBACK")
                raise
        return gone


def _keys(record: dict[str, object]) -> list[str]:
    return sorted({identity_key(namespace, identity) for namespace, identity in record_identities(record)})


def _message(row: tuple[object, ...]) -> LoggedMessage:
    problems = json.loads(str(row[9]))
    return LoggedMessage(seq=int(str(row[0])), entry=LogEntry(
        xaction_id=str(row[1]), received_ms=int(str(row[2])), inlet_id=str(row[3]), org_id=str(row[4]),
        sandbox_id=str(row[5]), dataset_id=str(row[6]), kind=str(row[7]), record=json.loads(str(row[8])),
        problems=tuple((str(f), str(r)) for f, r in problems),
    ))
