"""A job's membership diff over bitmaps, inside one DuckDB connection.

The job's qualified profiles arrive as one row per profile with a word of bits per 63 segments
(:func:`qualified_from_columns`); the previous membership is its bitmap snapshot with the per-profile
changes since folded in. The diff is then a join of two one-row-per-profile relations and bitwise
arithmetic: ``in = q & job | old & ~job``, ``entered = q & ~old & job``, ``exited = old & ~q & job``
(``rule.transition`` for every pair at once, property-tested against it). Only entries and exits become
rows (the history); unchanged members cost one bit.
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from openseg.segmentation.membership.layout import (
    WORD_BITS,
    SegmentBit,
    State,
    in_column,
    mask_of,
    new_column,
    word_of,
)
from openseg.segmentation.membership.store import BitsRelation, MembershipStore, read_parquet

#: Relations the differ creates in its connection.
PREV_BITS, PREV_PAIRS, MERGED, TRANSITIONS, JOB_BITS = (
    "previous_bits", "previous_pairs", "merged_bits", "membership_transitions", "job_bits")
#: The relation a diff reads the job's qualified profiles from: ``_profile_id, q_0, q_1, ...``.
QUALIFIED = "qualified_bits"
#: Rows per row group of a snapshot: a profile lookup reads one group (≈ 3 ms at 8,192 rows, 25 ms at
#: DuckDB's default 122,880; measured at 1M profiles × 100 segments).
LOOKUP_ROW_GROUP = 8192


class StagedFile:
    """A file written beside its final path, published by renaming it there.

    Its name ends in ``.partial`` so that readers never see it; if it is never published (a cancelled
    or failed job) it is deleted when the object is garbage collected.
    """

    def __init__(self, final: Path, tag: str) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        self.final = final
        self.path = final.with_name(f".{final.name}.{tag}.partial")
        self._cleanup = weakref.finalize(self, _unlink, str(self.path))

    def publish(self, target: Path | None = None) -> None:
        """Move the file to its place in one rename (readers see the old file or the new one)."""
        target = target or self.final
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, target)
        self._cleanup.detach()

    def discard(self) -> None:
        self._cleanup()

    def __repr__(self) -> str:
        return f"StagedFile({str(self.path)!r})"


def _unlink(path: str) -> None:
    Path(path).unlink(missing_ok=True)


@dataclass
class StagedMembership:
    """A job's new membership, written beside its places: the snapshot, the pairs, the history and the
    state manifest (published last; the metadata store's pointer then names :attr:`state`'s path)."""

    state: State
    snapshot: StagedFile
    pairs: StagedFile
    history: StagedFile
    manifest: StagedFile

    def files(self) -> list[StagedFile]:
        return [self.snapshot, self.pairs, self.history, self.manifest]

    def unpublish(self) -> None:
        """Remove the published files again (a job cancelled at its last step)."""
        for staged in self.files():
            staged.final.unlink(missing_ok=True)


class MembershipDiffer:
    """The membership diff of one job (the segments ``segment_ids``) inside a DuckDB connection.

    Usage: create it (it registers the previous membership and gives every job segment a bit), hand
    :meth:`plan_inputs` to the planner, create :data:`QUALIFIED` from the plan's result with
    :func:`qualified_from_columns`, call :meth:`diff`, then :meth:`stage`.
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection, store: MembershipStore, previous: State | None,
                 segment_ids: Sequence[str], name: str) -> None:
        self.connection = connection
        self.store = store
        self.previous = previous
        self.job_order = list(dict.fromkeys(segment_ids))
        connection.execute("SET TimeZone = 'UTC'")
        with store.lock():
            self.changes = store.changes(previous)
        change_segments = self._change_segments()
        base = previous or store.empty(name)
        through = self.changes[-1][0] if self.changes else base.changes_through
        self.state = replace(base.with_bits(sorted(change_segments) + self.job_order), name=name,
                             changes_through=through)
        #: The job's segment id -> its bit.
        self.bits = {s: self.state.segments[s].bit for s in self.job_order}
        self.words = self.state.words
        self._register_previous()
        by_id = {segment_id: rank for rank, segment_id in enumerate(sorted(self.job_order))}
        connection.register("job_bits_arrow", pa.table({
            "segment_id": pa.array(self.job_order, pa.string()),
            # The segment's rank among the job's ids: history sorts on it (an integer) instead of the id.
            "ord": pa.array([by_id[s] for s in self.job_order], pa.int32()),
            "bit": pa.array([self.bits[s] for s in self.job_order], pa.int32()),
            "word": pa.array([word_of(self.bits[s]) for s in self.job_order], pa.int32()),
            "mask": pa.array([mask_of(self.bits[s]) for s in self.job_order], pa.int64()),
        }))
        connection.execute(f"CREATE OR REPLACE TEMP TABLE {JOB_BITS} AS SELECT * FROM job_bits_arrow")
        connection.unregister("job_bits_arrow")

    # ------------------------------------------------------------------------------ the previous

    def _change_segments(self) -> set[str]:
        if not self.changes:
            return set()
        return set(pq.read_table([str(p) for _, p in self.changes], columns=["segment_id"])
                   ["segment_id"].to_pylist())

    def _register_previous(self) -> None:
        con, previous = self.connection, self.previous
        snapshot = previous.snapshot_path if previous else None
        pairs = previous.pairs_path if previous else None
        if snapshot is not None:
            present = set(pq.read_schema(snapshot).names)
            columns = ", ".join(f"{c} AS {c}" if c in present else f"0::BIGINT AS {c}"
                                for k in range(self.words) for c in (in_column(k), new_column(k)))
            source = f"SELECT _profile_id, {columns} FROM {read_parquet(snapshot)}"
        else:
            columns = ", ".join(f"0::BIGINT AS {c}" for k in range(self.words) for c in (in_column(k), new_column(k)))
            source = f"SELECT NULL::VARCHAR AS _profile_id, {columns} WHERE false"
        pairs_source = (f"SELECT _profile_id, bit, status, lastQualificationTime FROM {read_parquet(pairs)}"
                        if pairs is not None else
                        "SELECT NULL::VARCHAR AS _profile_id, NULL::INTEGER AS bit, NULL::VARCHAR AS status, "
                        "NULL::TIMESTAMPTZ AS lastQualificationTime WHERE false")
        if not self.changes:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {PREV_BITS} AS {source}")
            con.execute(f"CREATE OR REPLACE TEMP VIEW {PREV_PAIRS} AS {pairs_source}")
            return
        # Fold the per-profile changes: the latest state of each changed pair replaces its bits and pair.
        con.register("change_bits_arrow", pa.table({
            "segment_id": pa.array(list(self.state.segments), pa.string()),
            "bit": pa.array([b.bit for b in self.state.segments.values()], pa.int32())}))
        files = exp.func("read_parquet", exp.convert([str(p) for _, p in self.changes])).sql("duckdb")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE folded_changes AS
            SELECT c._profile_id, g.bit, arg_max(c.status, c.seq) AS status,
                   arg_max(c.lastQualificationTime, c.seq) AS lastQualificationTime
            FROM {files} c JOIN change_bits_arrow g USING (segment_id) GROUP BY ALL
        """)
        con.unregister("change_bits_arrow")
        masks = ", ".join(
            f"bit_or(CASE WHEN bit // {WORD_BITS} = {k} THEN 1::BIGINT << (bit % {WORD_BITS}) ELSE 0 END) AS clear_{k}, "
            f"bit_or(CASE WHEN bit // {WORD_BITS} = {k} AND status IN ('realized', 'existing') "
            f"THEN 1::BIGINT << (bit % {WORD_BITS}) ELSE 0 END) AS set_{k}" for k in range(self.words))
        folded = ", ".join(
            f"(coalesce(s.{in_column(k)}, 0) & ~coalesce(m.clear_{k}, 0)) | coalesce(m.set_{k}, 0) AS {in_column(k)}, "
            f"coalesce(s.{new_column(k)}, 0) & ~coalesce(m.clear_{k}, 0) AS {new_column(k)}" for k in range(self.words))
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {PREV_BITS} AS
            SELECT coalesce(s._profile_id, m._profile_id) AS _profile_id, {folded}
            FROM ({source}) s FULL OUTER JOIN (SELECT _profile_id, {masks} FROM folded_changes GROUP BY _profile_id) m
            USING (_profile_id)
        """)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {PREV_PAIRS} AS
            SELECT * FROM ({pairs_source}) ANTI JOIN folded_changes USING (_profile_id, bit)
            UNION ALL SELECT _profile_id, bit, status, lastQualificationTime FROM folded_changes
        """)

    def plan_inputs(self) -> tuple[BitsRelation, str | pa.Table | None]:
        """What the job's plan reads for ``inSegment`` of segments outside the job: the bit tests and the
        previous membership (the snapshot file, or the bits with per-profile changes folded in)."""
        if self.previous is None and not self.changes:
            return BitsRelation({}), None
        relation = BitsRelation({s: b.bit for s, b in self.state.segments.items()})
        if not self.changes and self.previous is not None and self.previous.snapshot_path is not None:
            return relation, str(self.previous.snapshot_path)
        columns = ", ".join(in_column(k) for k in range(self.words))
        return relation, self.connection.sql(f"SELECT _profile_id, {columns} FROM {PREV_BITS}").to_arrow_table()

    # ------------------------------------------------------------------------------------- diff

    def diff(self, at: datetime, qualified: Mapping[str, int]) -> dict[str, dict[str, int]]:
        """Join the qualified bits with the previous ones; returns each job segment's ``realized`` /
        ``existing`` / ``exited`` counts (``exited``: those who left in this run), given how many profiles
        qualify for each (``qualified``)."""
        self.at = at
        job_masks = [0] * self.words
        for bit in self.bits.values():
            job_masks[word_of(bit)] |= mask_of(bit)
        columns = []
        for k in range(self.words):
            q, old, new, job = f"coalesce(q.q_{k}, 0)", f"coalesce(p.{in_column(k)}, 0)", \
                f"coalesce(p.{new_column(k)}, 0)", job_masks[k]
            columns += [f"({q} & {job}) | ({old} & {~job}) AS {in_column(k)}",
                        f"({q} & ~{old} & {job}) | ({new} & {~job}) AS {new_column(k)}",
                        f"{q} & ~{old} & {job} AS ent_{k}", f"{old} & ~{q} & {job} AS ex_{k}"]
        self.connection.execute(f"""
            CREATE OR REPLACE TEMP TABLE {MERGED} AS
            SELECT coalesce(q._profile_id, p._profile_id) AS _profile_id, {", ".join(columns)}
            FROM {QUALIFIED} q FULL OUTER JOIN {PREV_BITS} p USING (_profile_id)
        """)
        moves = [f"SELECT m._profile_id, g.bit, '{event}' AS event FROM {MERGED} m JOIN {JOB_BITS} g "
                 f"ON g.word = {k} AND (m.{prefix}_{k} & g.mask) <> 0 WHERE m.{prefix}_{k} <> 0"
                 for k in range(self.words) if job_masks[k] for prefix, event in (("ent", "entered"), ("ex", "exited"))]
        self.connection.execute(f"CREATE OR REPLACE TEMP TABLE {TRANSITIONS} AS {' UNION ALL '.join(moves)}")
        rows = self.connection.execute(
            f"SELECT bit, count(*) FILTER (WHERE event = 'entered'), count(*) FILTER (WHERE event = 'exited') "
            f"FROM {TRANSITIONS} GROUP BY bit").fetchall()
        by_bit = {bit: (int(entered), int(exited)) for bit, entered, exited in rows}
        counts = {}
        for segment_id in self.job_order:
            entered, exited = by_bit.get(self.bits[segment_id], (0, 0))
            counts[segment_id] = {"realized": entered, "existing": int(qualified.get(segment_id, 0)) - entered,
                                  "exited": exited}
        return counts

    # ------------------------------------------------------------------------------------ files

    def current_query(self) -> str:
        """The new snapshot: profiles in at least one segment, by profile."""
        columns = ", ".join(c for k in range(self.words) for c in (in_column(k), new_column(k)))
        any_in = " OR ".join(f"{in_column(k)} <> 0" for k in range(self.words))
        return f"SELECT _profile_id, {columns} FROM {MERGED} WHERE {any_in} ORDER BY _profile_id"

    def pairs_query(self) -> str:
        """The new explicit pairs: those of other segments as they were, exited pairs of job segments
        still out (keeping the time they left), and this run's exits at ``$at``."""
        word = "CASE g.word " + " ".join(f"WHEN {k} THEN m.{in_column(k)}" for k in range(self.words)) + " END"
        return f"""
            SELECT _profile_id, bit, status, lastQualificationTime FROM {PREV_PAIRS}
            WHERE bit NOT IN (SELECT bit FROM {JOB_BITS})
            UNION ALL
            SELECT x._profile_id, x.bit, x.status, x.lastQualificationTime
            FROM {PREV_PAIRS} x JOIN {JOB_BITS} g USING (bit) LEFT JOIN {MERGED} m USING (_profile_id)
            WHERE x.status = 'exited' AND (coalesce({word}, 0) & g.mask) = 0
            UNION ALL
            SELECT _profile_id, bit, 'exited', CAST($at AS TIMESTAMPTZ) FROM {TRANSITIONS} WHERE event = 'exited'
            ORDER BY _profile_id, bit
        """

    def history_query(self) -> str:
        """This run's entries and exits (parameters ``at`` and ``job``), by segment and profile."""
        return f"""
            SELECT g.segment_id, t._profile_id, t.event, CAST($at AS TIMESTAMPTZ) AS "at",
                   CAST($job AS VARCHAR) AS job_id
            FROM {TRANSITIONS} t JOIN {JOB_BITS} g USING (bit)
            ORDER BY g.ord, t._profile_id
        """

    def copy_current(self, target: Path) -> StagedFile:
        staged = StagedFile(target, "current")
        self._copy(self.current_query(), staged.path, {}, row_group=LOOKUP_ROW_GROUP)
        return staged

    def stage(self, job_id: str) -> StagedMembership:
        """Write the new membership beside its places (see :class:`StagedMembership`)."""
        root, name, at = self.store.root, self.state.name, self.at
        history = StagedFile(root / "history" / f"{job_id}.parquet", "history")
        self._copy(self.history_query(), history.path, {"at": at, "job": job_id})
        pairs = StagedFile(root / "pairs" / f"{name}.parquet", "pairs")
        self._copy(self.pairs_query(), pairs.path, {"at": at}, row_group=LOOKUP_ROW_GROUP)
        snapshot = self.copy_current(root / "snapshots" / f"{name}.parquet")
        segments = dict(self.state.segments)
        for segment_id, bit in self.bits.items():
            segments[segment_id] = SegmentBit(bit, at)
        state = replace(self.state, root=root, snapshot=snapshot.final.name, pairs=pairs.final.name, segments=segments)
        manifest = StagedFile(state.path, "state")
        manifest.path.write_text(json.dumps(state.to_json(), indent=1))
        return StagedMembership(state, snapshot, pairs, history, manifest)

    def _copy(self, query: str, path: Path, params: Mapping[str, object], row_group: int | None = None) -> None:
        # The target is a bound parameter, never spliced into the statement.
        size = f", ROW_GROUP_SIZE {int(row_group)}" if row_group else ""
        self.connection.execute(f"COPY ({query}) TO $target (FORMAT parquet, COMPRESSION zstd{size})",
                                {**params, "target": str(path)})


def qualified_from_columns(result: str, columns: Mapping[str, str], bits: Mapping[str, int], words: int) -> exp.Query:
    """``_profile_id, q_0, ...`` of the profiles of ``result`` qualifying for some segment: each segment's
    boolean column (null: no) packed into its bit."""
    terms: list[list[exp.Expr]] = [[] for _ in range(words)]
    for segment_id, column in columns.items():
        bit = bits[segment_id]
        terms[word_of(bit)].append(exp.Case(
            ifs=[exp.If(this=exp.column(column, quoted=True), true=exp.Literal.number(mask_of(bit)))],
            default=exp.Literal.number(0)))
    packed = []
    for k, word_terms in enumerate(terms):
        total: exp.Expr = exp.cast(exp.Literal.number(0), exp.DataType.build("BIGINT"))
        for term in word_terms:
            total = exp.Add(this=total, expression=term)
        packed.append(exp.alias_(total, f"q_{k}"))
    inner = exp.select(exp.column("_profile_id"), *packed).from_(exp.to_table(result))
    any_in = exp.or_(*(exp.column(f"q_{k}").neq(exp.Literal.number(0)) for k in range(words)))
    return exp.select("*").from_(inner.subquery("packed")).where(any_in)
