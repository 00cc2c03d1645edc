"""The benchmark report: ``docs/benchmarks.md`` and a summary table on the terminal.

The document carries one table, ``| target | figure | baseline | ratio | goal | met |``, a row per
target of issue 8, above any prose (contract.md); details follow as lists. A target whose openseg
figure was not measured says so in every cell that depends on it: no figure is ever invented.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from benchmarks.generate import Manifest
from benchmarks.measure import Measurement
from benchmarks.naive import NaiveResult
from benchmarks.openseg_side import OpensegFigures

NOT_MEASURED = "not measured"
GIB = 1024**3
COLUMNS = ("target", "figure", "baseline", "ratio", "goal", "met")


@dataclass(frozen=True)
class Machine:
    """Where the benchmark ran."""

    cores: int
    memory_bytes: int
    cpu_model: str
    python: str
    duckdb: str
    pyarrow: str

    @classmethod
    def detect(cls) -> Machine:
        """The current machine, from ``/proc`` (Linux) and the library versions."""
        return cls(
            os.cpu_count() or 1,
            _meminfo_total(),
            _cpu_model(),
            platform.python_version(),
            duckdb.__version__,
            pa.__version__,
        )


def _meminfo_total() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass(frozen=True)
class BenchResults:
    """Everything one benchmark run measured.

    Attributes:
        size: The size label (``100k``, ``1m``, ``10m``).
        manifest: The data set's manifest.
        machine: Where it ran.
        generation_seconds: How long generating the data took; None when it came from the cache.
        handwritten_10: The hand-written one-pass query for the 10-segment suite.
        handwritten_100: The hand-written one-pass query for the 100-segment mix.
        per_segment_100: The 100 hand-written queries, one per segment, run one after another.
        naive: The naive Python evaluator on the suite (with its own timing and sample size).
        naive_peak_rss: Peak memory of the naive evaluator's process.
        openseg: openseg's figures; None when not measured.
        openseg_note: Why openseg's figures are missing, if they are.
        mismatches: Count cross-checks that failed (empty when every evaluator agreed).
    """

    size: str
    manifest: Manifest
    machine: Machine
    generation_seconds: float | None
    handwritten_10: Measurement
    handwritten_100: Measurement
    per_segment_100: Measurement
    naive: NaiveResult
    naive_peak_rss: int | None
    openseg: OpensegFigures | None = None
    openseg_note: str = ""
    mismatches: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Row:
    """One row of the report table."""

    target: str
    figure: str
    baseline: str
    ratio: str
    goal: str
    met: str

    def cells(self) -> tuple[str, ...]:
        """The cells in ``COLUMNS`` order."""
        return (self.target, self.figure, self.baseline, self.ratio, self.goal, self.met)


def seconds(value: float) -> str:
    """A duration for the report: ``0.412 s``, ``12.3 s``."""
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def memory(value: int | None) -> str:
    """A memory size in GiB, or "unknown"."""
    return "unknown" if value is None else f"{value / GIB:.2f} GiB"


def _yes(ok: bool) -> str:
    return "yes" if ok else "no"


def _compare(
    target: str,
    figure: Measurement | None,
    baseline: float,
    baseline_text: str,
    goal: str,
    ratio_of: Callable[[float, float], float],
    meets: Callable[[float], bool],
) -> Row:
    if figure is None:
        return Row(target, NOT_MEASURED, baseline_text, "—", goal, NOT_MEASURED)
    ratio = ratio_of(figure.median, baseline)
    return Row(target, seconds(figure.median), baseline_text, f"{ratio:.2f}×", goal, _yes(meets(ratio)))


def _absolute(target: str, figure: Measurement | None, limit: float, goal: str) -> Row:
    if figure is None:
        return Row(target, NOT_MEASURED, "—", "—", goal, NOT_MEASURED)
    return Row(target, seconds(figure.median), "—", "—", goal, _yes(figure.median <= limit))


def rows(results: BenchResults) -> list[Row]:
    """The report table: a row per target of issue 8, in the issue's order."""
    figures = results.openseg or OpensegFigures()
    hw10, hw100, per100 = results.handwritten_10, results.handwritten_100, results.per_segment_100
    naive_seconds = results.naive.extrapolated_seconds
    naive_text = f"{seconds(naive_seconds)} naive Python" + (
        f" (extrapolated from {results.naive.profiles_evaluated:,})" if results.naive.sampled else ""
    )
    peaks = [m.peak_rss for m in figures.measurements() if m.peak_rss is not None]
    baseline_peak = max(m.peak_rss or 0 for m in (hw10, hw100, per100))
    if peaks:
        peak = max(peaks)
        peak_row = Row(
            "peak memory (openseg, any of the above)",
            memory(peak),
            f"{memory(baseline_peak)} hand-written",
            f"{peak / baseline_peak:.2f}×",
            "≤ 4 GiB",
            _yes(peak <= 4 * GIB),
        )
    else:
        peak_row = Row(
            "peak memory (openseg, any of the above)",
            NOT_MEASURED,
            f"{memory(baseline_peak)} hand-written",
            "—",
            "≤ 4 GiB",
            NOT_MEASURED,
        )
    return [
        _compare(
            "P1: 10-segment job vs hand-written one-pass SQL",
            figures.job_10,
            hw10.median,
            f"{seconds(hw10.median)} hand-written one-pass",
            "≤ 1.5×",
            lambda f, b: f / b,
            lambda r: r <= 1.5,
        ),
        _compare(
            "P2: 100-segment job vs hand-written one-pass SQL",
            figures.job_100,
            hw100.median,
            f"{seconds(hw100.median)} hand-written one-pass",
            "≤ 1.5×",
            lambda f, b: f / b,
            lambda r: r <= 1.5,
        ),
        _compare(
            "P2: 100-segment job vs one query per segment",
            figures.job_100,
            per100.median,
            f"{seconds(per100.median)} sum of 100 queries",
            "≤ 0.7×",
            lambda f, b: f / b,
            lambda r: r <= 0.7,
        ),
        _compare(
            "P3: 10-segment job vs naive Python evaluator",
            figures.job_10,
            naive_seconds,
            naive_text,
            "≥ 100× faster",
            lambda f, b: b / f,
            lambda r: r >= 100,
        ),
        _absolute("P4: export 300k qualified profiles to Parquet", figures.export_300k, 2.0, "≤ 2 s"),
        _absolute("merged-profile build (stitching + merge)", figures.merged_build, 60.0, "≤ 60 s"),
        peak_row,
        _peak_of_job_100(figures.job_100),
        _lookup_row(figures.lookup),
        _daily_row(figures.daily),
        _status_row(figures.status_load),
        _mixed_row(figures.mixed_load),
        *_streaming_rows(figures.streaming),
        _expiry_row(figures.expiry),
    ]


