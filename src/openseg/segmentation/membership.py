"""Segment membership: the diff of one evaluation against the last (realized / existing / exited),
the history of entries and exits, and reads over both.

Membership is columnar (Parquet) because it is as large as profiles × segments:
``current``: ``_profile_id, segment_id, status, lastQualificationTime`` — one row per profile and segment
it is or was in; ``history``: ``segment_id, _profile_id, event ('entered'|'exited'), at, job_id``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

IN_STATUSES = ("realized", "existing")

MEMBERSHIP_SCHEMA = pa.schema([
    ("_profile_id", pa.string()),
    ("segment_id", pa.string()),
    ("status", pa.string()),
    ("lastQualificationTime", pa.timestamp("us", tz="UTC")),
])
HISTORY_SCHEMA = pa.schema([
    ("segment_id", pa.string()),
    ("_profile_id", pa.string()),
    ("event", pa.string()),
    ("at", pa.timestamp("us", tz="UTC")),
    ("job_id", pa.string()),
])


@dataclass(frozen=True)
class MembershipDiff:
    current: pa.Table
    history: pa.Table
    counts: dict[str, dict[str, int]]


def qualified_pairs(result: pa.Table, columns: Mapping[str, str]) -> pa.Table:
    """Long form ``(segment_id, _profile_id)`` of an evaluation result with one boolean column per segment."""
    ids = result["_profile_id"]
    parts = []
    for segment_id, column in columns.items():
        chosen = pc.filter(ids, pc.fill_null(result[column], False))
        parts.append(pa.table({"segment_id": pa.array([segment_id] * len(chosen), pa.string()),
                               "_profile_id": chosen.cast(pa.string())}))
    if not parts:
        return pa.table({"segment_id": pa.array([], pa.string()), "_profile_id": pa.array([], pa.string())})
    return pa.concat_tables(parts)


def empty_membership() -> pa.Table:
    return MEMBERSHIP_SCHEMA.empty_table()


def diff(previous: pa.Table | None, qualified: pa.Table, segment_ids: Sequence[str], at: datetime,
         job_id: str) -> MembershipDiff:
    """The new membership after an evaluation of ``segment_ids`` at ``at``.

    ``realized``: in now, not in before; ``existing``: in before and now; ``exited``: in before, out now
    (it stays ``exited`` in later runs until the profile qualifies again). Rows of segments outside this
    evaluation are kept as they were.
    """
    previous = empty_membership() if previous is None else previous
    segments = pa.table({"segment_id": pa.array(list(segment_ids), pa.string())})
    with duckdb.connect() as con:
        con.register("prev", previous)
        con.register("qualified", qualified)
        con.register("job_segments", segments)
        con.execute("SET TimeZone = 'UTC'")
        params = {"at": at}
        current = con.sql(
            """
            WITH prev_job AS (
                SELECT * FROM prev WHERE segment_id IN (SELECT segment_id FROM job_segments)
            ), merged AS (
                SELECT coalesce(q._profile_id, p._profile_id) AS _profile_id,
                       coalesce(q.segment_id, p.segment_id) AS segment_id,
                       CASE
                           WHEN q._profile_id IS NOT NULL AND p.status IN ('realized', 'existing') THEN 'existing'
                           WHEN q._profile_id IS NOT NULL THEN 'realized'
                           ELSE 'exited'
                       END AS status,
                       CASE
                           WHEN q._profile_id IS NOT NULL OR p.status IN ('realized', 'existing')
                               THEN CAST($at AS TIMESTAMPTZ)
                           ELSE p.lastQualificationTime
                       END AS lastQualificationTime,
                       p.status AS previous_status
                FROM qualified q FULL OUTER JOIN prev_job p
                  ON q._profile_id = p._profile_id AND q.segment_id = p.segment_id
            )
            SELECT _profile_id, segment_id, status, lastQualificationTime, previous_status FROM merged
            """,
            params=params,
        ).to_arrow_table()
        con.register("merged", current)
        counts_rows = con.execute(
            """
            SELECT segment_id,
                   count(*) FILTER (WHERE status = 'realized') AS realized,
                   count(*) FILTER (WHERE status = 'existing') AS existing,
                   count(*) FILTER (WHERE status = 'exited' AND previous_status IN ('realized', 'existing')) AS exited
            FROM merged GROUP BY segment_id
            """
        ).fetchall()
        history = con.sql(
            """
            SELECT segment_id, _profile_id,
                   CASE WHEN status = 'realized' THEN 'entered' ELSE 'exited' END AS event,
                   CAST($at AS TIMESTAMPTZ) AS at, CAST($job AS VARCHAR) AS job_id
            FROM merged
            WHERE status = 'realized' OR (status = 'exited' AND previous_status IN ('realized', 'existing'))
            ORDER BY segment_id, _profile_id
            """,
            params={"at": at, "job": job_id},
        ).to_arrow_table()
        kept = con.sql(
            """
            SELECT _profile_id, segment_id, status, lastQualificationTime FROM prev
            WHERE segment_id NOT IN (SELECT segment_id FROM job_segments)
            UNION ALL
            SELECT _profile_id, segment_id, status, lastQualificationTime FROM merged
            ORDER BY _profile_id, segment_id
            """
        ).to_arrow_table()
    counts = {s: {"realized": 0, "existing": 0, "exited": 0} for s in segment_ids}
    for segment_id, realized, existing, exited in counts_rows:
        counts[segment_id] = {"realized": int(realized), "existing": int(existing), "exited": int(exited)}
    return MembershipDiff(current=_cast(kept, MEMBERSHIP_SCHEMA), history=_cast(history, HISTORY_SCHEMA),
                          counts=counts)


def _cast(table: pa.Table | pa.RecordBatchReader, schema: pa.Schema) -> pa.Table:
    if isinstance(table, pa.RecordBatchReader):
        table = table.read_all()
    return table.select(schema.names).cast(schema)


def read_current(path: str | Path | None) -> pa.Table | None:
    if path is None or not Path(path).is_file():
        return None
    return pq.read_table(path)


def write_atomically(table: pa.Table, path: Path) -> None:
    """Write a Parquet file so readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    pq.write_table(table, partial, compression="zstd")
    partial.replace(path)
