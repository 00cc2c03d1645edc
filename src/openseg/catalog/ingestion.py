"""Processing a completed batch: validate every record and convert it to Parquet parts."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from openseg import failures
from openseg.catalog import lake
from openseg.catalog.records import FileFormatError, iter_json_records, records_to_table
from openseg.catalog.validation import EVENT, RecordError, parquet_misfits, parse_rfc3339, typed_record, validate_record

#: Records per Parquet part written from JSON input.
PART_ROWS = 100_000
#: At most this many record errors are kept on a failed batch (the count covers all of them).
MAX_REPORTED_ERRORS = 100


@dataclass
class IngestResult:
    records_read: int = 0
    records_written: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_count: int = 0
    parts: list[tuple[str, int]] = field(default_factory=list)  # (file name, rows)
    #: The 1-based numbers of the failed records of each file, every one of them (``errors`` keeps the first
    #: :data:`MAX_REPORTED_ERRORS`): Data Access serves these records back (``/batches/{id}/failed``).
    failed_records: dict[str, set[int]] = field(default_factory=dict)
    #: Files that failed whole (not JSON, not Parquet, a column that cannot hold its field).
    failed_files: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    @property
    def failed_record_count(self) -> int:
        """Records named by at least one error (a record with two bad fields counts once)."""
        return sum(len(records) for records in self.failed_records.values())

    def add_record_error(self, error: RecordError) -> None:
        self.error_count += 1
        self.failed_records.setdefault(error.file, set()).add(error.record)
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error.to_json())

    def add_file_error(self, file: str, reason: str) -> None:
        self.error_count += 1
        self.failed_files.add(file)
        self.errors.append({"code": "ING-1101-400", "description": f"file {file}: {reason}", "file": file})


def ingest_files(files: list[tuple[str, Path]], fmt: str, kind: str, out_dir: Path) -> IngestResult:
    """Validate and convert ``files`` (name, path) of one batch into Parquet parts under ``out_dir``.

    Nothing is written when any record is invalid: the caller removes ``out_dir`` and reports the errors.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    result = IngestResult()
    for name, path in files:
        try:
            if fmt == "parquet":
                _ingest_parquet(name, path, kind, out_dir, result)
            else:
                _ingest_json(name, path, kind, out_dir, result)
        except FileFormatError as exc:
            result.add_file_error(name, str(exc))
        except (pa.ArrowInvalid, OSError) as exc:
            if failures.is_disk_full(exc):
                raise  # the machine's fault, not the file's: the whole batch fails with it
            result.add_file_error(name, f"cannot be read as {fmt}: {exc}")
    return result


def _write_part(table: pa.Table, out_dir: Path, result: IngestResult) -> None:
    name = lake.part_name(len(result.parts))
    pq.write_table(table, out_dir / name, compression="zstd")
    result.parts.append((name, table.num_rows))
    result.records_written += table.num_rows


def _ingest_json(name: str, path: Path, kind: str, out_dir: Path, result: IngestResult) -> None:
    pending: list[dict[str, Any]] = []
    for index, record in enumerate(iter_json_records(path), start=1):
        result.records_read += 1
        problems = validate_record(record, kind)
        if isinstance(record, dict):
            record, mistyped = typed_record(record, kind)
            problems += mistyped
        for field_name, reason in problems:
            result.add_record_error(RecordError(name, index, field_name, reason))
        if problems or not result.ok:
            pending.clear()  # the batch fails: keep validating, stop converting
            continue
        assert isinstance(record, dict)
        pending.append(record)
        if len(pending) >= PART_ROWS:
            _write_part(records_to_table(pending, kind), out_dir, result)
            pending = []
    if pending and result.ok:
        _write_part(records_to_table(pending, kind), out_dir, result)


def _bad_rows(mask: pa.ChunkedArray | pa.Array) -> list[int]:
    filled = pc.fill_null(mask, True)
    return [i for i, bad in enumerate(filled.to_pylist()) if bad]