def _peak_of_job_100(job: Measurement | None) -> Row:
    target = "peak memory of the 100-segment job"
    if job is None or job.peak_rss is None:
        return Row(target, NOT_MEASURED, "—", "—", "≤ 2.5 GiB", NOT_MEASURED)
    return Row(target, memory(job.peak_rss), "—", "—", "≤ 2.5 GiB", _yes(job.peak_rss <= 2.5 * GIB))


def _lookup_row(lookup: Measurement | None) -> Row:
    target = "one profile's membership read (100 segments)"
    if lookup is None or not isinstance(lookup.result, dict):
        return Row(target, NOT_MEASURED, "—", "—", "≤ 10 ms", NOT_MEASURED)
    median, p99 = lookup.result["median_ms"], lookup.result["p99_ms"]
    return Row(target, f"{median:.2f} ms (p99 {p99:.2f} ms)", "—", "—", "≤ 10 ms", _yes(median <= 10))


def _daily_row(daily: Measurement | None) -> Row:
    target = "membership on disk: 30 daily 100-segment jobs vs one"
    if daily is None or not isinstance(daily.result, dict):
        return Row(target, NOT_MEASURED, "—", "—", "≤ 3×", NOT_MEASURED)
    first, last = daily.result["first"], daily.result["last"]
    return Row(target, f"{last / 2**20:.1f} MiB", f"{first / 2**20:.1f} MiB after one job", f"{last / first:.2f}×",
               "≤ 3×", _yes(last <= 3 * first))


