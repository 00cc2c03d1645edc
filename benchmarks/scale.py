"""``python -m benchmarks.scale``: how a segment job and the merged build grow with profiles (issue #17, P2b).

At ``BENCH_SIZE`` (default ``10m``: 10M profiles, about 100M events), in one run on the cached data set (generated
first if missing, timed):

- the hand-written one-pass SQL over the merged store, 10 and 100 segments (the baselines of P1 and P2);
- openseg's segment job over the same store, 10 and 100 segments: plan, membership diff and files, after a
  first job that makes the membership it diffs against (as a daily job would);
- the merged-profile build from the ingest files (stitching and merge, DuckDB capped at
  ``OPENSEG_BUILD_MEMORY_LIMIT``'s default, spilling beyond).

With ``BENCH_SPARK_MASTER`` (``local[2]``, ``local[1]``, ``spark://host:7077``) the same two jobs run on Spark
too (P7): in one process, the session started first and its start reported apart, then a first job and the
measured ones; ``BENCH_SPARK_CONF`` (``key=value;...``, default ``spark.driver.memory=6g``) sizes it. Spark's
members are checked against DuckDB's.

``BENCH_STEPS`` (default ``jobs,build``) picks the steps: ``jobs`` (the segment jobs, and Spark's with
``BENCH_SPARK_MASTER``) and ``build``.

Each figure is the median of ``BENCH_REPEAT`` runs (default 1 at 10M) in a fresh process, with that process's
peak memory (for Spark, the Python driver's: the JVM is a process of its own); the members of each openseg job
are checked against the hand-written query's. The table is printed; ``make bench`` (``benchmarks.run``) remains
the full report.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.generate import parse_size
from benchmarks.handwritten import count_one_pass
from benchmarks.measure import Measurement, MeasurementFailed, measure
from benchmarks.openseg_side import _pql, merged_build, segment_job
from benchmarks.run import DEFAULT_SEED, _compare, ensure_data
from benchmarks.segments import SUITE, mix
from openseg.config import parse_spark_conf
from openseg.pql import parse

#: Issue #17's P2b goals at 10M profiles on 2 cores (seconds).
GOALS = {"job-10": 10.0, "job-100": 60.0, "build": 600.0}
#: What ``BENCH_STEPS`` may name.
STEPS = ("jobs", "build")
#: P7: Spark local[2] at most this many times DuckDB's job, session start excluded.
SPARK_RATIO = 4.0
DEFAULT_SPARK_CONF = "spark.driver.memory=6g"
#: The build's DuckDB memory limit (``BENCH_BUILD_MEMORY``; default the service's ``OPENSEG_BUILD_MEMORY_LIMIT``).
BUILD_MEMORY = os.environ.get("BENCH_BUILD_MEMORY", "2GB")


def spark_jobs(store: str, segments: list[tuple[str, str]], as_of: datetime, out_dir: str, master: str,
               conf: tuple[tuple[str, str], ...], repeat: int) -> dict[str, Any]:
    """Segment jobs on Spark in this process: the session's start, a first job (the membership the measured
    ones diff against), then ``repeat`` measured jobs.

    Returns:
        ``session``: seconds to start the session and run a first statement; ``runs``: each measured job's
        seconds; ``members``: segment id -> members of the last job.
    """
    from openseg.engines.spark import SparkEngine
    from openseg.segmentation import membership
    from openseg.segmentation.evaluate import evaluate_store

    engine = SparkEngine(master=master, conf=conf)
    started = time.perf_counter()
    engine._session().sql("SELECT 1").collect()
    session = time.perf_counter() - started
    parsed = [(segment_id, parse(text)) for segment_id, text in segments]
    members = membership.MembershipStore(Path(out_dir))
    state = None
    runs: list[float] = []
    counts: dict[str, int] = {}
    for run in range(repeat + 1):
        started = time.perf_counter()
        evaluation = evaluate_store(engine, Path(store), parsed, as_of, members, members.state(state), f"spark{run}")
        membership.publish(evaluation.staged)
        if run:
            runs.append(time.perf_counter() - started)
        state = str(evaluation.staged.state.path)
        counts = {s: c["realized"] + c["existing"] for s, c in evaluation.counts.items()}
    return {"session": session, "runs": runs, "members": counts}


def _gib(measurement: Measurement) -> str:
    return "—" if measurement.peak_rss is None else f"{measurement.peak_rss / 2**30:.2f} GiB"


def main() -> None:
    size = os.environ.get("BENCH_SIZE", "10m")
    steps = {step.strip() for step in os.environ.get("BENCH_STEPS", ",".join(STEPS)).split(",")} - {""}
    if not steps or steps - set(STEPS):
        unknown = ", ".join(sorted(steps - set(STEPS))) or "none given"
        sys.exit(f"BENCH_STEPS: {unknown}; expected some of {', '.join(STEPS)}")
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
    spark_rows: list[tuple[str, Measurement, Measurement]] = []
    master = os.environ.get("BENCH_SPARK_MASTER")
    spark_conf = parse_spark_conf(os.environ.get("BENCH_SPARK_CONF", DEFAULT_SPARK_CONF))
    mismatches: list[str] = []
    try:
        for label, segments in ((("10", suite), ("100", hundred)) if "jobs" in steps else ()):
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
            console.print(f"  openseg {job.median:.1f} s ({_gib(job)}), hand-written {baseline.median:.1f} s ({_gib(baseline)})")
            shutil.rmtree(out, ignore_errors=True)
            if master:
                console.print(f"Spark ({master}) segment job, {label} segments (session, a first job, then the measured ones) ...")
                spark = measure(f"spark-job-{label}", spark_jobs, store, _pql(segments), as_of, str(work / f"s{label}"),
                                master, spark_conf, repeat, repeat=1)
                mismatches += _compare(f"Spark job ({label})", job.result["members"], spark.result["members"])
                spark_rows.append((f"segment job, {label} segments", spark, job))
                console.print(f"  Spark {statistics.median(spark.result['runs']):.1f} s "
                              f"(session start {spark.result['session']:.1f} s)")
                shutil.rmtree(work / f"s{label}", ignore_errors=True)
        if "build" in steps:
            console.print(f"merged-profile build from the ingest files (memory limit {BUILD_MEMORY}) ...")
            try:
                build = measure("openseg-merged-build", merged_build, str(data_dir / "ingest"), str(work),
                                BUILD_MEMORY, repeat=1)
                rows.append(("merged-profile build", build, None, GOALS["build"]))
                console.print(f"  {build.median:.1f} s ({_gib(build)})")
            except MeasurementFailed as failed:  # the figures above still count
                last = str(failed).strip().splitlines()[-1]
                mismatches.append(f"merged-profile build failed: {last}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = Table(title=f"P2b at {size}: {manifest.profiles:,} profiles, {manifest.events:,} events")
    for column in ("measure", "openseg", "peak memory", "hand-written", "ratio", "goal", "met"):
        table.add_column(column)
    for name, figure, against, goal in rows:
        ratio = f"{figure.median / against.median:.2f}×" if against else "—"
        table.add_row(name, f"{figure.median:.1f} s", _gib(figure),
                      f"{against.median:.1f} s ({_gib(against)})" if against else "—", ratio,
                      f"≤ {goal:g} s" if goal else "—", "yes" if goal and figure.median <= goal else "no")
    console.print(table)
    if spark_rows:
        spark_table = Table(title=f"P7 at {size}: Spark {master} against DuckDB (session start apart)")
        for column in ("measure", "Spark", "session start", "driver memory", "DuckDB", "ratio", "goal", "met"):
            spark_table.add_column(column)
        for name, spark, duck in spark_rows:
            seconds = statistics.median(spark.result["runs"])
            ratio = seconds / duck.median
            spark_table.add_row(name, f"{seconds:.1f} s", f"{spark.result['session']:.1f} s", _gib(spark),
                                f"{duck.median:.1f} s", f"{ratio:.2f}×", f"≤ {SPARK_RATIO:g}×",
                                "yes" if ratio <= SPARK_RATIO else "no")
        console.print(spark_table)
    for problem in mismatches:
        console.print(f"[red]{problem}[/red]")
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
