"""A batch's meta files (Data Access ``GET /export/batches/{id}/meta``), made from what the catalog keeps.

AEP names three entries under a batch's meta directory: ``row_errors``, ``input_files`` and
``row_errors_sample.json``. openseg answers ``input_files`` (the files uploaded to the batch: name and size)
and, when the batch has errors, ``row_errors_sample.json`` (the batch's ``errors``, the first 100; every failed
record itself is at ``/batches/{id}/failed``). ``row_errors`` (every row error, as files) is not kept.
"""

from __future__ import annotations

import json

from openseg.store.models import Batch, StagedFile


def meta_files(batch: Batch, uploaded: list[StagedFile]) -> dict[str, bytes]:
    """The meta files of ``batch`` by name, as the bytes a download gives."""
    files: dict[str, bytes] = {}
    if uploaded:
        listing = [{"name": f.name, "sizeInBytes": f.length} for f in uploaded]
        files["input_files"] = json.dumps(listing, indent=1).encode()
    if batch.errors:
        files["row_errors_sample.json"] = json.dumps(batch.errors, indent=1, ensure_ascii=False).encode()
    return files