def _status_row(load: Measurement | None) -> Row:
    target = "P6: GET /segment/jobs/{id} p99, 50 clients polling during ingestion, build and job"
    if load is None or not isinstance(load.result, dict):
        return Row(target, NOT_MEASURED, "—", "—", "≤ 50 ms", NOT_MEASURED)
    r = load.result
    figure = (f"{r['p99_ms']:.1f} ms (p50 {r['p50_ms']:.1f} ms, max {r['max_ms']:.0f} ms; {r['requests']:,} reads, "
              f"{r['errors']} errors, over {r['window_s']:.0f} s)")
    return Row(target, figure, "—", "—", "≤ 50 ms", _yes(r["p99_ms"] <= 50 and r["errors"] == 0))


def _mixed_row(load: Measurement | None) -> Row:
    target = "P6b: GET /segment/jobs/{id} p99 among 50 clients' mixed calls while jobs and exports run"
    if load is None or not isinstance(load.result, dict):
        return Row(target, NOT_MEASURED, "—", "—", "≤ 50 ms, 0 errors, 0 stuck", NOT_MEASURED)
    r = load.result
    status = r["routes"]["GET /segment/jobs/{id}"]
    jobs, exports = r["jobs"], r["exports"]
    figure = (f"{status['p99_ms']:.1f} ms; {r['requests']:,} calls of {len(r['routes'])} kinds over {r['seconds']:.0f} s, "
              f"{r['errors']} errors; {jobs['ran']} jobs and {exports['ran']} exports ran, "
              f"{jobs['failed'] + exports['failed']} failed, {jobs['stuck'] + exports['stuck']} stuck")
    met = (status["p99_ms"] <= 50 and r["errors"] == 0 and jobs["failed"] + exports["failed"] == 0
           and jobs["stuck"] + exports["stuck"] == 0)
    return Row(target, figure, "—", "—", "≤ 50 ms, 0 errors, 0 stuck", _yes(met))


def _streaming_rows(run: Measurement | None) -> list[Row]:
    """P5, P5a, P5b and the streamer's memory, from one streaming run (issue 16)."""
    targets = (("P5: event acknowledged → membership visible in /access/entities, p99, during a flush and refresh",
                "≤ 200 ms, 0 lost, 0 duplicated"),
               ("P5a: acknowledgement of POST /collection/{inletId} (single), p99", "≤ 20 ms"),
               ("P5b: POST /ee/v2/interact p99 during P5", "≤ 50 ms"),
               ("streamer memory (peak resident set of `openseg streamer`)", "≤ 1.5 GiB"))
    if run is None or not isinstance(run.result, dict):
        return [Row(target, NOT_MEASURED, "—", "—", goal, NOT_MEASURED) for target, goal in targets]
    r = run.result
    ack, visible, interact, lake = r["ack"], r["visible"], r["interact"], r["lake"]
    lost = lake["expected"] - lake["distinct"]
    duplicated = lake["records"] - lake["distinct"]
    drifted = sum(sum(v for k, v in (figures or {}).items() if k != "baseline") for figures in r["drift"].values())
    aep = "AEP: Profile within 15 minutes (p95); 1,500 records/s per org"
    probes = r["probes"]
    p5 = (f"{visible['p99_ms']:.0f} ms (p50 {visible['p50_ms']:.0f} ms; {visible['count']:,} events followed to "
          f"their membership's write, {visible['errors']} never written; {probes['count']:,} probes of "
          f"/access/entities saw it, p99 {probes['p99_ms']:.0f} ms, {probes['errors']} did not) "
          f"at {r['rate']:.0f} events/s for {r['seconds']:.0f} s; "
          f"{r['flushes']} flushes and {r['refreshes']} refreshes in the window; {lost} lost, {duplicated} duplicated; "
          f"job drift {drifted}")
    if r.get("cpu_cores"):
        p5 += "; cores in the window: " + ", ".join(f"{role} {cores:.2f}" for role, cores in r["cpu_cores"].items())
    p5_met = (visible["p99_ms"] <= 200 and visible["errors"] == 0 and probes["errors"] == 0 and lost == 0
              and duplicated == 0 and drifted == 0 and r["flushes"] > 0 and r["refreshes"] > 0)
    p5a = (f"{ack['p99_ms']:.1f} ms (p50 {ack['p50_ms']:.1f} ms; {ack['count']:,} of {r['offered']:,} "
           f"acknowledged, {ack['errors']} errors)")
    p5b = (f"{interact['p99_ms']:.1f} ms (p50 {interact['p50_ms']:.1f} ms; {interact['count']:,} calls at "
           f"{r['edge_rate']:.0f}/s, {interact['errors']} errors)")
    peak = r.get("streamer_peak_bytes")
    return [
        Row(targets[0][0], p5, aep, "—", targets[0][1], _yes(p5_met)),
        Row(targets[1][0], p5a, aep, "—", targets[1][1], _yes(ack["p99_ms"] <= 20 and ack["errors"] == 0)),
        Row(targets[2][0], p5b, "—", "—", targets[2][1], _yes(interact["p99_ms"] <= 50 and interact["errors"] == 0)),
        Row(targets[3][0], memory(peak) if peak else NOT_MEASURED, "—", "—", targets[3][1],
            _yes(peak is not None and peak <= 1.5 * GIB) if peak else NOT_MEASURED),
    ]


