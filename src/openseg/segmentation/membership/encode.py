"""Long-form membership (``_profile_id, segment_id, status, lastQualificationTime`` rows, AEP's
``segmentMembership.ups`` as a table) into the store's layout: for stores written before the bitmap
layout, and for tests that describe membership the way users see it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import duckdb
import pyarrow as pa

from openseg.atomic_files import StagedFile
from openseg.segmentation.membership.layout import (
    SegmentBit,
    State,
    in_column,
    mask_of,
    new_column,
    word_of,
    words_for,
)
from openseg.segmentation.membership.store import BitsRelation, MembershipStore, write_atomically

LONG_FORM_SCHEMA = pa.schema([
    ("_profile_id", pa.string()),
    ("segment_id", pa.string()),
    ("status", pa.string()),
    ("lastQualificationTime", pa.timestamp("us", tz="UTC")),
])


def _bits(long_form: pa.Table, segment_ids: Sequence[str] | None = None) -> dict[str, int]:
    known = sorted(set(segment_ids or ()) | set(long_form["segment_id"].to_pylist()))
    return {segment_id: bit for bit, segment_id in enumerate(known)}


def _snapshot(con: duckdb.DuckDBPyConnection, bits: dict[str, int], with_new: bool) -> pa.Table:
    words = words_for(len(bits))
    con.register("bits_arrow", pa.table({"segment_id": list(bits), "bit": pa.array(list(bits.values()), pa.int32()),
                                         "word": pa.array([word_of(b) for b in bits.values()], pa.int32()),
                                         "mask": pa.array([mask_of(b) for b in bits.values()], pa.int64())}))
    columns = []
    for k in range(words):
        columns.append(f"coalesce(bit_or(mask) FILTER (WHERE word = {k}), 0) AS {in_column(k)}")
        if with_new:
            columns.append(f"coalesce(bit_or(mask) FILTER (WHERE word = {k} AND status = 'realized'), 0) "
                           f"AS {new_column(k)}")
    return con.sql(f"SELECT _profile_id, {', '.join(columns)} FROM long_form JOIN bits_arrow USING (segment_id) "
                   "WHERE status IN ('realized', 'existing') GROUP BY _profile_id ORDER BY _profile_id").to_arrow_table()


def relation_from_long_form(long_form: pa.Table, segment_ids: Sequence[str] | None = None
                            ) -> tuple[BitsRelation, pa.Table]:
    """The ``inSegment`` relation and the table a plan reads for it, from long-form rows (bits in the
    order of the sorted segment ids, ``segment_ids`` included)."""
    bits = _bits(long_form, segment_ids)
    with duckdb.connect() as con:
        con.register("long_form", long_form)
        return BitsRelation(bits), _snapshot(con, bits, with_new=False)


def import_long_form(store: MembershipStore, long_form: pa.Table, name: str) -> State:
    """Write long-form membership as a published state of ``store`` (returns it; the caller points the
    metadata store at ``state.path``). Each segment's evaluation time is its members' most common
    ``lastQualificationTime``; members with another time, and every exited pair, become explicit pairs."""
    bits = _bits(long_form)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("long_form", long_form.select(LONG_FORM_SCHEMA.names).cast(LONG_FORM_SCHEMA))
        evaluated = dict(con.sql(
            "SELECT segment_id, mode(lastQualificationTime) FROM long_form "
            "WHERE status IN ('realized', 'existing') GROUP BY segment_id").fetchall())
        snapshot = _snapshot(con, bits, with_new=True)
        con.register("evaluated_arrow", pa.table({
            "segment_id": pa.array(list(evaluated), pa.string()),
            "evaluated_at": pa.array(list(evaluated.values()), pa.timestamp("us", tz="UTC"))}))
        pairs = con.sql(
            "SELECT l._profile_id, b.bit, l.status, l.lastQualificationTime FROM long_form l "
            "JOIN bits_arrow b USING (segment_id) LEFT JOIN evaluated_arrow e USING (segment_id) "
            "WHERE l.status = 'exited' OR e.evaluated_at IS DISTINCT FROM l.lastQualificationTime "
            "ORDER BY l._profile_id, b.bit").to_arrow_table()
    segments = {s: SegmentBit(bit, _as_datetime(evaluated.get(s))) for s, bit in bits.items()}
    state = State(root=store.root, name=name, snapshot=f"{name}.parquet", pairs=f"{name}.parquet", segments=segments)
    write_atomically(snapshot, store.root / "snapshots" / f"{name}.parquet")
    write_atomically(pairs, store.root / "pairs" / f"{name}.parquet")
    manifest = StagedFile(state.path, "state")
    manifest.path.write_text(json.dumps(state.to_json(), indent=1))
    manifest.publish()
    return state


def _as_datetime(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None
