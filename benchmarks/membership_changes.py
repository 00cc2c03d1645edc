"""``python -m benchmarks.membership_changes [WRITES] [ROWS]``: what one profile's membership lookup costs after
WRITES per-profile writes (micro-batches of ROWS evaluations over 1M profile ids, as streaming writes them) since
the last job, with the change files compacted (docs/architecture.md, "Segment membership") and without.

The store without compaction gets the very files the writes wrote (written beside it: applying there would
look up through every earlier file at each write). Prints each write's time with compaction (p50, p99, max:
the max is a write that merged a higher tier), the change files each store is left with, and a lookup's p50 in
each (after one warm-up lookup, so footers of cached files are read once).
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from openseg.segmentation.membership import LogPosition, MembershipStore, write_atomically
from openseg.segmentation.membership.changes import file_name, position_metadata
from openseg.segmentation.membership.layout import CHANGES_SCHEMA


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _lookup_ms(store: MembershipStore, profile_ids: list[str]) -> float:
    store.lookup(None, profile_ids[:1])
    times = []
    for profile_id in profile_ids:
        start = time.perf_counter()
        store.lookup(None, [profile_id])
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(root: Path, writes: int = 2_000, rows: int = 100, lookups: int = 20) -> str:
    compacted, plain = MembershipStore(root / "compacted"), MembershipStore(root / "plain", fan_in=0)
    chosen = random.Random(1)
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    MembershipStore(root / "warm-up").apply(None, {"p": {"S": True}}, at)  # the first write in a process: ~0.2 s
    touched: list[str] = []
    apply_ms = []
    for n in range(1, writes + 1):
        evaluations = {f"p{chosen.randrange(1_000_000):07d}": {"S": chosen.random() < 0.5} for _ in range(rows)}
        touched += list(evaluations)[:1]
        position = LogPosition("bench", n - 1, n)
        start = time.perf_counter()
        written = compacted.apply(None, evaluations, at + dt.timedelta(seconds=n), position)
        apply_ms.append((time.perf_counter() - start) * 1000)
        table = pa.Table.from_pylist(sorted(written, key=lambda row: row["_profile_id"]), schema=CHANGES_SCHEMA)
        write_atomically(table.replace_schema_metadata(position_metadata([position])),
                         plain.root / "changes" / file_name(n, n))
    probes = chosen.sample(touched, lookups)
    assert compacted.lookup(None, probes) == plain.lookup(None, probes)
    return (f"{writes} writes of {rows} evaluations: write p50 {_p(apply_ms, 0.5):.1f} ms, p99 {_p(apply_ms, 0.99):.1f} ms, "
            f"max {max(apply_ms):.1f} ms with compaction\n"
            f"change files: {len(compacted.changes(None))} compacted, {len(plain.changes(None))} without\n"
            f"one profile's lookup p50: {_lookup_ms(compacted, probes):.1f} ms compacted, "
            f"{_lookup_ms(plain, probes):.1f} ms without")


def main() -> None:
    writes = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    with tempfile.TemporaryDirectory() as folder:
        print(measure(Path(folder), writes, rows))


if __name__ == "__main__":
    main()
