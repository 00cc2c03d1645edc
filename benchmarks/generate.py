"""Seeded synthetic XDM data for the benchmarks: ``python -m benchmarks.generate --size 100k --out DIR``.

Writes, under ``DIR``:

- ``manifest.json``: seed, sizes, the fixed ``as_of`` every relative window is measured from, files;
- ``plain/``: the merged profile store layout of docs/architecture.md, already stitched and merged:
  ``profiles.parquet`` (``_profile_id`` + XDM columns), ``events.parquet`` (sorted by ``_profile_id,
  timestamp``) and ``identities.parquet``: what the hand-written baselines and openseg's engine read;
- ``ingest/profiles/`` and ``ingest/events/``: the XDM records a user would upload through batch
  ingestion (``identityMap``, no ``_profile_id``; some persons split into two fragments that only
  stitching joins), as Parquet parts; with ``--jsonl`` also as JSON Lines under ``ingest-jsonl/``.

Persons are generated in chunks (each with its own seeded random generator) in ``_profile_id`` order,
so memory stays bounded by the chunk size and no global sort is needed. The same seed, size and chunk
size give byte-identical files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.activity import WINDOW_DAYS, make_events
from benchmarks.population import (
    crm_flags,
    fragments_table,
    identities_table,
    make_people,
    processing_order,
    profiles_table,
)

UTC = dt.UTC
#: The evaluation time of the benchmark data: events fall in the 180 days before it.
AS_OF = dt.datetime(2025, 6, 30, tzinfo=UTC)
SIZES = {"100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
CHUNK_SIZE = 200_000
#: Small row groups let DuckDB scan one file with all its threads.
ROW_GROUP_SIZE = 131_072
MAX_JSONL_PROFILES = 1_000_000
#: The nominal dataset the merged profiles come from (openseg assigns real ids at ingestion).
SOURCE_DATASET = "benchProfiles"
_SIZE = re.compile(r"^(\d+)([km]?)$")


def parse_size(text: str) -> int:
    """A profile count from ``100k``, ``1m``, ``10m``, ``2k`` or a plain number.

    Raises:
        ValueError: The text is not a positive count.
    """
    match = _SIZE.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"size must be a positive count such as 100k, 1m, 10m or 2000, not {text!r}")
    return int(match.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2)]


#: Layout 2 added ``_primaryNamespace`` to ``plain/profiles.parquet``, as the profile store has it; layout 3
#: writes ``loyalty.joinDate`` as the date-time XDM says it is (a date was refused at ingestion).
LAYOUT = 3


@dataclass(frozen=True)
class Manifest:
    """What was generated, and the ``as_of`` the data (and every segment window) is relative to."""

    seed: int
    profiles: int
    fragments: int
    events: int
    as_of: str
    window_days: int
    chunk_size: int
    jsonl: bool
    #: The layout of ``plain/`` (``LAYOUT``); cached data of another layout is generated again.
    layout: int = 1
    plain_profiles: str = "plain/profiles.parquet"
    plain_events: str = "plain/events.parquet"
    plain_identities: str = "plain/identities.parquet"
    ingest_profiles: str = "ingest/profiles"
    ingest_events: str = "ingest/events"
    ingest_jsonl_profiles: str = "ingest-jsonl/profiles"
    ingest_jsonl_events: str = "ingest-jsonl/events"

    @property
    def as_of_time(self) -> dt.datetime:
        """``as_of`` as a naive UTC datetime, the form the Parquet ``TIMESTAMP`` columns compare with."""
        return dt.datetime.fromisoformat(self.as_of).astimezone(UTC).replace(tzinfo=None)

    def save(self, directory: Path) -> None:
        """Writes ``manifest.json`` into ``directory``."""
        text = json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"
        (directory / "manifest.json").write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        """Reads ``manifest.json`` from a generated data directory."""
        return cls(**json.loads((directory / "manifest.json").read_text(encoding="utf-8")))


class _Sink:
    """Appends chunk tables to one Parquet file, casting each chunk to the first chunk's schema."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, table.schema)
        elif table.schema != self._writer.schema:
            table = table.cast(self._writer.schema)
        self._writer.write_table(table, row_group_size=ROW_GROUP_SIZE)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _write_part(table: pa.Table, root: Path, kind: str, number: int, jsonl: bool) -> None:
    """Writes one chunk of ingest records: ``ingest/{kind}/`` Parquet, ``ingest-jsonl/{kind}/`` JSON Lines."""
    directory = root / "ingest" / kind
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, directory / f"part-{number:05d}.parquet", row_group_size=ROW_GROUP_SIZE)
    if jsonl:
        directory = root / "ingest-jsonl" / kind
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / f"part-{number:05d}.jsonl").open("w", encoding="utf-8") as out:
            for batch in table.to_batches(max_chunksize=10_000):
                for record in batch.to_pylist():
                    out.write(json.dumps(_xdm_json(record), separators=(",", ":")) + "\n")