def _expiry_row(run: Measurement | None) -> Row:
    target = "P5c: memberships expiring in the same minute, all exited after they are due"
    if run is None or not isinstance(run.result, dict):
        return Row(target, NOT_MEASURED, "—", "—", "all within 5 s", NOT_MEASURED)
    r = run.result
    figure = (f"{r['exited']:,} of {r['expected']:,} exited, lag max {r['max_s']:.2f} s (median {r['median_s']:.2f} s,"
              f" p99 {r['p99_s']:.2f} s)")
    return Row(target, figure, "—", "—", "all within 5 s", _yes(r["exited"] == r["expected"] == r["members"]
                                                                 and r["max_s"] <= 5))


def _mixed_routes(load: Measurement | None) -> list[str]:
    """Each route's latencies in the mixed-call run (P6b)."""
    if load is None or not isinstance(load.result, dict):
        return []
    lines = ["", "Each call of the mixed-call run (P6b; `benchmarks/mixed.py`, `python -m benchmarks.mixed` runs it "
             "alone), one call a second per client:", ""]
    for label, figures in load.result["routes"].items():
        lines.append(f"- `{label}`: p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms "
                     f"({figures['requests']:,} calls, {figures['errors']} errors)")
    return lines


def _detail(label: str, m: Measurement) -> str:
    runs = ", ".join(f"{r:.3f}" for r in m.runs)
    return (
        f"- {label}: median {seconds(m.median)} of {len(m.runs)} runs ({runs} s); "
        f"peak memory {memory(m.peak_rss)} (interpreter and imports: {memory(m.baseline_rss)})"
    )


#: Hand-written analysis (what bounds a missed target, profiles) appended to every report.
NOTES = Path(__file__).with_name("NOTES.md")


