"""Long-form membership (``_profile_id, segment_id, status, lastQualificationTime`` rows, AEP's
``segmentMembership.ups`` as a table) into the store's layout: for stores written before the bitmap
layout, and for tests that describe membership the way users see it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from openseg.atomic_files import StagedFile
from openseg.segmentation.membership.layout import (
    WORD_BITS,
    SegmentBit,
    State,
    in_column,
    new_column,
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


def _snapshot(long_form: pa.Table, bits: dict[str, int], with_new: bool) -> pa.Table:
    """One row per profile in some segment, its segments as bits (``in_k``; ``new_k`` for those realized),
    sorted by profile. A (profile, segment) pair is one row, so summing the masks of a profile's pairs
    within one word sets exactly their bits."""
    words = words_for(len(bits))
    members = long_form.filter(pc.is_in(long_form["status"], value_set=pa.array(["realized", "existing"])))
    bit = pc.index_in(members["segment_id"], value_set=pa.array(list(bits), pa.string()))
    bit = pc.take(pa.array(list(bits.values()), pa.int64()), bit)
    word, mask = pc.divide(bit, WORD_BITS), pc.shift_left(pa.scalar(1, pa.int64()), pc.subtract(bit, pc.multiply(
        pc.divide(bit, WORD_BITS), WORD_BITS)))
    realized = pc.equal(members["status"], "realized")
    columns: dict[str, pa.Array] = {"_profile_id": members["_profile_id"]}
    zero = pa.scalar(0, pa.int64())
    for k in range(words):
        in_word = pc.equal(word, k)
        columns[in_column(k)] = pc.if_else(in_word, mask, zero)
        if with_new:
            columns[new_column(k)] = pc.if_else(pc.and_(in_word, realized), mask, zero)
    wide = pa.table(columns)
    summed = wide.group_by("_profile_id").aggregate([(name, "sum") for name in list(columns)[1:]])
    summed = summed.rename_columns([name.removesuffix("_sum") for name in summed.column_names])
    ordered = ["_profile_id", *(c for k in range(words) for c in ((in_column(k), new_column(k)) if with_new
                                                                   else (in_column(k),)))]
    return summed.select(ordered).sort_by("_profile_id")


def relation_from_long_form(long_form: pa.Table, segment_ids: Sequence[str] | None = None
                            ) -> tuple[BitsRelation, pa.Table]:
    """The ``inSegment`` relation and the table a plan reads for it, from long-form rows (bits in the
    order of the sorted segment ids, ``segment_ids`` included)."""
    bits = _bits(long_form, segment_ids)
    return BitsRelation(bits), _snapshot(long_form, bits, with_new=False)


def import_long_form(store: MembershipStore, long_form: pa.Table, name: str) -> State:
    """Write long-form membership as a published state of ``store`` (returns it; the caller points the
    metadata store at ``state.path``). Each segment's evaluation time is its members' most common
    ``lastQualificationTime``; members with another time, and every exited pair, become explicit pairs."""
    bits = _bits(long_form)
    long_form = long_form.select(LONG_FORM_SCHEMA.names).cast(LONG_FORM_SCHEMA)
    evaluated = _most_common_times(long_form)
    snapshot = _snapshot(long_form, bits, with_new=True)
    at = pc.take(pa.array([evaluated.get(s) for s in bits], pa.timestamp("us", tz="UTC")),
                 pc.index_in(long_form["segment_id"], value_set=pa.array(list(bits), pa.string())))
    explicit = pc.or_(pc.equal(long_form["status"], "exited"),
                      pc.invert(pc.fill_null(pc.equal(long_form["lastQualificationTime"], at), False)))
    explicit = pc.and_(explicit, pc.invert(pc.and_(pc.is_null(long_form["lastQualificationTime"]), pc.is_null(at))))
    chosen = long_form.filter(explicit)
    pair_bits = pc.take(pa.array(list(bits.values()), pa.int32()),
                        pc.index_in(chosen["segment_id"], value_set=pa.array(list(bits), pa.string())))
    pairs = pa.table({"_profile_id": chosen["_profile_id"], "bit": pair_bits, "status": chosen["status"],
                      "lastQualificationTime": chosen["lastQualificationTime"]}).sort_by(
        [("_profile_id", "ascending"), ("bit", "ascending")])
    segments = {s: SegmentBit(bit, _as_datetime(evaluated.get(s))) for s, bit in bits.items()}
    state = State(root=store.root, name=name, snapshot=f"{name}.parquet", pairs=f"{name}.parquet", segments=segments)
    write_atomically(snapshot, store.root / "snapshots" / f"{name}.parquet")
    write_atomically(pairs, store.root / "pairs" / f"{name}.parquet")
    manifest = StagedFile(state.path, "state")
    manifest.path.write_text(json.dumps(state.to_json(), indent=1))
    manifest.publish()
    return state


def _most_common_times(long_form: pa.Table) -> dict[str, datetime]:
    """Per segment, its members' most common ``lastQualificationTime`` (ties: the latest)."""
    members = long_form.filter(pc.is_in(long_form["status"], value_set=pa.array(["realized", "existing"])))
    counted = members.group_by(["segment_id", "lastQualificationTime"]).aggregate([([], "count_all")])
    best: dict[str, tuple[int, datetime]] = {}
    for row in counted.to_pylist():
        time, count = row["lastQualificationTime"], row["count_all"]
        if time is None:
            continue
        current = best.get(row["segment_id"])
        if current is None or (count, time) > current:
            best[row["segment_id"]] = (count, time)
    return {segment_id: time for segment_id, (_, time) in best.items()}


def _as_datetime(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None