def _xdm_json(value: Any) -> Any:
    """Arrow's Python values as XDM JSON: no null fields, maps as objects, RFC 3339 UTC times."""
    if isinstance(value, dict):
        return {k: _xdm_json(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        if value and isinstance(value[0], tuple):  # a map: list of (key, value) pairs
            return {k: _xdm_json(v) for k, v in value}
        return [_xdm_json(v) for v in value]
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return stamp.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def _chunks(count: int, seed: int, chunk_size: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    has_crm = crm_flags(count, seed)
    order = processing_order(has_crm)
    for number, start in enumerate(range(0, count, chunk_size)):
        persons = order[start : start + chunk_size]
        yield number, persons, has_crm[persons]


def generate(
    out: Path,
    profiles: int,
    seed: int,
    *,
    as_of: dt.datetime = AS_OF,
    chunk_size: int = CHUNK_SIZE,
    jsonl: bool = False,
) -> Manifest:
    """Generates a benchmark data set into ``out`` (replacing it), atomically.

    Args:
        out: The directory to create; written beside it first, then renamed into place.
        profiles: How many persons (merged profiles).
        seed: The random seed; the same seed and sizes give byte-identical files.
        as_of: The evaluation time: events fall in the 180 days before it.
        chunk_size: Persons per chunk; bounds memory.
        jsonl: Also write the ingest records as JSON Lines (small sizes only).

    Returns:
        The manifest written to ``out/manifest.json``.

    Raises:
        ValueError: JSON Lines requested for more than a million profiles.
    """
    if jsonl and profiles > MAX_JSONL_PROFILES:
        raise ValueError(f"--jsonl is for small sizes: at most {MAX_JSONL_PROFILES} profiles")
    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    plain = partial / "plain"
    sinks = {name: _Sink(plain / f"{name}.parquet") for name in ("profiles", "events", "identities")}
    ingest_time = pa.scalar(int(as_of.timestamp() * 1_000_000), type=pa.timestamp("us"))
    fragments = events = 0
    try:
        for number, persons, has_crm in _chunks(profiles, seed, chunk_size):
            rng = np.random.default_rng([seed, 1, number])
            people = make_people(persons, has_crm, rng, as_of)
            sinks["profiles"].write(profiles_table(people, as_of, SOURCE_DATASET))
            sinks["identities"].write(identities_table(people))
            records = fragments_table(people)
            _write_part(records, partial, "profiles", number, jsonl)
            fragments += records.num_rows
            table = make_events(people, rng, as_of, first_number=events)
            events += table.num_rows
            sinks["events"].write(table.append_column("_ingestTime", pa.repeat(ingest_time, table.num_rows)))
            xdm = table.drop_columns(["_profile_id"])
            xdm = xdm.set_column(
                xdm.schema.get_field_index("timestamp"),
                "timestamp",
                xdm["timestamp"].cast(pa.timestamp("us", tz="UTC")),
            )
            _write_part(xdm, partial, "events", number, jsonl)
    finally:
        for sink in sinks.values():
            sink.close()
    stamp = as_of.astimezone(UTC).isoformat().replace("+00:00", "Z")
    manifest = Manifest(
        seed=seed,
        profiles=profiles,
        fragments=fragments,
        events=events,
        as_of=stamp,
        window_days=WINDOW_DAYS,
        chunk_size=chunk_size,
        jsonl=jsonl,
        layout=LAYOUT,
    )
    manifest.save(partial)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(partial, out)
    return manifest


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="100k", help="profiles: 100k, 1m, 10m (or e.g. 2k, 5000)")
    parser.add_argument("--out", type=Path, required=True, help="directory to (re)create")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)
    parser.add_argument("--jsonl", action="store_true", help="also write ingest records as JSON Lines")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    manifest = generate(
        args.out, parse_size(args.size), args.seed, chunk_size=args.chunk_size, jsonl=args.jsonl
    )
    elapsed = time.perf_counter() - started
    print(
        f"{manifest.profiles} profiles ({manifest.fragments} fragments), {manifest.events} events, "
        f"as_of {manifest.as_of}: {args.out} in {elapsed:.1f} s"
    )


if __name__ == "__main__":
    main()