def render_markdown(results: BenchResults) -> str:
    """The text of ``docs/benchmarks.md``: the table first, then how it was measured."""
    m, machine = results.manifest, results.machine
    table = ["| " + " | ".join(COLUMNS) + " |", "| " + " | ".join("---" for _ in COLUMNS) + " |"]
    table += ["| " + " | ".join(row.cells()) + " |" for row in rows(results)]
    generation = (
        "taken from the cache"
        if results.generation_seconds is None
        else f"generated in {seconds(results.generation_seconds)}"
    )
    naive = results.naive
    lines = [
        "# Benchmarks",
        "",
        *table,
        "",
        (
            f"Size `{results.size}`: {m.profiles:,} profiles ({m.fragments:,} ingested fragments), "
            f"{m.events:,} events over the {m.window_days} days before `as_of` {m.as_of}; seed {m.seed}; "
            f"data {generation}. Goals are those of issue 8, stated for 1M profiles / 10M events on 2 cores; "
            "at other sizes `met` compares against the same numbers."
        ),
        "",
        "## Machine",
        "",
        f"- {machine.cores} cores, {memory(machine.memory_bytes)} memory, {machine.cpu_model}",
        f"- Python {machine.python}, DuckDB {machine.duckdb}, pyarrow {machine.pyarrow}",
        "",
        "## Baselines",
        "",
        _detail("hand-written one-pass DuckDB SQL, 10 segments", results.handwritten_10),
        _detail("hand-written one-pass DuckDB SQL, 100 segments", results.handwritten_100),
        _detail(
            "hand-written DuckDB SQL, one query per segment, 100 segments (total)", results.per_segment_100
        ),
        f"- naive Python evaluator, 10 segments: {naive.profiles_evaluated:,} of {naive.profiles_total:,} "
        f"profiles in {seconds(naive.seconds)} including loading"
        + (f", extrapolated to {seconds(naive.extrapolated_seconds)}" if naive.sampled else "")
        + f"; peak memory {memory(results.naive_peak_rss)}",
        "",
        (
            "Every figure is the median of repeated runs in a fresh process, over the Parquet files in "
            "`plain/` (benchmarks/generate.py); the segments are in benchmarks/segments.py, the hand-written "
            "SQL in benchmarks/handwritten.py, the naive evaluator in benchmarks/naive.py."
        ),
        "",
        "## Cross-checks",
        "",
    ]
    if results.mismatches:
        lines += [f"- MISMATCH: {text}" for text in results.mismatches]
    else:
        lines.append(
            "- The hand-written one-pass and per-segment queries agree on every member count"
            + ("" if naive.sampled else ", and so does the naive evaluator")
            + "."
        )
    if results.openseg is None:
        lines += ["", "## openseg", "", f"openseg's figures are {NOT_MEASURED}: {results.openseg_note}"]
    else:
        lines += ["", "## openseg", ""]
        lines += [_detail(m.label, m) for m in results.openseg.measurements()]
        lines += ["", "The job figures cover a segment job's whole work on the same `plain/` files: the one-pass "
                  "plan, the membership diff against the previous run, the namespace counts, and the membership "
                  "and history files written (benchmarks/openseg_side.py)."]
        lines += _stages(results.openseg.job_100)
        lines += _mixed_routes(results.openseg.mixed_load)
    if NOTES.is_file():
        lines += ["", NOTES.read_text(encoding="utf-8").rstrip()]
    return "\n".join(lines) + "\n"


def _stages(job: Measurement | None, shown: int = 12) -> list[str]:
    """The costliest stages of a job's plan, from the job's own ``openseg:segmentCost`` (last measured run)."""
    stages = job.result.get("stages") if job is not None and isinstance(job.result, dict) else None
    if not stages:
        return []
    ranked = sorted(stages, key=lambda stage: -stage["seconds"])
    lines = ["", f"Where the 100-segment job's plan spends its time (its `openseg:segmentCost`, last run; "
                 f"{len(stages)} stages, {seconds(sum(s['seconds'] for s in stages))} in all, the costliest first):", ""]
    for stage in ranked[:shown]:
        scanned = f"{stage['rowsScanned']:,} rows scanned, " if stage.get("rowsScanned") is not None else ""
        lines.append(f"- `{stage['name']}` ({stage['relation']}): {seconds(stage['seconds'])}, {scanned}"
                     f"{stage['rows']:,} rows out, shared by {stage['sharedBy']} segment(s)")
    return lines


def write_report(results: BenchResults, path: Path) -> None:
    """Writes the markdown report to ``path``, keeping the scale section a 10M run wrote there
    (``benchmarks.scale``)."""
    from benchmarks.scale import current_section

    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_markdown(results)
    kept = current_section(path.read_text(encoding="utf-8")) if path.is_file() else None
    if kept is not None:
        text = text.rstrip("\n") + "\n\n" + kept
    path.write_text(text, encoding="utf-8")


def print_summary(results: BenchResults, console: Console | None = None) -> None:
    """Prints the report table (and any cross-check failures) to the terminal."""
    console = console or Console()
    table = Table(
        title=f"openseg benchmarks ({results.size}: {results.manifest.profiles:,} profiles, "
        f"{results.manifest.events:,} events)"
    )
    for column in COLUMNS:
        table.add_column(column)
    for row in rows(results):
        style = {"yes": "green", "no": "red"}.get(row.met, "yellow")
        table.add_row(*row.cells(), style=style)
    console.print(table)
    for text in results.mismatches:
        console.print(f"[red]MISMATCH[/red] {text}")
