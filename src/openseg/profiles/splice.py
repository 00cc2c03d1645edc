"""Rewriting a sorted store file with some of its keys replaced, in one streaming pass.

``profiles.parquet`` and ``events.parquet`` are sorted by ``_profile_id`` (events then by time and
record id). An incremental update recomputes a small set of profiles; every other row keeps its place
and its bytes. :func:`splice_sorted` streams the old file batch by batch, drops the rows of the
recomputed profiles and slots the recomputed rows in where their key sorts, so the result is sorted as
a full build would sort it without sorting the whole file again.
"""

from __future__ import annotations

import bisect
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from openseg.engines.parquet import BatchWriter
from openseg.profiles.build import ROW_GROUP_ROWS


def splice_sorted(
    old: Path,
    out: Path,
    key: str,
    drop: pa.Array,
    insert: pa.Table,
    side: tuple[Path, Path] | None = None,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> int:
    """Write ``old`` without the rows whose ``key`` is in ``drop``, plus ``insert``, to ``out``.

    Each key's rows must come wholly from ``old`` or wholly from ``insert`` (a key of ``insert`` that
    is also in ``old`` must be in ``drop``): then a stable sort on ``key`` alone keeps every key's own
    row order, whatever the secondary sort order of the file is.

    Args:
        old: A Parquet file sorted by ``key``.
        out: The file to write.
        key: The sort column (no nulls).
        drop: Keys whose rows in ``old`` are left out.
        insert: Rows to add, sorted by ``key`` then as the file sorts within a key; the columns of
            ``old`` (castable to its schema), followed by the side column when ``side`` is given.
        side: ``(old side file, new side file)``: a one-column file aligned row for row with ``old``,
            rewritten alongside it (its values for ``insert`` are ``insert``'s last column).
        row_group_rows: Rows per row group of ``out``.

    Returns:
        The number of rows written.
    """
    source = pq.ParquetFile(old)
    schema = source.schema_arrow
    side_values: pa.ChunkedArray | None = None
    split: tuple[str, Path] | None = None
    if side is not None:
        side_table = pq.read_table(side[0])
        side_values = side_table.column(0)
        schema = schema.append(side_table.schema.field(0))
        split = (side_table.schema.names[0], side[1])
    insert = insert.select(schema.names).cast(schema)
    insert_keys = insert.column(key).to_pylist()
    cursor = 0
    offset = 0
    with BatchWriter(out, schema, split, row_group_rows) as writer:
        for batch in source.iter_batches(batch_size=ROW_GROUP_ROWS):
            table = pa.Table.from_batches([batch], schema=source.schema_arrow)
            if side_values is not None:
                table = table.append_column(schema.field(len(schema) - 1), side_values.slice(offset, batch.num_rows))
            offset += batch.num_rows
            if len(drop):
                table = table.filter(pc.invert(pc.is_in(table.column(key), value_set=drop)))
            if table.num_rows == 0:
                continue
            # Rows to insert that sort before this batch's last key belong in this batch.
            end = bisect.bisect_right(insert_keys, table.column(key)[-1].as_py(), lo=cursor)
            if end > cursor:
                table = pa.concat_tables([table, insert.slice(cursor, end - cursor)])
                table = table.take(pc.sort_indices(table, sort_keys=[(key, "ascending")]))
                cursor = end
            writer.write(table)
        writer.write(insert.slice(cursor))
    if side is not None and side_values is not None and offset != len(side_values):
        raise ValueError(f"{side[0]}: {len(side_values)} rows, {old} has {offset}")
    return writer.rows


def splice_or_link(old: Path, out: Path, key: str, drop: pa.Array, insert: pa.Table,
                   row_group_rows: int = ROW_GROUP_ROWS) -> int:
    """:func:`splice_sorted`, but when the rows of ``drop`` in ``old`` are exactly ``insert`` (a refresh that
    recomputed profiles whose rows did not change: events added, no fragment), ``out`` is made a hard link to
    ``old`` instead, and nothing is written: the same file, whose row groups every process has decoded stay valid
    (point reads key them by the file, ``engines/parquet._File``), where a rewritten one would be decoded anew by
    each.

    Returns:
        The number of rows of ``out``.
    """
    if not _same_rows(old, key, drop, insert):
        return splice_sorted(old, out, key, drop, insert, row_group_rows=row_group_rows)
    try:
        os.link(old, out)
    except OSError:  # another file system
        shutil.copy2(old, out)
    return int(pq.ParquetFile(old).metadata.num_rows)


def _same_rows(old: Path, key: str, drop: pa.Array, insert: pa.Table) -> bool:
    """Whether the rows of ``drop`` in ``old`` are ``insert``, row for row: ``old`` is read up to its first row
    that differs (a refresh that changed a profile reads a little of it; one that changed none reads it all, which
    costs less than writing it)."""
    if not len(drop):
        return bool(insert.num_rows == 0)
    source = pq.ParquetFile(old)
    insert = insert.select(source.schema_arrow.names).cast(source.schema_arrow)
    matched = 0
    for batch in source.iter_batches(batch_size=ROW_GROUP_ROWS):
        table = pa.Table.from_batches([batch], schema=source.schema_arrow)
        dropped = table.filter(pc.is_in(table.column(key), value_set=drop))
        if matched + dropped.num_rows > insert.num_rows or not dropped.equals(insert.slice(matched, dropped.num_rows)):
            return False
        matched += dropped.num_rows
    return bool(matched == insert.num_rows)


def write_rows(out: Path, like: Path, rows: pa.Table, side: Path, row_group_rows: int = ROW_GROUP_ROWS) -> int:
    """Write ``rows`` (sorted as ``like`` is, its side column last) to ``out`` with the schema of ``like`` (a file
    :func:`splice_sorted` writes), the side column to ``side``.

    Returns:
        The number of rows written.
    """
    schema = pq.read_schema(like)
    split = (rows.schema.names[-1], side)
    schema = schema.append(rows.schema.field(len(rows.schema) - 1))
    with BatchWriter(out, schema, split, row_group_rows) as writer:
        writer.write(rows.select(schema.names).cast(schema))
    return writer.rows


def append_rows(old: Path, out: Path, extra: pa.Table) -> int:
    """Write the rows of ``old`` followed by ``extra`` (cast to ``old``'s schema) to ``out``.

    Returns:
        The number of rows written.
    """
    source = pq.ParquetFile(old)
    with BatchWriter(out, source.schema_arrow, row_group_rows=ROW_GROUP_ROWS) as writer:
        for batch in source.iter_batches(batch_size=ROW_GROUP_ROWS):
            writer.write(batch)
        writer.write(extra.select(source.schema_arrow.names).cast(source.schema_arrow))
    return writer.rows
