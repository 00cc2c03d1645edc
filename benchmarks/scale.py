"""``python -m benchmarks.scale``: how a segment job and the merged build grow with profiles (issue #17, P2b).

At ``BENCH_SIZE`` (default ``10m``: 10M profiles, about 100M events), in one run on the cached data set (generated
first if missing, timed):

- the hand-written one-pass SQL over the merged store, 10 and 100 segments (the baselines of P1 and P2);
- openseg's segment job over the same store, 10 and 100 segments: plan, membership diff and files, after a
  first job that makes the membership it diffs against (as a daily job would);
- the merged-profile build from the ingest files (stitching and merge, DuckDB capped at
  ``OPENSEG_BUILD_MEMORY_LIMIT``'s default, spilling beyond).

With ``BENCH_SPARK_MASTER`` (``local[2]``, ``local[1]``, ``spark://host:7077``, ``cluster`` for a standalone master
and two one-core workers started here for the measurement, or several, comma-separated) the same two jobs run on
Spark too (P7): in one process per master, the session started first and its start reported
apart, then a first job and the measured ones; ``BENCH_SPARK_CONF`` (``key=value;...``, default
``spark.driver.memory=6g``) sizes it. Spark's members are checked against DuckDB's.

``BENCH_SPARK_MASTER_100`` (default: all of them) names the masters that also run the 100-segment job: the scaling
can be measured on the 10-segment job alone (``BENCH_SPARK_MASTER='local[1],local[2],cluster'
BENCH_SPARK_MASTER_100='local[2]'``), which saves the longest runs.

``BENCH_STEPS`` (default ``jobs,build``) picks the steps: ``jobs`` (the segment jobs, and Spark's with
``BENCH_SPARK_MASTER``) and ``build``.

Each figure is the median of ``BENCH_REPEAT`` runs (default 1 at 10M) in a fresh process, with that process's
peak memory (for Spark, the Python driver's: the JVM is a process of its own); the members of each openseg job
are checked against the hand-written query's. The table is printed.

``BENCH_SIZE=10m make bench`` (:func:`scale_report`, called by ``benchmarks.run`` above 1M profiles) measures all
of it at 1M and at the size, Spark on ``local[2]`` unless ``BENCH_SPARK_MASTER`` says otherwise, and writes how
each figure grows (with profiles, and from 10 to 100 segments) into its own section of ``docs/benchmarks.md``,
beside the 1M report, which it leaves as it is.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.generate import Manifest, parse_size
from benchmarks.handwritten import count_one_pass
from benchmarks.measure import Measurement, MeasurementFailed, measure
from benchmarks.openseg_side import _pql, merged_build, segment_job
from benchmarks.run import DATA_ROOT, DEFAULT_SEED, _compare, ensure_data
from benchmarks.segments import SUITE, mix
from openseg.config import parse_spark_conf
from openseg.engines.standalone import standalone_cluster
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
#: The Spark master ``make bench`` measures above 1M profiles when ``BENCH_SPARK_MASTER`` is not set.
REPORT_MASTER = "local[2]"
#: ``BENCH_SPARK_MASTER=cluster``: a standalone master and this many one-core workers started on this machine
#: (``openseg.engines.standalone``), each running one executor of ``CLUSTER_EXECUTOR_MEMORY``.
CLUSTER = "cluster"
CLUSTER_WORKERS = 2
CLUSTER_WORKER_MEMORY, CLUSTER_EXECUTOR_MEMORY = "5g", "4500m"
#: The cluster sizes the scale section projects a job per 100M profiles onto.
PROJECTED_CORES = (16, 64)
#: Where ``scale_report`` writes its section in ``docs/benchmarks.md``.
SECTION_BEGIN = "<!-- scale: written by BENCH_SIZE=10m make bench (benchmarks/scale.py) -->"
SECTION_END = "<!-- scale: end -->"
LABELS = ("10", "100")


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


@dataclass
class SizeFigures:
    """What one size measured: per segment count (``"10"``, ``"100"``) openseg's job and the hand-written query,
    per Spark master its job, and the build."""

    size: str
    manifest: Manifest
    jobs: dict[str, Measurement] = field(default_factory=dict)
    handwritten: dict[str, Measurement] = field(default_factory=dict)
    spark: dict[str, dict[str, Measurement]] = field(default_factory=dict)
    build: Measurement | None = None
    mismatches: list[str] = field(default_factory=list)


def _steps() -> set[str]:
    steps = {step.strip() for step in os.environ.get("BENCH_STEPS", ",".join(STEPS)).split(",")} - {""}
    if not steps or steps - set(STEPS):
        unknown = ", ".join(sorted(steps - set(STEPS))) or "none given"
        sys.exit(f"BENCH_STEPS: {unknown}; expected some of {', '.join(STEPS)}")
    return steps


def _masters(default: str = "", variable: str = "BENCH_SPARK_MASTER") -> list[str]:
    return [m.strip() for m in os.environ.get(variable, default).split(",") if m.strip()]


def _masters_100() -> list[str] | None:
    """``BENCH_SPARK_MASTER_100``: the masters that also run the 100-segment job (unset: all of them)."""
    return _masters(variable="BENCH_SPARK_MASTER_100") if "BENCH_SPARK_MASTER_100" in os.environ else None


def measure_size(size: str, seed: int, steps: set[str], masters: list[str], repeat: int, console: Console,
                 data_root: Path = DATA_ROOT, masters_100: list[str] | None = None) -> SizeFigures:
    """Measure ``steps`` at ``size`` (generating its data first if missing), printing each figure as it comes;
    Spark's 100-segment job on ``masters_100`` only (default: every master)."""
    data_dir, manifest, generated = ensure_data(size, seed, data_root, console)
    console.print(f"{size}: {manifest.profiles:,} profiles, {manifest.events:,} events"
                  + (f"; generated in {generated:.0f} s" if generated is not None else "; data taken from the cache"))
    figures = SizeFigures(size, manifest)
    store = str(data_dir / "plain")
    as_of = manifest.as_of_time.replace(tzinfo=UTC)
    spark_conf = parse_spark_conf(os.environ.get("BENCH_SPARK_CONF", DEFAULT_SPARK_CONF))
    work = Path(tempfile.mkdtemp(prefix="openseg-scale-"))
    try:
        for label, segments in (((LABELS[0], SUITE), (LABELS[1], mix())) if "jobs" in steps else ()):
            console.print(f"hand-written one-pass SQL, {label} segments ...")
            baseline = measure(f"handwritten-{label}", count_one_pass, data_dir, segments, repeat=repeat)
            console.print(f"openseg segment job, {label} segments (a first job, then the measured ones) ...")
            out = str(work / f"m{label}")
            warm = segment_job(store, _pql(segments), as_of, None, out, "warm")["state"]
            job = measure(f"openseg-job-{label}", segment_job, store, _pql(segments), as_of, warm, out, repeat=repeat)
            expected = {s.key: baseline.result[s.key] for s in segments}
            actual = {s.key: job.result["members"].get(s.id) for s in segments}
            figures.mismatches += _compare(f"openseg job ({label}, {size})", expected, actual)
            figures.jobs[label], figures.handwritten[label] = job, baseline
            console.print(f"  openseg {job.median:.1f} s ({_gib(job)}), hand-written {baseline.median:.1f} s ({_gib(baseline)})")
            shutil.rmtree(out, ignore_errors=True)
            for master in (masters if label == LABELS[0] or masters_100 is None
                           else [m for m in masters if m in masters_100]):
                console.print(f"Spark ({_master_name(master)}) segment job, {label} segments (session, a first job, "
                              "then the measured ones) ...")
                with _spark_master(master, work / f"cluster{label}") as (url, conf):
                    spark = measure(f"spark-job-{label}", spark_jobs, store, _pql(segments), as_of,
                                    str(work / f"s{label}"), url, spark_conf + conf, repeat, repeat=1)
                figures.mismatches += _compare(f"Spark {master} job ({label}, {size})", job.result["members"],
                                               spark.result["members"])
                figures.spark.setdefault(master, {})[label] = spark
                console.print(f"  Spark {_spark_seconds(spark):.1f} s (session start {spark.result['session']:.1f} s)")
                shutil.rmtree(work / f"s{label}", ignore_errors=True)
        if "build" in steps:
            console.print(f"merged-profile build from the ingest files (memory limit {BUILD_MEMORY}) ...")
            try:
                figures.build = measure("openseg-merged-build", merged_build, str(data_dir / "ingest"), str(work),
                                        BUILD_MEMORY, repeat=1)
                console.print(f"  {figures.build.median:.1f} s ({_gib(figures.build)})")
            except MeasurementFailed as failed:  # the figures above still count
                last = str(failed).strip().splitlines()[-1]
                figures.mismatches.append(f"merged-profile build failed at {size}: {last}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return figures


@contextmanager
def _spark_master(master: str, base: Path) -> Iterator[tuple[str, tuple[tuple[str, str], ...]]]:
    """The master URL and extra session settings to run on: ``cluster`` starts a standalone cluster of
    ``CLUSTER_WORKERS`` one-core workers on this machine for the measurement; any other master is used as given."""
    if master != CLUSTER:
        yield master, ()
        return
    with standalone_cluster(base, CLUSTER_WORKERS, 1, CLUSTER_WORKER_MEMORY, CLUSTER_EXECUTOR_MEMORY) as cluster:
        yield cluster.master, cluster.conf


def _master_name(master: str) -> str:
    return f"standalone cluster, {CLUSTER_WORKERS} one-core workers" if master == CLUSTER else master


def master_cores(master: str) -> int | None:
    """The cores a master offers, where its name says: ``local[N]`` and ``cluster``."""
    if master == CLUSTER:
        return CLUSTER_WORKERS
    if master.startswith("local[") and master.endswith("]") and master[6:-1].isdigit():
        return int(master[6:-1])
    return None


def _gib(measurement: Measurement | None) -> str:
    return "—" if measurement is None or measurement.peak_rss is None else f"{measurement.peak_rss / 2**30:.2f} GiB"


def _spark_seconds(spark: Measurement) -> float:
    return statistics.median(spark.result["runs"])


def print_tables(figures: SizeFigures, console: Console) -> None:
    """The P2b table (openseg against the hand-written query and the goals) and, with Spark, the P7 table."""
    size, manifest = figures.size, figures.manifest
    table = Table(title=f"P2b at {size}: {manifest.profiles:,} profiles, {manifest.events:,} events")
    for column in ("measure", "openseg", "peak memory", "hand-written", "ratio", "goal", "met"):
        table.add_column(column)
    rows: list[tuple[str, Measurement, Measurement | None, float]] = [
        (f"segment job, {label} segments", figures.jobs[label], figures.handwritten[label], GOALS[f"job-{label}"])
        for label in LABELS if label in figures.jobs]
    if figures.build is not None:
        rows.append(("merged-profile build", figures.build, None, GOALS["build"]))
    for name, figure, against, goal in rows:
        ratio = f"{figure.median / against.median:.2f}×" if against else "—"
        table.add_row(name, f"{figure.median:.1f} s", _gib(figure),
                      f"{against.median:.1f} s ({_gib(against)})" if against else "—", ratio,
                      f"≤ {goal:g} s", "yes" if figure.median <= goal else "no")
    console.print(table)
    for master, by_label in figures.spark.items():
        spark_table = Table(title=f"P7 at {size}: Spark {_master_name(master)} against DuckDB (session start apart)")
        for column in ("measure", "Spark", "session start", "driver memory", "DuckDB", "ratio", "goal", "met"):
            spark_table.add_column(column)
        for label, spark in by_label.items():
            seconds, duck = _spark_seconds(spark), figures.jobs[label]
            ratio = seconds / duck.median
            spark_table.add_row(f"segment job, {label} segments", f"{seconds:.1f} s", f"{spark.result['session']:.1f} s",
                                _gib(spark), f"{duck.median:.1f} s", f"{ratio:.2f}×", f"≤ {SPARK_RATIO:g}×",
                                "yes" if ratio <= SPARK_RATIO else "no")
        console.print(spark_table)
    for problem in figures.mismatches:
        console.print(f"[red]{problem}[/red]")


def _growth(small: float, large: float) -> str:
    return f"{large / small:.1f}×"


def render_section(small: SizeFigures, large: SizeFigures, when: str, machine: str) -> str:
    """The ``docs/benchmarks.md`` section of :func:`scale_report`: each figure at both sizes and its growth,
    then from 10 to 100 segments, and the goals at the larger size."""
    a, b = small.size, large.size
    factor = large.manifest.profiles / small.manifest.profiles
    lines = [SECTION_BEGIN, "", f"## Scale: {a} → {b} profiles", "",
             f"`BENCH_SIZE={b} make bench` on {when}, {machine}: {small.manifest.profiles:,} profiles and "
             f"{small.manifest.events:,} events against {large.manifest.profiles:,} and {large.manifest.events:,} "
             f"({factor:g}× the profiles), in one run. Each figure is one measured run after a first one (the job "
             "diffs against the membership the first made), with the peak memory of its process (for Spark, the "
             "Python driver's; the JVM is a process of its own). Members are checked against the hand-written "
             "query at both sizes, and Spark's against DuckDB's.", "",
             f"| measure | {a} | {b} | growth (time) | growth (memory) | goal at {b} | met |",
             "| --- | --- | --- | --- | --- | --- | --- |"]

    def row(name: str, x: Measurement | None, y: Measurement | None, seconds: Any = None, goal: str = "—",
            met: str = "—") -> None:
        if x is None or y is None:
            return
        tx, ty = (seconds(x), seconds(y)) if seconds else (x.median, y.median)
        memory = (_growth(x.peak_rss, y.peak_rss) if x.peak_rss and y.peak_rss else "—")
        lines.append(f"| {name} | {tx:.1f} s ({_gib(x)}) | {ty:.1f} s ({_gib(y)}) | {_growth(tx, ty)} | {memory} "
                     f"| {goal} | {met} |")

    for label in LABELS:
        job_goal = GOALS[f"job-{label}"]
        y = large.jobs.get(label)
        row(f"openseg job (DuckDB), {label} segments", small.jobs.get(label), y, goal=f"≤ {job_goal:g} s",
            met="—" if y is None else ("yes" if y.median <= job_goal else "no"))
        row(f"hand-written one-pass SQL, {label} segments", small.handwritten.get(label), large.handwritten.get(label))
        for master in large.spark:
            spark_y = large.spark[master].get(label)
            met = "—"
            if spark_y is not None and y is not None:
                ratio = _spark_seconds(spark_y) / y.median
                met = f"{'yes' if ratio <= SPARK_RATIO else 'no'} ({ratio:.2f}× DuckDB)"
            row(f"Spark {_master_name(master)} job, {label} segments (session start apart)",
                small.spark.get(master, {}).get(label), spark_y, _spark_seconds,
                goal=f"≤ {SPARK_RATIO:g}× DuckDB (P7)", met=met)
    row("merged-profile build (DuckDB, limit " + BUILD_MEMORY + ")", small.build, large.build,
        goal=f"≤ {GOALS['build']:g} s within 4 GiB",
        met="—" if large.build is None else ("yes" if large.build.median <= GOALS["build"]
                                              and (large.build.peak_rss or 0) <= 4 * 2**30 else "no"))
    lines += ["", "From 10 to 100 segments (time of the 100-segment job over the 10-segment one):", ""]
    for figures in (small, large):
        parts = []
        if all(label in figures.jobs for label in LABELS):
            parts.append(f"openseg {_growth(figures.jobs['10'].median, figures.jobs['100'].median)}")
            parts.append(f"hand-written {_growth(figures.handwritten['10'].median, figures.handwritten['100'].median)}")
        for master, by_label in figures.spark.items():
            if all(label in by_label for label in LABELS):
                parts.append(f"Spark {_master_name(master)} {_growth(_spark_seconds(by_label['10']), _spark_seconds(by_label['100']))}")
        if parts:
            lines.append(f"- {figures.size}: " + ", ".join(parts))
    lines += projection(large)
    problems = small.mismatches + large.mismatches
    lines += ["", *(f"- MISMATCH: {p}" for p in problems)] if problems else []
    lines += ["", SECTION_END]
    return "\n".join(lines) + "\n"


def projection(figures: SizeFigures, profiles: int = 100_000_000) -> list[str]:
    """Lines projecting Spark's jobs to ``profiles`` on ``PROJECTED_CORES`` cores from how they scaled at this size:
    one core's work is ``local[1]``'s time times the growth in profiles; each several-core master's efficiency is
    ``local[1]``'s time over its time times its cores, and the projection takes the lowest one measured (efficiency
    falls as cores are added, so these are lower bounds). A segment count ``local[1]`` did not run
    (``BENCH_SPARK_MASTER_100``) takes its one core's time from the several-core masters that ran it, at their
    efficiency of the 10-segment job. Empty without ``local[1]`` and another master."""
    single = figures.spark.get("local[1]", {})
    several = {m: by_label for m, by_label in figures.spark.items() if (master_cores(m) or 1) > 1}
    if LABELS[0] not in single or not any(LABELS[0] in by_label for by_label in several.values()):
        return []
    factor = profiles / figures.manifest.profiles

    def efficiency(master: str, label: str, one: float) -> float:
        return one / (_spark_seconds(several[master][label]) * (master_cores(master) or 1))

    first = {m: efficiency(m, LABELS[0], _spark_seconds(single[LABELS[0]])) for m, by in several.items()
             if LABELS[0] in by}
    lines = ["", f"Spark's scaling at {figures.size} and a projection to {profiles / 1e6:g}M profiles ({factor:g}× "
             f"this size, taken as {factor:g}× the work): efficiency is one core's time over the time on N cores "
             "times N; the projection uses the lowest efficiency measured, so it is a lower bound.", "",
             "| job | one core (local[1]) | " + " | ".join(_master_name(m) for m in several)
             + f" | one core's work at {profiles / 1e6:g}M | "
             + " | ".join(f"{n} cores" for n in PROJECTED_CORES) + " |",
             "| --- " * (3 + len(several) + len(PROJECTED_CORES)) + "|"]
    for label in LABELS:
        ran = [m for m in several if label in several[m]]
        if label in single:
            one = _spark_seconds(single[label])
            efficiencies = {m: efficiency(m, label, one) for m in ran}
            one_cell = f"{one:.1f} s"
        else:
            # One core's time from each master that ran it, at its 10-segment efficiency; the largest of them.
            ran = [m for m in ran if m in first]
            if not ran:
                continue
            efficiencies = {m: first[m] for m in ran}
            one = max(_spark_seconds(several[m][label]) * (master_cores(m) or 1) * first[m] for m in ran)
            one_cell = f"about {one:.0f} s (from the 10-segment efficiency)"
        if not efficiencies:
            continue
        lowest = min(efficiencies.values()) if label in single else min(first.values())
        work = one * factor
        cells = [f"{_spark_seconds(several[m][label]):.1f} s ({efficiencies[m]:.0%})" if m in efficiencies else "—"
                 for m in several]
        lines.append(f"| {label} segments | {one_cell} | " + " | ".join(cells) + f" | {work:,.0f} core-s | "
                     + " | ".join(f"{_duration(work / (n * lowest))}" for n in PROJECTED_CORES) + " |")
    return lines


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def replace_section(document: str, section: str) -> str:
    """``document`` with its scale section replaced by ``section`` (appended when it has none)."""
    kept = current_section(document)
    if kept is not None:
        return document.replace(kept.rstrip("\n"), section.rstrip("\n"), 1)
    return document.rstrip("\n") + "\n\n" + section


def current_section(document: str) -> str | None:
    """The scale section of ``document``, if it has one (``benchmarks.report`` keeps it when it rewrites the rest)."""
    if SECTION_BEGIN in document and SECTION_END in document:
        return SECTION_BEGIN + document.split(SECTION_BEGIN, 1)[1].split(SECTION_END, 1)[0] + SECTION_END + "\n"
    return None


def scale_report(size: str, seed: int, report_path: Path, console: Console, small: str = "1m",
                 data_root: Path = DATA_ROOT) -> list[str]:
    """``BENCH_SIZE=10m make bench``: every step at ``small`` and at ``size`` (Spark on ``BENCH_SPARK_MASTER``,
    default ``local[2]``), their tables printed, and the scale section of ``report_path`` rewritten.

    Returns:
        The mismatches (members that differ, a failed build).
    """
    from benchmarks.report import Machine

    masters = _masters(REPORT_MASTER)
    repeat = int(os.environ.get("BENCH_REPEAT", 1))
    measured = []
    for each in (small, size):
        figures = measure_size(each, seed, set(STEPS), masters, repeat, console, data_root, _masters_100())
        print_tables(figures, console)
        measured.append(figures)
    machine = Machine.detect()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = render_section(measured[0], measured[1], when,
                             f"{machine.cores} cores, {machine.memory_bytes / 2**30:.0f} GiB, {machine.cpu_model}")
    document = report_path.read_text(encoding="utf-8") if report_path.is_file() else "# Benchmarks\n"
    report_path.write_text(replace_section(document, section), encoding="utf-8")
    console.print(f"scale section written to {report_path}")
    return measured[0].mismatches + measured[1].mismatches


def main() -> None:
    size = os.environ.get("BENCH_SIZE", "10m")
    steps = _steps()
    seed = int(os.environ.get("BENCH_SEED", DEFAULT_SEED))
    repeat = int(os.environ.get("BENCH_REPEAT", 1 if parse_size(size) > 1_000_000 else 3))
    console = Console() if sys.stdout.isatty() else Console(width=150)
    figures = measure_size(size, seed, steps, _masters(), repeat, console, masters_100=_masters_100())
    print_tables(figures, console)
    sys.exit(1 if figures.mismatches else 0)


if __name__ == "__main__":
    main()
