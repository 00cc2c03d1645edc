"""``python -m benchmarks.p1``: P1 alone, measured several times in one run to show its spread.

The 10-segment job (``benchmarks.openseg_side.segment_job``, against the membership of a first run, as a
daily job) and the hand-written one-pass query (``benchmarks.handwritten.count_one_pass``), ``P1_REPEAT``
runs each (default 5) in fresh processes, ``P1_ROUNDS`` times (default 2), alternating; prints each round's
runs and the ratio of the medians. ``BENCH_SIZE`` and ``BENCH_SEED`` as for ``make bench``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC
from pathlib import Path

from benchmarks.handwritten import count_one_pass
from benchmarks.measure import measure
from benchmarks.openseg_side import _pql, segment_job
from benchmarks.run import DEFAULT_SEED, ensure_data
from benchmarks.segments import SUITE


def main() -> None:
    size = os.environ.get("BENCH_SIZE", "1m")
    data_dir, manifest, _ = ensure_data(size, int(os.environ.get("BENCH_SEED", DEFAULT_SEED)))
    repeat, rounds = int(os.environ.get("P1_REPEAT", 5)), int(os.environ.get("P1_ROUNDS", 2))
    store, as_of = str(data_dir / "plain"), manifest.as_of_time.replace(tzinfo=UTC)
    work = Path(tempfile.mkdtemp(prefix="openseg-p1-"))
    try:
        warm = segment_job(store, _pql(SUITE), as_of, None, str(work / "m10"), "warm")["state"]
        for _ in range(rounds):
            handwritten = measure("handwritten-10", count_one_pass, data_dir, SUITE, repeat=repeat)
            job = measure("openseg-job-10", segment_job, store, _pql(SUITE), as_of, warm, str(work / "m10"),
                          repeat=repeat)
            print(f"hand-written {[round(r, 3) for r in handwritten.runs]} s, job {[round(r, 3) for r in job.runs]} s: "
                  f"{job.median / handwritten.median:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
