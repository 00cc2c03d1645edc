"""The failed records of a failed batch, kept for Data Access (``GET /export/batches/{id}/failed``).

AEP lets a user download what a failed batch could not ingest, fix it and upload it again. openseg keeps,
per input file: the whole file when it failed whole (not JSON, a Parquet column that cannot hold its field),
else only its failed records, in the file's own format (JSON lines, or Parquet with the file's schema).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from openseg.atomic_files import StagedDir
from openseg.catalog.ingestion import IngestResult
from openseg.catalog.records import FileFormatError, iter_json_records


def failed_dir(home: Path, sandbox_id: str, batch_id: str) -> Path:
    """Where the failed records of a batch are kept: beside the lake, never inside it (readers list the lake)."""
    return home / "failed" / sandbox_id / batch_id


def keep_failed_records(files: list[tuple[str, Path]], fmt: str, result: IngestResult, target: Path) -> None:
    """Write the failed records of ``files`` under ``target``, published whole in one rename."""
    with StagedDir(target) as staged:
        for name, path in files:
            out = staged.path / name
            if name in result.failed_files:
                shutil.copyfile(path, out)
            elif name in result.failed_records:
                wanted = result.failed_records[name]
                if fmt == "parquet":
                    _parquet_rows(path, wanted, out)
                else:
                    _json_records(path, wanted, out)
        staged.publish()


def _json_records(path: Path, wanted: set[int], out: Path) -> None:
    with out.open("w", encoding="utf-8") as handle:
        try:
            for number, record in enumerate(iter_json_records(path), start=1):
                if number in wanted:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        except FileFormatError:
            return  # the records before the unreadable part are kept; the batch's errors name the rest


def _parquet_rows(path: Path, wanted: set[int], out: Path) -> None:
    source = pq.ParquetFile(path)
    writer = pq.ParquetWriter(out, source.schema_arrow)
    try:
        offset = 0
        for batch in source.iter_batches(batch_size=65_536):
            rows = [i for i in range(batch.num_rows) if offset + i + 1 in wanted]
            if rows:
                writer.write_table(pa.Table.from_batches([batch.take(pa.array(rows))]))
            offset += batch.num_rows
    finally:
        writer.close()


def failed_files(home: Path, sandbox_id: str, batch_id: str) -> dict[str, Path]:
    """The kept files of a failed batch by name (none for a batch that did not fail)."""
    folder = failed_dir(home, sandbox_id, batch_id)
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


def remove_failed_records(home: Path, sandbox_id: str, batch_id: str) -> None:
    shutil.rmtree(failed_dir(home, sandbox_id, batch_id), ignore_errors=True)