def _identity_count(column: pa.ChunkedArray) -> pa.Array:
    """Identities per row of an ``identityMap`` column stored as a map or as a struct of lists."""
    column = column.combine_chunks()
    if pa.types.is_map(column.type):
        # Sum the identity lists of each row's entries through the map's offsets.
        per_entry = pc.fill_null(pc.list_value_length(column.items), 0).to_numpy(zero_copy_only=False)
        cumulative = np.concatenate([[0], np.cumsum(per_entry)])
        offsets = column.offsets.to_numpy()
        return pa.array(cumulative[offsets[1:]] - cumulative[offsets[:-1]])
    if pa.types.is_struct(column.type):
        total = pa.array([0] * len(column), pa.int64())
        for i in range(column.type.num_fields):
            child = pc.struct_field(column, [i])
            if pa.types.is_list(child.type) or pa.types.is_large_list(child.type):
                total = pc.add(total, pc.fill_null(pc.list_value_length(child), 0))
        return pc.if_else(pc.is_null(column), 0, total)
    raise FileFormatError(f"identityMap has type {column.type}; expected a map of namespace -> identities")


def _parquet_problems(batch: pa.RecordBatch, kind: str) -> tuple[dict[int, list[tuple[str, str]]], pa.Array | None]:
    """Problems per row of one record batch, and the parsed timestamps when they were text."""
    bad: dict[int, list[tuple[str, str]]] = {}
    table = pa.Table.from_batches([batch])
    for row in _bad_rows(pc.less_equal(_identity_count(table["identityMap"]), 0)):
        bad.setdefault(row, []).append(("identityMap", "holds no identity"))
    parsed: pa.Array | None = None
    if kind == EVENT:
        for column in ("_id", "eventType"):
            values = table[column]
            empty = pc.equal(pc.utf8_length(pc.cast(values, pa.string())), 0)
            for row in _bad_rows(pc.or_kleene(pc.is_null(values), empty)):
                bad.setdefault(row, []).append((column, "is required and must be a non-empty string"))
        timestamps = table["timestamp"]
        if pa.types.is_timestamp(timestamps.type):
            for row in _bad_rows(pc.is_null(timestamps)):
                bad.setdefault(row, []).append(("timestamp", "is required (RFC 3339 date-time)"))
        else:
            values = [parse_rfc3339(v) for v in timestamps.to_pylist()]
            for row, value in enumerate(values):
                if value is None:
                    bad.setdefault(row, []).append(("timestamp", "must be an RFC 3339 date-time with an offset"))
            parsed = pa.array(values, pa.timestamp("us", tz="UTC"))
    return bad, parsed


def _ingest_parquet(name: str, path: Path, kind: str, out_dir: Path, result: IngestResult) -> None:
    """Validate a Parquet upload batch by batch (files of several GB never sit in memory whole); keep it
    byte-for-byte when valid, or rewrite it with text timestamps parsed."""
    source = pq.ParquetFile(path)
    required = ["identityMap"] + (["_id", "timestamp", "eventType"] if kind == EVENT else [])
    missing = [c for c in required if c not in source.schema_arrow.names]
    if missing:
        for column in missing:
            result.add_record_error(RecordError(name, 1, column, "is required but the file has no such column"))
        result.failed_files.add(name)
        return
    misfits = parquet_misfits(source.schema_arrow, kind)
    for column, reason in misfits:
        result.add_record_error(RecordError(name, 1, column, reason))
    if misfits:
        result.failed_files.add(name)
        return
    rewrite = kind == EVENT and not pa.types.is_timestamp(source.schema_arrow.field("timestamp").type)
    target = out_dir / lake.part_name(len(result.parts))
    writer: pq.ParquetWriter | None = None
    offset = 0
    try:
        for batch in source.iter_batches(batch_size=65_536):
            result.records_read += batch.num_rows
            bad, parsed = _parquet_problems(batch, kind)
            for row in sorted(bad):
                for field_name, reason in bad[row]:
                    result.add_record_error(RecordError(name, offset + row + 1, field_name, reason))
            offset += batch.num_rows
            if rewrite and result.ok:
                fixed = batch.set_column(batch.schema.get_field_index("timestamp"), "timestamp", parsed)
                if writer is None:
                    writer = pq.ParquetWriter(target, fixed.schema, compression="zstd")
                writer.write_batch(fixed)
    finally:
        if writer is not None:
            writer.close()
    if not result.ok:
        return
    if not rewrite:
        shutil.copyfile(path, target)  # a valid Parquet file is kept byte-for-byte
    result.parts.append((target.name, offset))
    result.records_written += offset

