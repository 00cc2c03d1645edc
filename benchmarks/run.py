"""``python -m benchmarks.run`` (``make bench``): generate data if needed, measure, write the report.

Environment:
    BENCH_SIZE: ``100k`` (default), ``1m`` or ``10m`` profiles. Above 1M, the scale report instead: the segment
        jobs (DuckDB, hand-written, Spark), and the build at 1M and at the size, written into the scale section
        of ``docs/benchmarks.md`` (see ``benchmarks.scale``); the rest of the report stays as the last 1M run left it.
    BENCH_SEED: the data seed (default 42); data is cached under ``benchmarks/data/{size}-seed{seed}``.
    BENCH_REPEAT: runs per measurement (default 5 at 100k and below, 3 above); the median is reported.
    BENCH_NAIVE_SAMPLE: profiles the naive evaluator runs on before extrapolating (default 100000).

The hand-written baselines and the naive evaluator are measured here; openseg's own figures come from
``benchmarks.openseg_side.measure_openseg`` and are reported as "not measured" until it is wired.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console

from benchmarks.generate import LAYOUT, Manifest, generate, parse_size
from benchmarks.handwritten import count_one_pass, count_per_segment
from benchmarks.measure import measure
from benchmarks.naive import NaiveResult, run_naive
from benchmarks.openseg_side import OpensegFigures, measure_openseg
from benchmarks.report import BenchResults, Machine, print_summary, write_report
from benchmarks.segments import SUITE, mix

PACKAGE = Path(__file__).resolve().parent
DATA_ROOT = PACKAGE / "data"
REPORT = PACKAGE.parent / "docs" / "benchmarks.md"
DEFAULT_SEED = 42
#: Above this many profiles ``make bench`` runs the scale report (``benchmarks.scale.scale_report``) instead.
SCALE_ABOVE = 1_000_000
DEFAULT_NAIVE_SAMPLE = 100_000


def ensure_data(
    size: str, seed: int, root: Path = DATA_ROOT, console: Console | None = None
) -> tuple[Path, Manifest, float | None]:
    """The cached data set for ``size`` and ``seed``, generated first if missing.

    Returns:
        Its directory, its manifest, and the generation time (None when it was already cached).
    """
    directory = root / f"{size}-seed{seed}"
    if (directory / "manifest.json").exists() and Manifest.load(directory).layout == LAYOUT:
        return directory, Manifest.load(directory), None
    if console:
        console.print(f"generating {size} profiles (seed {seed}) into {directory} ...")
    started = time.perf_counter()
    manifest = generate(directory, parse_size(size), seed)
    return directory, manifest, time.perf_counter() - started


def _compare(label: str, expected: Mapping[str, int], actual: Mapping[str, int]) -> list[str]:
    return [
        f"{label}: {key} has {actual.get(key)} members, expected {count}"
        for key, count in expected.items()
        if actual.get(key) != count
    ]


def run(
    size: str,
    seed: int,
    repeat: int,
    naive_sample: int,
    report_path: Path = REPORT,
    data_root: Path = DATA_ROOT,
    console: Console | None = None,
) -> BenchResults:
    """Runs every available measurement and writes the report.

    Args:
        size: Size label (``100k``, ``1m``, ``10m`` or any count ``parse_size`` reads).
        seed: Data seed.
        repeat: Runs per timed measurement.
        naive_sample: Profiles the naive evaluator evaluates before extrapolating.
        report_path: Where the markdown report goes.
        data_root: Where generated data is cached.
        console: Where progress and the summary are printed (default: the terminal).
    """
    console = console or Console()
    data_dir, manifest, generation_seconds = ensure_data(size, seed, data_root, console)
    suite, hundred = SUITE, mix()

    console.print("hand-written one-pass SQL, 10 segments ...")
    hw10 = measure("handwritten-10", count_one_pass, data_dir, suite, repeat=repeat)
    console.print("hand-written one-pass SQL, 100 segments ...")
    hw100 = measure("handwritten-100", count_one_pass, data_dir, hundred, repeat=repeat)
    console.print("hand-written SQL, one query per segment, 100 segments ...")
    per100 = measure("per-segment-100", count_per_segment, data_dir, hundred, repeat=repeat)
    sample = naive_sample if manifest.profiles > naive_sample else None
    console.print(f"naive Python evaluator, 10 segments, {sample or manifest.profiles:,} profiles ...")
    naive_run = measure("naive-10", run_naive, data_dir, suite, sample, repeat=1)
    naive: NaiveResult = naive_run.result

    # The suite's per-segment counts are a cross-check only; P2 times the per-segment way on the 100.
    mismatches = _compare("per-segment (10)", hw10.result, count_per_segment(data_dir, suite))
    mismatches += _compare("per-segment (100)", hw100.result, per100.result)
    if not naive.sampled:
        mismatches += _compare("naive (10)", hw10.result, naive.counts)

    openseg: OpensegFigures | None = None
    note = ""
    try:
        openseg = measure_openseg(data_dir, manifest, suite, hundred, repeat)
    except NotImplementedError as missing:
        note = str(missing)
    if openseg is not None:
        # openseg's members must be the hand-written query's, segment by segment.
        for label, figure, baseline, segments in (("openseg job (10)", openseg.job_10, hw10, suite),
                                                   ("openseg job (100)", openseg.job_100, hw100, hundred)):
            if figure is not None:
                expected = {s.key: baseline.result[s.key] for s in segments}
                actual = {s.key: figure.result["members"].get(s.id) for s in segments}
                mismatches += _compare(label, expected, actual)

    results = BenchResults(
        size=size,
        manifest=manifest,
        machine=Machine.detect(),
        generation_seconds=generation_seconds,
        handwritten_10=hw10,
        handwritten_100=hw100,
        per_segment_100=per100,
        naive=naive,
        naive_peak_rss=naive_run.peak_rss,
        openseg=openseg,
        openseg_note=note,
        mismatches=mismatches,
    )
    write_report(results, report_path)
    print_summary(results, console)
    console.print(f"report written to {report_path}")
    return results


def main() -> None:
    """Command line entry point; settings come from the environment (see the module docstring)."""
    size = os.environ.get("BENCH_SIZE", "100k")
    seed = int(os.environ.get("BENCH_SEED", DEFAULT_SEED))
    default_repeat = 5 if parse_size(size) <= 100_000 else 3
    repeat = int(os.environ.get("BENCH_REPEAT", default_repeat))
    naive_sample = int(os.environ.get("BENCH_NAIVE_SAMPLE", DEFAULT_NAIVE_SAMPLE))
    # Off a terminal (make's output piped to a log) rich would wrap the table at 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=150)
    if parse_size(size) > SCALE_ABOVE:
        # The report's own measures (the naive evaluator, the service under load, streaming) are stated for 1M
        # profiles; above that, make bench measures how the job, Spark and the build grow (issue #17).
        from benchmarks.scale import scale_report

        sys.exit(1 if scale_report(size, seed, REPORT, console) else 0)
    results = run(size, seed, repeat, naive_sample, console=console)
    sys.exit(1 if results.mismatches else 0)


if __name__ == "__main__":
    main()
