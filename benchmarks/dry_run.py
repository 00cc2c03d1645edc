"""``python -m benchmarks.dry_run``: how long a segment dry run takes, and that the job after agrees.

A job of ten segments writes a membership over the cached data set's merged store (``plain/``); then each
of four proposed expressions is dry-run against the first segment's membership (the median of three runs
is printed), and the last one is run as a job of that segment to check that its ``realized`` / ``existing``
/ ``exited`` equal the dry run's would enter / stay / exit.

Environment: ``BENCH_SIZE`` (``100k`` default, ``1m``, ``10m``) and ``BENCH_SEED`` as for ``make bench``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.run import DEFAULT_SEED, ensure_data
from benchmarks.segments import mix
from openseg.engines.duckdb import DuckDBEngine
from openseg.pql import parse
from openseg.segmentation import membership
from openseg.segmentation.dry_run import dry_run
from openseg.segmentation.evaluate import evaluate_store

RUNS = 3


def main() -> None:
    directory, manifest, _ = ensure_data(os.environ.get("BENCH_SIZE", "100k"),
                                         int(os.environ.get("BENCH_SEED", DEFAULT_SEED)))
    store, as_of, engine = directory / "plain", manifest.as_of_time, DuckDBEngine()
    segments = [(s.id, parse(s.pql())) for s in mix(100) if not s.references][:10]
    with tempfile.TemporaryDirectory() as scratch:
        members = membership.MembershipStore(Path(scratch))
        started = time.perf_counter()
        job = evaluate_store(engine, store, segments, as_of, members, None, "first")
        membership.publish(job.staged)
        print(f"{manifest.profiles:,} profiles, {manifest.events:,} events; job of {len(segments)} segments "
              f"{time.perf_counter() - started:.2f} s")
        state = job.staged.state
        target = segments[0][0]
        result = None
        for _, proposal in segments[:4]:
            times = []
            for _ in range(RUNS):
                started = time.perf_counter()
                result = dry_run(engine, store, target, proposal, as_of, members, state)
                times.append(time.perf_counter() - started)
            print(f"dry run {statistics.median(times):.2f} s: enter {result.would_enter:,}, exit "
                  f"{result.would_exit:,}, stay {result.would_stay:,}")
        assert result is not None
        after = evaluate_store(engine, store, [(target, segments[3][1])], as_of, members, state, "after")
        counts = after.counts[target]
        agrees = (counts["realized"], counts["existing"], counts["exited"]) == (
            result.would_enter, result.would_stay, result.would_exit)
        print(f"the job after: {counts} ({'agrees' if agrees else 'DIFFERS'})")
        if not agrees:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
