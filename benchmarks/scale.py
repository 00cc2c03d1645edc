"""``python -m benchmarks.scale``: how a segment job and the merged build grow with profiles (issue #17, P2b).

At ``BENCH_SIZE`` (default ``10m``: 10M profiles, about 100M events), in one run on the cached data set (generated
first if missing, timed):

- the hand-written one-pass SQL over the merged store, 10 and 100 segments (the baselines of P1 and P2);
- openseg's segment job over the same store, 10 and 100 segments: plan, membership diff and files, after a
  first job that makes the membership it diffs against (as a daily job would);
- the merged-profile build from the ingest files (stitching and merge, DuckDB capped at
  ``OPENSEG_BUILD_MEMORY_LIMIT``'s default, spilling beyond).

Each figure is the median of ``BENCH_REPEAT`` runs (default 1 at 10M) in a fresh process, with that process's
peak memory; the members of each openseg job are checked against the hand-written query's. The table is
printed; ``make bench`` (``benchmarks.run``) remains the full report.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from datetime import UTC
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.generate import parse_size
from benchmarks.handwritten import count_one_pass
from benchmarks.measure import Measurement, measure
from benchmarks.openseg_side import _pql, merged_build, segment_job
from benchmarks.run import DEFAULT_SEED, _compare, ensure_data
from benchmarks.segments import SUITE, mix

#: Issue #17's P2b goals at 10M profiles on 2 cores (seconds).
GOALS = {"job-10": 10.0, "job-100": 60.0, "build": 600.0}


def _gib(measurement: Measurement) -> str:
    return "—" if measurement.peak_rss is None else f"{measurement.peak_rss / 2**30:.2f} GiB"


def main() -> None:
    size = os.environ.get("BENCH_SIZE", "10m")
    seed = int(os.environ.get("BENCH_SEED", DEFAULT_SEED))
    repeat = int(os.environ.get("BENCH_REPEAT", 1 if parse_size(size) > 1_000_000 else 3))
    console = Console() if sys.stdout.isatty() else Console(width=150)
    data_dir, manifest, generated = ensure_data(size, seed, console=console)
    console.print(f"{manifest.profiles:,} profiles, {manifest.events:,} events"
                  + (f"; generated in {generated:.0f} s" if generated is not None else "; data taken from the cache"))
    store = str(data_dir / "plain")
    as_of = manifest.as_of_time.replace(tzinfo=UTC)
    suite, hundred = SUITE, mix()
    work = Path(tempfile.mkdtemp(prefix="openseg-scale-"))
    rows: list[tuple[str, Measurement, Measurement | None, float | None]] = []
    mismatches: list[str] = []
    try:
        for label, segments in (("10", suite), ("100", hundred)):
            console.print(f"hand-written one-pass SQL, {label} segments ...")
            baseline = measure(f"handwritten-{label}", count_one_pass, data_dir, segments, repeat=repeat)
            console.print(f"openseg segment job, {label} segments (a first job, then the measured ones) ...")
            out = str(work / f"m{label}")
            warm = segment_job(store, _pql(segments), as_of, None, out, "warm")["state"]
            job = measure(f"openseg-job-{label}", segment_job, store, _pql(segments), as_of, warm, out, repeat=repeat)
            expected = {s.key: baseline.result[s.key] for s in segments}
            actual = {s.key: job.result["members"].get(s.id) for s in segments}
            mismatches += _compare(f"openseg job ({label})", expected, actual)
            rows.append((f"segment job, {label} segments", job, baseline, GOALS[f"job-{label}"]))
            shutil.rmtree(out, ignore_errors=True)
        console.print("merged-profile build from the ingest files ...")
        build = measure("openseg-merged-build", merged_build, str(data_dir / "ingest"), str(work), repeat=1)
        rows.append(("merged-profile build", build, None, GOALS["build"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = Table(title=f"P2b at {size}: {manifest.profiles:,} profiles, {manifest.events:,} events")
    for column in ("measure", "openseg", "peak memory", "hand-written", "ratio", "goal", "met"):
        table.add_column(column)
    for name, figure, baseline, goal in rows:
        ratio = f"{figure.median / baseline.median:.2f}×" if baseline else "—"
        table.add_row(name, f"{figure.median:.1f} s", _gib(figure),
                      f"{baseline.median:.1f} s ({_gib(baseline)})" if baseline else "—", ratio,
                      f"≤ {goal:g} s" if goal else "—", "yes" if goal and figure.median <= goal else "no")
    console.print(table)
    for problem in mismatches:
        console.print(f"[red]{problem}[/red]")
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
