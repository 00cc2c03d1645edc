"""Where batches live in the data lake: ``{lake}/{sandboxId}/{datasetId}/{batchId}/part-NNNNN.parquet``.

A lake may be local or on an object store: :class:`openseg.lake_files.Lake` (``settings.data_lake``) places,
stages and removes folders in either; the helpers here name a local lake's folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def dataset_dir(lake: Path, sandbox_id: str, dataset_id: str) -> Path:
    return lake / sandbox_id / dataset_id


def batch_dir(lake: Path, sandbox_id: str, dataset_id: str, batch_id: str) -> Path:
    return dataset_dir(lake, sandbox_id, dataset_id) / batch_id


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
