"""``BENCH_SIZE=10m make bench``: the scale section of docs/benchmarks.md (benchmarks/scale.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from benchmarks.generate import Manifest
from benchmarks.measure import Measurement
from benchmarks.report import GIB, write_report
from benchmarks.scale import (
    SECTION_BEGIN,
    SECTION_END,
    SizeFigures,
    master_cores,
    projection,
    render_section,
    replace_section,
    scale_report,
)
from rich.console import Console

from benchmarks import run as bench_run
from tests.benchmarks.test_bench_measure_report import _results


def _m(seconds: float, peak_gib: float, result: object = None) -> Measurement:
    return Measurement("x", (seconds,), int(peak_gib * GIB), result=result)


def _spark(seconds: float, session: float) -> Measurement:
    return _m(seconds + session + 30, 1.0, {"session": session, "runs": [seconds], "members": {}})


def _figures(size: str, profiles: int, scale: float) -> SizeFigures:
    manifest = Manifest(42, profiles, profiles, profiles * 10, "2025-06-30T00:00:00Z", 180, 200_000, False)
    return SizeFigures(
        size, manifest,
        jobs={"10": _m(3.0 * scale, 1.0), "100": _m(8.0 * scale, 2.0)},
        handwritten={"10": _m(2.0 * scale, 0.5), "100": _m(6.0 * scale, 1.5)},
        spark={"local[2]": {"10": _spark(4.0 * scale, 6.0), "100": _spark(40.0 * scale, 6.0)}},
        build=_m(60.0 * scale, 2.5),
    )


def test_the_section_shows_each_figure_at_both_sizes_its_growth_and_the_goals() -> None:
    text = render_section(_figures("1m", 1_000_000, 1.0), _figures("10m", 10_000_000, 10.0), "2026-12-04 11:00 UTC",
                          "2 cores, 24 GiB, Test CPU")
    lines = text.splitlines()
    assert lines[0] == SECTION_BEGIN and lines[-1] == SECTION_END
    assert "## Scale: 1m → 10m profiles" in lines
    table = [line for line in lines if line.startswith("| ") and not line.startswith("| ---")]
    assert table == [
        "| measure | 1m | 10m | growth (time) | growth (memory) | goal at 10m | met |",
        "| openseg job (DuckDB), 10 segments | 3.0 s (1.00 GiB) | 30.0 s (1.00 GiB) | 10.0× | 1.0× | ≤ 10 s | no |",
        "| hand-written one-pass SQL, 10 segments | 2.0 s (0.50 GiB) | 20.0 s (0.50 GiB) | 10.0× | 1.0× | — | — |",
        "| Spark local[2] job, 10 segments (session start apart) | 4.0 s (1.00 GiB) | 40.0 s (1.00 GiB) | 10.0× "
        "| 1.0× | ≤ 4× DuckDB (P7) | yes (1.33× DuckDB) |",
        "| openseg job (DuckDB), 100 segments | 8.0 s (2.00 GiB) | 80.0 s (2.00 GiB) | 10.0× | 1.0× | ≤ 60 s | no |",
        "| hand-written one-pass SQL, 100 segments | 6.0 s (1.50 GiB) | 60.0 s (1.50 GiB) | 10.0× | 1.0× | — | — |",
        "| Spark local[2] job, 100 segments (session start apart) | 40.0 s (1.00 GiB) | 400.0 s (1.00 GiB) | 10.0× "
        "| 1.0× | ≤ 4× DuckDB (P7) | no (5.00× DuckDB) |",
        "| merged-profile build (DuckDB, limit 2GB) | 60.0 s (2.50 GiB) | 600.0 s (2.50 GiB) | 10.0× | 1.0× "
        "| ≤ 600 s within 4 GiB | yes |",
    ]
    assert "- 1m: openseg 2.7×, hand-written 3.0×, Spark local[2] 10.0×" in lines
    assert "- 10m: openseg 2.7×, hand-written 3.0×, Spark local[2] 10.0×" in lines
    assert "MISMATCH" not in text


def test_the_section_projects_spark_to_100m_profiles_from_its_measured_scaling() -> None:
    """One core's time at 10M times ten is the work at 100M; it spreads over N cores at the lowest efficiency
    measured on two (here the cluster's: 100 s / (2 × 80 s) = 62.5 %)."""
    large = _figures("10m", 10_000_000, 10.0)
    large.spark = {"local[1]": {"10": _spark(100.0, 5.0), "100": _spark(400.0, 5.0)},
                   "local[2]": {"10": _spark(62.5, 5.0), "100": _spark(250.0, 5.0)},
                   "cluster": {"10": _spark(80.0, 5.0), "100": _spark(320.0, 5.0)}}
    lines = projection(large)
    table = [line for line in lines if line.startswith("| ") and not line.startswith("| ---")]
    assert table == [
        "| job | one core (local[1]) | local[2] | standalone cluster, 2 one-core workers | one core's work at 100M "
        "| 16 cores | 64 cores |",
        "| 10 segments | 100.0 s | 62.5 s (80%) | 80.0 s (62%) | 1,000 core-s | 100 s | 25 s |",
        "| 100 segments | 400.0 s | 250.0 s (80%) | 320.0 s (62%) | 4,000 core-s | 6.7 min | 100 s |",
    ]
    assert "\n".join(lines) in render_section(_figures("1m", 1_000_000, 1.0), large, "now", "2 cores")


def test_a_count_one_core_did_not_run_is_projected_from_the_10_segment_efficiency() -> None:
    """``BENCH_SPARK_MASTER_100=local[2]``: one core's 100-segment time is local[2]'s times its two cores at its
    10-segment efficiency (250 s × 2 × 80 %), spread at the lowest 10-segment efficiency (the cluster's)."""
    large = _figures("10m", 10_000_000, 10.0)
    large.spark = {"local[1]": {"10": _spark(100.0, 5.0)},
                   "local[2]": {"10": _spark(62.5, 5.0), "100": _spark(250.0, 5.0)},
                   "cluster": {"10": _spark(80.0, 5.0)}}
    table = [line for line in projection(large) if line.startswith("| ") and not line.startswith("| ---")]
    assert table[1:] == [
        "| 10 segments | 100.0 s | 62.5 s (80%) | 80.0 s (62%) | 1,000 core-s | 100 s | 25 s |",
        "| 100 segments | about 400 s (from the 10-segment efficiency) | 250.0 s (80%) | — | 4,000 core-s "
        "| 6.7 min | 100 s |",
    ]


def test_no_projection_without_one_core_and_several_cores_measured() -> None:
    only_two = _figures("10m", 10_000_000, 10.0)
    assert projection(only_two) == []
    only_one = dataclasses.replace(only_two, spark={"local[1]": only_two.spark["local[2]"]})
    assert projection(only_one) == []


def test_the_cores_a_master_offers_are_read_off_its_name() -> None:
    assert [master_cores(m) for m in ("local[1]", "local[2]", "cluster", "local[*]", "spark://h:7077")] == [
        1, 2, 2, None, None]


def test_a_mismatch_or_a_failed_build_is_reported() -> None:
    large = dataclasses.replace(_figures("10m", 10_000_000, 10.0), build=None,
                                mismatches=["merged-profile build failed at 10m: out of memory"])
    text = render_section(_figures("1m", 1_000_000, 1.0), large, "now", "here")
    assert "- MISMATCH: merged-profile build failed at 10m: out of memory" in text
    assert not any(line.startswith("| merged-profile build") for line in text.splitlines())


def test_the_section_replaces_the_last_one_and_the_1m_report_keeps_it(tmp_path: Path) -> None:
    first = f"{SECTION_BEGIN}\nold figures\n{SECTION_END}\n"
    document = replace_section("# Benchmarks\n\n| table |\n", first)
    assert document == f"# Benchmarks\n\n| table |\n\n{first}"
    second = f"{SECTION_BEGIN}\nnew figures\n{SECTION_END}\n"
    assert replace_section(document, second) == f"# Benchmarks\n\n| table |\n\n{second}"
    # A 1M run rewrites the report around the section, which stays as the 10M run wrote it.
    report = tmp_path / "benchmarks.md"
    report.write_text(replace_section("# Benchmarks\n", second), encoding="utf-8")
    write_report(_results(None), report)
    text = report.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\n| target |") and text.endswith(second)
    assert text.count(SECTION_BEGIN) == 1


def test_make_bench_above_1m_writes_the_scale_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path on two tiny sizes, DuckDB only: jobs checked against the hand-written query, the build."""
    monkeypatch.setenv("BENCH_SPARK_MASTER", "")
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\nthe 1M report\n", encoding="utf-8")
    console = Console(record=True, width=200)
    problems = scale_report("600", 3, report, console, small="300", data_root=tmp_path / "data")
    assert problems == []
    text = report.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\nthe 1M report\n\n" + SECTION_BEGIN)
    rows = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows == ["| openseg job (DuckDB), 10 segments", "| hand-written one-pass SQL, 10 segments",
                    "| openseg job (DuckDB), 100 segments", "| hand-written one-pass SQL, 100 segments",
                    "| merged-profile build (DuckDB, limit 2GB)"]
    assert "300 profiles" in text and "600 profiles" in text
    assert "P2b at 600" in console.export_text()


def test_bench_run_hands_sizes_above_1m_to_the_scale_report(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[tuple[str, int]] = []

    def fake(size: str, seed: int, report_path: Path, console: Console) -> list[str]:
        called.append((size, seed))
        return []

    monkeypatch.setattr("benchmarks.scale.scale_report", fake)
    monkeypatch.setattr(bench_run, "run", lambda *a, **k: pytest.fail("the 1M report ran"))
    monkeypatch.setenv("BENCH_SIZE", "10m")
    monkeypatch.setenv("BENCH_SEED", "7")
    with pytest.raises(SystemExit) as done:
        bench_run.main()
    assert (done.value.code, called) == (0, [("10m", 7)])
