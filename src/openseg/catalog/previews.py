"""A batch's data preview (``GET /import/batches/{id}/datasets/{ds}/preview``): its first rows, as text; and
a dataset's (Data Access ``GET /export/datasets/{id}/preview``): its first records.

AEP's ``PreviewResponse`` gives columns (``cid``, ``name``) and rows keyed by ``cid`` whose values are
strings; a nested value (an object, a list, a number) is its JSON text. Columns are the records' top-level
fields in the order they first appear.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session

from openseg import lake_files
from openseg.catalog.records import FileFormatError, iter_json_records
from openseg.catalog.service import FORMATS, batch_files, get_batch, get_dataset, staged_files, successful_files
from openseg.errors import BadRequest, NotFound
from openseg.scope import Scope

#: Rows when ``nrow`` is 0 (its default) and the most a preview shows.
DEFAULT_ROWS = 100
MAX_ROWS = 1000


def batch_preview(session: Session, scope: Scope, batch_id: str, dataset_id: str, fmt: str | None,
                  rows: int) -> dict[str, Any]:
    """AEP's ``PreviewResponse`` of a batch: its uploads read as ``fmt`` while it is loading or processing, its
    Parquet in the lake once it is ``success``; empty for a failed or aborted batch (its uploads are gone).

    Raises:
        BadRequest: ``fmt`` missing or not json / parquet, or a file that cannot be read as it.
        NotFound: the batch, or ``dataset_id`` is not its dataset.
    """
    fmt = (fmt or "").lower()
    if fmt not in FORMATS:
        raise BadRequest(f"query parameter 'format' is required and must be one of {', '.join(FORMATS)}",
                         field="format")
    batch = get_batch(session, scope, batch_id)
    if batch.dataset_id != dataset_id:
        raise NotFound(f"batch '{batch_id}' has no dataset '{dataset_id}'", field="datasetId")
    ingested = batch.status == "success"
    listed = batch_files(session, batch.id) if ingested else staged_files(session, batch.id)
    fmt = "parquet" if ingested else fmt
    files = [f.path for f in listed if lake_files.exists(f.path)]
    return {"formatParams": {"format": fmt, "charset": "UTF-8", "header": True},
            "preview": preview(files, fmt, rows)}


def dataset_preview(session: Session, scope: Scope, dataset_id: str) -> dict[str, Any]:
    """Data Access's ``preview`` of a dataset: the first ``DEFAULT_ROWS`` records of its successful batches
    (oldest first) as ``{"data": [record, ...]}``, each record as ingested (its empty fields left out); no
    records yet is an empty list.

    Raises:
        NotFound: the dataset is not in the sandbox.
    """
    dataset = get_dataset(session, scope, dataset_id)
    records: list[dict[str, Any]] = []
    for data_file in successful_files(session, scope.sandbox_id, dataset.id):
        if len(records) >= DEFAULT_ROWS:
            break
        if lake_files.exists(data_file.path):
            records += _first_parquet_records(data_file.path, DEFAULT_ROWS - len(records), maps_as_pydicts="strict")
    return {"data": [json.loads(json.dumps(_without_nulls(r), default=_json_default)) for r in records]}


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def preview(files: list[str], fmt: str, rows: int) -> dict[str, Any]:
    """The first ``rows`` records of ``files`` (local paths or lake locations, read in order) as AEP's ``Preview``
    object.

    Raises:
        BadRequest: a file that cannot be read as ``fmt`` (naming it).
    """
    records: list[dict[str, Any]] = []
    for path in files:
        if len(records) >= rows:
            break
        try:
            records += _first_records(path, fmt, rows - len(records))
        except (FileFormatError, ValueError, OSError) as exc:
            name = path.rstrip("/").rpartition("/")[2]
            raise BadRequest(f"file '{name}' cannot be read as {fmt}: {exc}", field="format") from exc
    names: dict[str, str] = {}
    for record in records:
        for key in record:
            names.setdefault(key, str(len(names)))
    return {
        "columns": [{"cid": cid, "name": name} for name, cid in names.items()],
        "rows": [{names[k]: _text(v) for k, v in record.items() if v is not None} for record in records],
    }


def _first_parquet_records(location: str, count: int, maps_as_pydicts: Literal["lossy", "strict"] | None = None,
                           ) -> list[dict[str, Any]]:
    """The first ``count`` rows of a Parquet file; with ``maps_as_pydicts`` a map (``identityMap``) is a dict,
    else its list of (key, value) pairs."""
    found: list[dict[str, Any]] = []
    for batch in lake_files.parquet_file(location).iter_batches(batch_size=max(count, 1)):
        found += batch.to_pylist(maps_as_pydicts=maps_as_pydicts)[: count - len(found)]
        if len(found) >= count:
            break
    return found


def _first_records(location: str, fmt: str, count: int) -> list[dict[str, Any]]:
    if fmt == "parquet":
        return _first_parquet_records(location, count)
    found: list[dict[str, Any]] = []
    for record in iter_json_records(Path(location)):  # an upload not yet ingested: a local staged file
        if len(found) >= count:
            break
        found.append(record if isinstance(record, dict) else {"value": record})
    return found


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
