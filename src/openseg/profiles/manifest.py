"""``manifest.json``: what a build of the profile store was made from, and what it produced.

The manifest records the merge policy, every source file in ingest order with a fingerprint of its
content (size and modification time, so a file rewritten in place, as erasing a profile does, is told
apart from the one the build read), the unified input schemas and the build statistics. A refresh
(:mod:`openseg.profiles.refresh`) compares it with the current sources to decide between doing
nothing, an incremental update and a full rebuild.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from openseg import lake_files
from openseg.profiles.merge_policy import MergePolicySpec
from openseg.profiles.reading import PROVENANCE
from openseg.profiles.sources import SourceFile, utc_naive
from openseg.profiles.store import schema_from_json, schema_to_json

FORMAT_VERSION = 3
"""Version 2 added source fingerprints, input schemas and the event record ids incremental refreshes need;
version 3 the primary-identity namespace column of ``profiles.parquet``. A store of another version is
rebuilt in full."""


def source_entry(source: SourceFile) -> dict[str, Any]:
    """A source as the manifest lists it, fingerprinted by its current size and modification time."""
    size, mtime_ns = lake_files.stat(source.path)
    return {
        "path": source.path,
        "datasetId": source.dataset_id,
        "batchId": source.batch_id,
        "ingestTime": utc_naive(source.ingest_time).isoformat() + "Z",
        "kind": source.kind,
        "size": size,
        "mtimeNs": mtime_ns,
    }


def write_manifest(
    path: Path,
    sources: Sequence[dict[str, Any]],
    policy: MergePolicySpec,
    stats: dict[str, Any],
    input_schemas: dict[str, pa.Schema],
) -> None:
    """Write ``manifest.json``.

    Args:
        path: The file to write.
        sources: The source entries (:func:`source_entry`), in ingest order.
        policy: The merge policy the build applied.
        stats: The build statistics as a dict.
        input_schemas: The unified schemas of the fragment (``"profile"``) and event sources.
    """
    manifest = {
        "formatVersion": FORMAT_VERSION,
        "builtAt": datetime.now(UTC).isoformat(),
        "policy": policy.to_dict(),
        "sources": list(sources),
        "stats": stats,
        "provenanceColumns": list(PROVENANCE),
        "inputSchemas": {kind: schema_to_json(schema) for kind, schema in input_schemas.items()},
    }
    path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")


def input_schemas(manifest: dict[str, Any]) -> dict[str, pa.Schema]:
    """The unified input schemas a manifest records (empty for a manifest older than version 2)."""
    return {kind: schema_from_json(fields) for kind, fields in manifest.get("inputSchemas", {}).items()}
