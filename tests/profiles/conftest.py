"""Fixtures for the profile store tests: a tiny lake of Parquet files written with pyarrow."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openseg.engines.duckdb import DuckDBEngine
from openseg.profiles import BuildStats, MergePolicySpec, SourceFile, build_profile_store

#: The engine the store tests build on.
ENGINE = DuckDBEngine(threads=2)

IDENTITY_MAP_TYPE = pa.map_(
    pa.string(), pa.list_(pa.struct([pa.field("id", pa.string()), pa.field("primary", pa.bool_())]))
)


def ids(*pairs: tuple[str, str], primary: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """An identityMap from ``(namespace, id)`` pairs; ``primary`` names the primary id."""
    identity_map: dict[str, list[dict[str, Any]]] = {}
    for namespace, identity in pairs:
        identity_map.setdefault(namespace, []).append({"id": identity, "primary": identity == primary})
    return identity_map


class Lake:
    """Writes record files under a temporary directory and remembers them as sources."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sources: list[SourceFile] = []

    def add(
        self,
        kind: Literal["profile", "event"],
        records: Sequence[dict[str, Any]],
        dataset: str = "ds-crm",
        ingest: datetime = datetime(2024, 1, 1),
        identity_as: Literal["map", "struct"] = "map",
        schema: pa.Schema | None = None,
    ) -> SourceFile:
        """Write ``records`` as one Parquet file of a new batch and register it.

        ``identity_as="struct"`` lets pyarrow infer ``identityMap`` as a struct of lists, as JSON
        conversion does; ``"map"`` writes the canonical map type.
        """
        if schema is not None:
            table = pa.Table.from_pylist(list(records), schema=schema)
        elif identity_as == "struct":
            table = pa.Table.from_pylist(list(records))
        else:
            rest = [{k: v for k, v in r.items() if k != "identityMap"} for r in records]
            table = pa.Table.from_pylist(rest) if any(rest) else pa.table({})
            maps = [None if r.get("identityMap") is None else list(r["identityMap"].items()) for r in records]
            if table.num_columns == 0:
                table = pa.table({"identityMap": pa.array(maps, IDENTITY_MAP_TYPE)})
            else:
                table = table.append_column("identityMap", pa.array(maps, IDENTITY_MAP_TYPE))
        batch = f"batch{len(self.sources):03d}"
        path = self.root / f"{dataset}-{batch}.parquet"
        pq.write_table(table, path)
        source = SourceFile(str(path), dataset, batch, ingest, kind)
        self.sources.append(source)
        return source

    def build(self, policy: MergePolicySpec | None = None, name: str = "store") -> tuple[Path, BuildStats]:
        """Build the store of ``policy`` (default: pdg + timestampOrdered) from every file so far."""
        store = self.root / "profiles" / name
        stats = build_profile_store(self.sources, policy or MergePolicySpec("mp-default"), store, engine=ENGINE)
        return store, stats


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    """An empty lake in a temporary directory."""
    (tmp_path / "profiles").mkdir()
    return Lake(tmp_path)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of a Parquet file, maps as dicts."""
    return pq.read_table(path).to_pylist(maps_as_pydicts="strict")
