"""The due-time index in memory: ``ports.DueIndex`` for tests and for a streamer without a home (the real one
is a SQLite file, ``store/stream_due.py``)."""

from __future__ import annotations

from collections.abc import Mapping

from openseg.streaming.model import DueKey


class MemoryDueIndex:
    def __init__(self) -> None:
        self.entries: dict[DueKey, int] = {}
        self.jobs: dict[tuple[str, str], str] = {}

    def schedule(self, dues: Mapping[DueKey, int | None]) -> None:
        for key, due_ms in dues.items():
            if due_ms is None:
                self.entries.pop(key, None)
            else:
                self.entries[key] = due_ms

    def due(self, through_ms: int, limit: int) -> list[tuple[DueKey, int]]:
        found = sorted((due_ms, key) for key, due_ms in self.entries.items() if due_ms <= through_ms)
        return [(key, due_ms) for due_ms, key in found[:limit]]

    def next_due(self) -> int | None:
        return min(self.entries.values(), default=None)

    def scheduled_jobs(self) -> dict[tuple[str, str], str]:
        return dict(self.jobs)

    def record_scheduled_job(self, sandbox_id: str, policy_id: str, pointer: str) -> None:
        self.jobs[(sandbox_id, policy_id)] = pointer
