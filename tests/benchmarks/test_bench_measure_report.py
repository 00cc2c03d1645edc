"""Measurement helpers, the report's one table, and the runner's handling of missing openseg figures."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import pytest
from benchmarks.generate import Manifest
from benchmarks.measure import Measurement, MeasurementFailed, measure, time_in_process
from benchmarks.naive import NaiveResult
from benchmarks.openseg_side import OpensegFigures
from benchmarks.report import GIB, BenchResults, Machine, print_summary, render_markdown, rows, write_report
from benchmarks.segments import SUITE
from rich.console import Console

from benchmarks import run as bench_run

HEADER = "| target | figure | baseline | ratio | goal | met |"


def test_measure_runs_in_a_child_and_reports_times_memory_and_result() -> None:
    m = measure("sort", sorted, [3, 1, 2], repeat=3)
    assert m.result == [1, 2, 3] and len(m.runs) == 3 and m.median == sorted(m.runs)[1]
    assert m.peak_rss is not None and m.baseline_rss is not None and m.peak_rss >= m.baseline_rss > 0


def test_measure_sees_the_memory_the_work_allocates() -> None:
    small = measure("small", bytes.fromhex, "00", repeat=1)
    big = measure("big", bytes.fromhex, "00", repeat=1)
    assert big.peak_rss is not None and small.peak_rss is not None
    # Each measurement runs in a fresh process: a second one does not inherit the first one's peak.
    assert abs(big.peak_rss - small.peak_rss) < 64 * 1024 * 1024
    # median() sorts a list of six million ints (about 200 MiB) and returns one number.
    grown = measure("grown", statistics.median, range(6_000_000), repeat=1)
    assert grown.result == 2_999_999.5
    assert grown.peak_rss is not None and grown.peak_rss >= small.peak_rss + 150 * 1024 * 1024


def test_a_failing_measurement_raises_with_the_childs_traceback() -> None:
    with pytest.raises(MeasurementFailed, match="(?s)parse failed:.*ValueError: invalid literal"):
        measure("parse", int, "not a number")


def test_time_in_process_keeps_the_result() -> None:
    m = time_in_process("sum", sum, [1, 2, 3], repeat=2)
    assert (m.result, len(m.runs), m.peak_rss) == (6, 2, None)


def _results(openseg: OpensegFigures | None) -> BenchResults:
    def m(label: str, seconds: float, peak: int) -> Measurement:
        return Measurement(label, (seconds, seconds), peak, GIB // 10)

    manifest = Manifest(42, 1_000_000, 1_128_000, 10_000_000, "2025-06-30T00:00:00Z", 180, 200_000, False)
    return BenchResults(
        size="1m",
        manifest=manifest,
        machine=Machine(2, 8 * GIB, "Test CPU", "3.11", "2.0", "26"),
        generation_seconds=None,
        handwritten_10=m("hw10", 0.5, GIB),
        handwritten_100=m("hw100", 4.0, 2 * GIB),
        per_segment_100=m("per100", 10.0, GIB),
        naive=NaiveResult({}, 100_000, 1_000_000, 30.0),
        naive_peak_rss=3 * GIB,
        openseg=openseg,
        openseg_note="openseg measurements not wired yet",
    )


def test_report_without_openseg_marks_its_rows_not_measured() -> None:
    text = render_markdown(_results(None))
    lines = text.splitlines()
    assert lines[:4] == ["# Benchmarks", "", HEADER, "| --- | --- | --- | --- | --- | --- |"]
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + 17  # exactly one table: header, rule, one row per target
    assert table[2] == (
        "| P1: 10-segment job vs hand-written one-pass SQL | not measured | "
        "0.500 s hand-written one-pass | — | ≤ 1.5× | not measured |"
    )
    assert table[5] == (
        "| P3: 10-segment job vs naive Python evaluator | not measured | 300.0 s naive Python "
        "(extrapolated from 100,000) | — | ≥ 100× faster | not measured |"
    )
    assert all(row.split(" | ")[-1] == "not measured |" for row in table[2:])
    assert "openseg's figures are not measured: openseg measurements not wired yet" in text
    assert text.index(HEADER) < text.index("## Machine") and "2 cores, 8.00 GiB memory, Test CPU" in text


def test_report_with_openseg_figures_computes_ratios_and_goals() -> None:
    def m(seconds: float, peak: int) -> Measurement:
        return Measurement("x", (seconds,), peak)

    figures = OpensegFigures(
        job_10=m(1.5, GIB), job_100=m(5.0, 3 * GIB), export_300k=m(2.5, GIB), merged_build=m(40.0, 5 * GIB),
        lookup=Measurement("lookup", (1.0,), GIB, result={"median_ms": 4.25, "p99_ms": 12.5}),
        daily=Measurement("daily", (60.0,), GIB, result={"first": 100 * 2**20, "last": 250 * 2**20}),
        status_load=Measurement("load", (90.0,), GIB, result={
            "p50_ms": 8.5, "p99_ms": 61.25, "max_ms": 130.0, "requests": 4500, "errors": 0, "window_s": 90.4}),
    )
    got = {
        row.target.split(":")[0] + ("/per" if "per segment" in row.target else ""): row
        for row in rows(_results(figures))
    }
    assert (got["P1"].figure, got["P1"].ratio, got["P1"].met) == ("1.500 s", "3.00×", "no")
    assert (got["P2"].ratio, got["P2"].met) == ("1.25×", "yes")
    assert (got["P2/per"].ratio, got["P2/per"].met) == ("0.50×", "yes")
    assert (got["P3"].ratio, got["P3"].met) == ("200.00×", "yes")
    assert (got["P4"].figure, got["P4"].met) == ("2.500 s", "no")
    assert (
        got["merged-profile build (stitching + merge)"].met,
        got["peak memory (openseg, any of the above)"].figure,
        got["peak memory (openseg, any of the above)"].met,
    ) == ("yes", "5.00 GiB", "no")
    peak_100 = got["peak memory of the 100-segment job"]
    assert (peak_100.figure, peak_100.goal, peak_100.met) == ("3.00 GiB", "≤ 2.5 GiB", "no")
    lookup = got["one profile's membership read (100 segments)"]
    assert (lookup.figure, lookup.met) == ("4.25 ms (p99 12.50 ms)", "yes")
    daily = got["membership on disk"]
    assert (daily.figure, daily.baseline, daily.ratio, daily.met) == (
        "250.0 MiB", "100.0 MiB after one job", "2.50×", "yes")
    assert (got["P6"].figure, got["P6"].goal, got["P6"].met) == (
        "61.2 ms (p50 8.5 ms, max 130 ms; 4,500 reads, 0 errors, over 90 s)", "≤ 50 ms", "no")


def test_report_is_written_and_summarised(tmp_path: Path) -> None:
    results = dataclasses.replace(
        _results(None), mismatches=["naive (10): bench-01 has 3 members, expected 4"]
    )
    write_report(results, tmp_path / "docs" / "benchmarks.md")
    text = (tmp_path / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert "- MISMATCH: naive (10): bench-01 has 3 members, expected 4" in text
    console = Console(record=True, width=220)
    print_summary(results, console)
    output = console.export_text()
    assert "P2: 100-segment job vs one query per segment" in output and "MISMATCH" in output


def test_run_measures_the_baselines_and_openseg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXED_SECONDS", "3")  # the mixed-call window (P6b), short here
    # The streaming window (P5): 3 s at 30 events/s, each to its own profile of the 300.
    for name, value in (("STREAM_SECONDS", "3"), ("STREAM_RATE", "30"), ("EDGE_RATE", "10"),
                        ("STREAM_PROBE_EVERY", "10"), ("BENCH_EXPIRING", "200"), ("EXPIRY_LEAD", "20"),
                        ("EXPIRY_SPREAD", "3")):
        monkeypatch.setenv(name, value)
    console = Console(record=True, width=220)
    results = bench_run.run(
        "300",
        seed=2,
        repeat=1,
        naive_sample=100_000,
        report_path=tmp_path / "bench.md",
        data_root=tmp_path / "data",
        console=console,
    )
    assert results.mismatches == [] and results.openseg is not None
    assert (
        results.generation_seconds is not None
        and (tmp_path / "data" / "300-seed2" / "manifest.json").exists()
    )
    assert set(results.handwritten_10.result) == {f"bench-{n:02d}" for n in range(1, 11)}
    assert len(results.handwritten_100.result) == 100 and not results.naive.sampled
    text = (tmp_path / "bench.md").read_text(encoding="utf-8")
    assert "not measured" not in text
    figures = results.openseg
    assert figures.job_10 is not None
    assert figures.job_10.result["members"] == {s.id: results.handwritten_10.result[s.key] for s in SUITE}
    assert figures.export_300k is not None and figures.export_300k.result == 300
    assert figures.merged_build is not None and figures.merged_build.result == 300
    assert "## openseg" in text and "- openseg-job-100:" in text
    # P6 served a real process: it ingested the data set, built the store and ran the job while polled.
    assert figures.status_load is not None
    load = figures.status_load.result
    assert (load["status"], load["errors"]) == ("SUCCEEDED", 0)
    # Every person of the data set (identities seen only in events add profiles without a record).
    assert load["profiles"] >= results.manifest.profiles
    assert load["requests"] >= 50 and 0 < load["p50_ms"] <= load["p99_ms"] <= load["max_ms"]
    # P6b served a real process too: every kind of call answered, and every job and export it started ended.
    assert figures.mixed_load is not None
    mixed = figures.mixed_load.result
    assert (mixed["errors"], mixed["first_errors"]) == (0, {})
    assert mixed["jobs"]["ran"] >= 1 and mixed["exports"]["ran"] >= 1
    assert (mixed["jobs"]["failed"], mixed["jobs"]["stuck"], mixed["exports"]["failed"], mixed["exports"]["stuck"]) == (0,) * 4
    assert all(route["requests"] >= 1 for route in mixed["routes"].values())
    assert "Each call of the mixed-call run" in text
    # P5: every acknowledged event reached the lake once, and the job after it agrees with streaming.
    assert figures.streaming is not None
    streamed = figures.streaming.result
    assert (streamed["ack"]["errors"], streamed["acknowledged"]) == (0, 90)
    assert streamed["lake"] == {"records": 90, "distinct": 90, "expected": 90}
    assert (streamed["visible"]["count"], streamed["visible"]["errors"], streamed["interact"]["errors"]) == (90, 0, 0)
    assert (streamed["probes"]["count"], streamed["probes"]["errors"]) == (9, 0)
    assert streamed["flushes"] >= 1 and streamed["streamer_peak_bytes"] > 0
    assert all(figures_ == {"onlyBatch": 0, "onlyStream": 0, "baseline": False}
               for figures_ in streamed["drift"].values()), streamed["drift"]
    # P5c: every membership of the 200 expiring ones exited.
    assert figures.expiry is not None
    assert (figures.expiry.result["members"], figures.expiry.result["exited"]) == (200, 200)
    # The report lists the 100-segment job's costliest stages, from the job's own openseg:segmentCost.
    assert figures.job_100 is not None
    stages = {stage["name"]: stage for stage in figures.job_100.result["stages"]}
    assert stages["segments"]["sharedBy"] == 100 and stages["segments"]["rows"] == 300
    assert "Where the 100-segment job's plan spends its time" in text
    assert "- `segments` (profiles): " in text and "shared by 100 segment(s)" in text
    again = bench_run.ensure_data("300", 2, tmp_path / "data")
    assert again[2] is None  # cached: not generated again
