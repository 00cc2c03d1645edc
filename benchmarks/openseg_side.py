"""openseg's side of the benchmark: the measurements that need the openseg engine.

Each figure comes from ``benchmarks.measure.measure`` (median of ``repeat`` runs in a fresh process,
with its peak memory), on the same data and in the same run as the baselines it is compared with:
- a segment job's core, end to end: one plan over the merged store (``plain/``, the files the
  hand-written SQL reads), the membership diff against the previous run, and the membership and
  history files written (``job_10``, ``job_100``);
- an export of up to 300k qualified profiles to Parquet (``export_300k``);
- the merged-profile build (stitching + merge) from the ingest files (``merged_build``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.generate import Manifest
from benchmarks.measure import Measurement, measure
from benchmarks.segments import Segment

EXPORT_PROFILES = 300_000


@dataclass(frozen=True)
class OpensegFigures:
    """openseg's measurements; None where a measurement is not available.

    Attributes:
        job_10: P1 (and P3): a segment job of the 10-segment suite, end to end (evaluation, membership
            diff, write), over the merged store built from the same data.
        job_100: P2: the same for the 100-segment mix.
        export_300k: P4: exporting 300k qualified profiles to Parquet.
        merged_build: Building the merged profile store (stitching + merge) from the ingest files.
    """

    job_10: Measurement | None = None
    job_100: Measurement | None = None
    export_300k: Measurement | None = None
    merged_build: Measurement | None = None

    def measurements(self) -> list[Measurement]:
        """Every measurement present (for the peak-memory row)."""
        present = (self.job_10, self.job_100, self.export_300k, self.merged_build)
        return [m for m in present if m is not None]


def _pql(segments: Sequence[Segment]) -> list[tuple[str, str]]:
    ids = {s.key: s.id for s in segments}
    return [(s.id, s.pql(ids=ids)) for s in segments]


def segment_job(store: str, segments: list[tuple[str, str]], as_of: datetime, previous: str | None,
                out_dir: str) -> dict[str, Any]:
    """A segment job's work, as the worker does it: plan + run, membership diff, files written.

    Returns:
        ``members``: segment id -> its members; ``stages``: each stage of the plan as the job's
        ``openseg:segmentCost`` reports it (name, relation, seconds, rows, rowsScanned, sharedBy).
    """
    from openseg.engines.duckdb import DuckDBEngine
    from openseg.pql import parse
    from openseg.segmentation import membership
    from openseg.segmentation.evaluate import evaluate_store

    parsed = [(segment_id, parse(text)) for segment_id, text in segments]
    current, history = Path(out_dir) / "current.parquet", Path(out_dir) / "history.parquet"
    evaluation = evaluate_store(DuckDBEngine(), Path(store), parsed, as_of, previous, "bench", current, history)
    membership.write_atomically(evaluation.current, current)
    membership.write_atomically(evaluation.history, history)
    stages = {stage["name"]: stage for cost in evaluation.cost.values() for stage in cost["stages"]}
    return {"members": {s: c["realized"] + c["existing"] for s, c in evaluation.counts.items()},
            "stages": list(stages.values())}


def export_members(store: str, membership_path: str, segment_id: str, out_dir: str) -> int:
    """An export of one segment's members (all fields, with segmentMembership) to Parquet files."""
    from openseg.exports.request import ExportRequest, SegmentFilter
    from openseg.exports.runner import FILE_ROWS, select_members, write_parts

    request = ExportRequest(dataset_id="bench", merge_policy_id="bench", merge_policy_version=1,
                            segments=(SegmentFilter(segment_id, "UPS", ("realized", "existing")),))
    target = Path(out_dir) / "export"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    parts = write_parts(select_members(Path(store), membership_path, request, request.segments), target, FILE_ROWS)
    return sum(rows for _, rows in parts)


def merged_build(ingest_dir: str, out_dir: str) -> int:
    """The merged-profile build from the ingest files (default policy: pdg + timestampOrdered)."""
    from openseg.profiles.build import build_profile_store
    from openseg.profiles.merge_policy import MergePolicySpec
    from openseg.profiles.sources import SourceFile

    ingest_time = datetime(2025, 7, 1, tzinfo=UTC)
    sources = [SourceFile(str(path), f"bench-{kind}", f"batch-{path.stem}", ingest_time,
                          "profile" if kind == "profiles" else "event")
               for kind in ("profiles", "events") for path in sorted((Path(ingest_dir) / kind).glob("*.parquet"))]
    # The same memory cap the service builds with (OPENSEG_BUILD_MEMORY_LIMIT default).
    stats = build_profile_store(sources, MergePolicySpec(id="bench"), Path(out_dir) / "store", memory_limit="2GB")
    return stats.profiles


def _export_membership(store: Path, path: Path, segment_id: str, count: int) -> None:
    with duckdb.connect() as con:
        ids = con.sql("SELECT _profile_id FROM read_parquet($p) ORDER BY _profile_id LIMIT $n",
                      params={"p": str(store / "profiles.parquet"), "n": count}).to_arrow_table()
    now = datetime(2025, 6, 30, tzinfo=UTC)
    table = pa.table({
        "_profile_id": ids["_profile_id"],
        "segment_id": pa.array([segment_id] * ids.num_rows, pa.string()),
        "status": pa.array(["realized"] * ids.num_rows, pa.string()),
        "lastQualificationTime": pa.array([now] * ids.num_rows, pa.timestamp("us", tz="UTC")),
    })
    pq.write_table(table, path)


def measure_openseg(
    data_dir: Path, manifest: Manifest, suite: Sequence[Segment], mix: Sequence[Segment], repeat: int
) -> OpensegFigures:
    """Measures openseg on a generated data set (see the module docstring)."""
    store = str(data_dir / "plain")
    as_of = manifest.as_of_time.replace(tzinfo=UTC)
    work = Path(tempfile.mkdtemp(prefix="openseg-bench-"))
    try:
        # A first run makes the membership the measured runs diff against (as a daily job would).
        warm = work / "warm"
        warm.mkdir()
        segment_job(store, _pql(suite), as_of, None, str(warm))
        job_10 = measure("openseg-job-10", segment_job, store, _pql(suite), as_of,
                         str(warm / "current.parquet"), str(work / "j10"), repeat=repeat)
        warm100 = work / "warm100"
        warm100.mkdir()
        segment_job(store, _pql(mix), as_of, None, str(warm100))
        job_100 = measure("openseg-job-100", segment_job, store, _pql(mix), as_of,
                          str(warm100 / "current.parquet"), str(work / "j100"), repeat=repeat)
        count = min(EXPORT_PROFILES, manifest.profiles)
        membership_path = work / "export-membership.parquet"
        _export_membership(Path(store), membership_path, "bench-export", count)
        export = measure(f"openseg-export-{count}", export_members, store, str(membership_path), "bench-export",
                         str(work), repeat=repeat)
        build = measure("openseg-merged-build", merged_build, str(data_dir / "ingest"), str(work), repeat=1)
        return OpensegFigures(job_10=job_10, job_100=job_100, export_300k=export, merged_build=build)
    finally:
        shutil.rmtree(work, ignore_errors=True)
