"""Streaming segmentation's due-time index in a SQLite file (``$OPENSEG_HOME/stream/due.sqlite``):
``streaming.ports.DueIndex``.

One row per (profile, continuous segment) whose answer moves with time alone, keyed by its store and indexed
by due time, so the streamer's loop finds what is due with one index range read and a pair rescheduled by a
new event replaces its old time (``INSERT OR REPLACE``); and per store, the job membership whose members all
have their due times (``scheduled_jobs``: a restarted streamer does not evaluate them again). Its own file,
like the log's: the streamer is its only writer, and nothing else waits on its lock. A micro-batch's due times
are committed before its membership is written (``streaming/segmenter.py`` relies on that order); fsync'd at
each commit with ``fsync_each_commit`` (``OPENSEG_STREAM_FSYNC=commit``, as the log), else at checkpoints.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from openseg.store.stream_log import connect_wal, synchronous
from openseg.streaming.model import DueKey

_SCHEMA = """
CREATE TABLE IF NOT EXISTS due (
    sandbox_id TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    segment_id TEXT NOT NULL,
    due_ms INTEGER NOT NULL,
    PRIMARY KEY (sandbox_id, policy_id, profile_id, segment_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS due_by_time ON due (due_ms);
CREATE TABLE IF NOT EXISTS scheduled_jobs (
    sandbox_id TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    pointer TEXT NOT NULL,
    PRIMARY KEY (sandbox_id, policy_id)
) WITHOUT ROWID;
"""


class SqliteDueIndex:
    """Args:
        path: The SQLite file (created with its folder).
        fsync_each_commit: Whether each commit waits for the disk.
    """

    def __init__(self, path: Path, *, fsync_each_commit: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._connection = connect_wal(path, fsync_each_commit)
        self._connection.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def synchronous(self) -> str:
        """SQLite's ``synchronous`` setting of the index's connection: ``FULL`` or ``NORMAL``."""
        with self._lock:
            return synchronous(self._connection)

    def schedule(self, dues: Mapping[DueKey, int | None]) -> None:
        if not dues:
            return
        keep = [(k.sandbox_id, k.policy_id, k.profile_id, k.segment_id, due) for k, due in dues.items() if due is not None]
        drop = [(k.sandbox_id, k.policy_id, k.profile_id, k.segment_id) for k, due in dues.items() if due is None]
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                self._connection.executemany(
                    "DELETE FROM due WHERE sandbox_id = ? AND policy_id = ? AND profile_id = ? AND segment_id = ?", drop)
                self._connection.executemany("INSERT OR REPLACE INTO due VALUES (?, ?, ?, ?, ?)", keep)
                self._connection.execute("COMMIT")
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise

    def due(self, through_ms: int, limit: int) -> list[tuple[DueKey, int]]:
        with self._lock:
            rows = self._connection.execute(
                "SELECT sandbox_id, policy_id, profile_id, segment_id, due_ms FROM due WHERE due_ms <= ? "
                "ORDER BY due_ms LIMIT ?", (through_ms, limit)).fetchall()
        return [(DueKey(*row[:4]), int(row[4])) for row in rows]

    def next_due(self) -> int | None:
        with self._lock:
            (found,) = self._connection.execute("SELECT min(due_ms) FROM due").fetchone()
        return None if found is None else int(found)

    def scheduled_jobs(self) -> dict[tuple[str, str], str]:
        with self._lock:
            rows = self._connection.execute("SELECT sandbox_id, policy_id, pointer FROM scheduled_jobs").fetchall()
        return {(sandbox_id, policy_id): pointer for sandbox_id, policy_id, pointer in rows}

    def record_scheduled_job(self, sandbox_id: str, policy_id: str, pointer: str) -> None:
        with self._lock:
            self._connection.execute("INSERT OR REPLACE INTO scheduled_jobs VALUES (?, ?, ?)",
                                     (sandbox_id, policy_id, pointer))

    def close(self) -> None:
        self._connection.close()
