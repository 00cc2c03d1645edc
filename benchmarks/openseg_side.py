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

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from benchmarks.generate import Manifest
from benchmarks.load import status_under_load
from benchmarks.measure import Measurement, measure
from benchmarks.mixed import mixed_under_load
from benchmarks.segments import Segment
from benchmarks.stream_expiry import p5c
from benchmarks.streaming import streaming_under_load

# Imported with the module, outside every timer: a measured run times the job, not the first import of
# openseg (the hand-written baselines' duckdb import is outside theirs too, and a service has its modules
# loaded before a job starts).
from openseg.engines.duckdb import DuckDBEngine
from openseg.pql import parse
from openseg.segmentation import membership
from openseg.segmentation.evaluate import evaluate_store

EXPORT_PROFILES = 300_000
#: P5c: memberships whose time window passes within the same minute (issue 16).
EXPIRING = 100_000


@dataclass(frozen=True)
class OpensegFigures:
    """openseg's measurements; None where a measurement is not available.

    Attributes:
        job_10: P1 (and P3): a segment job of the 10-segment suite, end to end (evaluation, membership
            diff, write), over the merged store built from the same data.
        job_100: P2: the same for the 100-segment mix.
        export_300k: P4: exporting 300k qualified profiles to Parquet.
        merged_build: Building the merged profile store (stitching + merge) from the ingest files.
        lookup: One profile's membership read from the 100-segment job's store (result: ``median_ms``,
            ``p99_ms`` of ``LOOKUPS`` lookups of random profiles).
        daily: 30 daily 100-segment jobs, ``as_of`` a day later each (result: the membership directory's
            bytes after the first job and after the last, snapshots pruned as the service does).
        status_load: P6: a job's status read by 50 clients while the service ingests, builds and runs it
            (result: see ``benchmarks.load.status_under_load``).
        mixed_load: P6b: 50 clients' mixed calls while segment jobs and exports run back to back (result:
            see ``benchmarks.mixed.mixed_under_load``).
        streaming: P5, P5a, P5b and the streamer's memory: events streamed open-loop while membership and the
            edge are read (result: see ``benchmarks.streaming.streaming_under_load``).
        expiry: P5c: ``EXPIRING`` memberships whose time window passes within one minute (result: see
            ``benchmarks.stream_expiry.p5c``).
    """

    job_10: Measurement | None = None
    job_100: Measurement | None = None
    export_300k: Measurement | None = None
    merged_build: Measurement | None = None
    lookup: Measurement | None = None
    daily: Measurement | None = None
    status_load: Measurement | None = None
    mixed_load: Measurement | None = None
    streaming: Measurement | None = None
    expiry: Measurement | None = None

    def measurements(self) -> list[Measurement]:
        """Every measurement present (for the peak-memory row)."""
        present = (self.job_10, self.job_100, self.export_300k, self.merged_build)
        return [m for m in present if m is not None]


def _pql(segments: Sequence[Segment]) -> list[tuple[str, str]]:
    ids = {s.key: s.id for s in segments}
    return [(s.id, s.pql(ids=ids)) for s in segments]


def segment_job(store: str, segments: list[tuple[str, str]], as_of: datetime, previous: str | None,
                out_dir: str, job_id: str = "bench") -> dict[str, Any]:
    """A segment job's work, as the worker does it: plan + run, membership diff, files written, in the
    membership store ``out_dir`` over its state ``previous`` (a state manifest's path, or None).

    Returns:
        ``members``: segment id -> its members; ``stages``: each stage of the plan as the job's
        ``openseg:segmentCost`` reports it (name, relation, seconds, rows, rowsScanned, sharedBy);
        ``state``: the path of the new state.
    """
    parsed = [(segment_id, parse(text)) for segment_id, text in segments]
    members = membership.MembershipStore(Path(out_dir))
    evaluation = evaluate_store(DuckDBEngine(), Path(store), parsed, as_of, members, members.state(previous), job_id)
    membership.publish(evaluation.staged)
    stages = {stage["name"]: stage for cost in evaluation.cost.values() for stage in cost["stages"]}
    return {"members": {s: c["realized"] + c["existing"] for s, c in evaluation.counts.items()},
            "stages": list(stages.values()), "state": str(evaluation.staged.state.path)}


def export_members(store: str, membership_state: str, segment_id: str, out_dir: str) -> int:
    """An export of one segment's members (all fields, with segmentMembership) to Parquet files."""
    from openseg.engines.duckdb import DuckDBEngine
    from openseg.exports.job_execution import FILE_ROWS, write_parts
    from openseg.exports.request import ExportRequest, SegmentFilter
    from openseg.exports.selection import select_members
    from openseg.segmentation import membership

    request = ExportRequest(dataset_id="bench", merge_policy_id="bench", merge_policy_version=1,
                            segments=(SegmentFilter(segment_id, "UPS", ("realized", "existing")),))
    target = Path(out_dir) / "export"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    members = membership.MembershipStore(Path(membership_state).parent.parent)
    with DuckDBEngine().workspace() as workspace:
        query = select_members(workspace, Path(store), members, members.state(membership_state), request,
                               request.segments)
        parts = write_parts(workspace, query, target, FILE_ROWS)
    return sum(rows for _, rows in parts)


#: Profile lookups timed for the lookup figure; daily jobs for the disk figure.
LOOKUPS, DAYS = 200, 30


def membership_lookups(state: str, store: str) -> dict[str, float]:
    """One profile's membership (``/access/entities``'s ``segmentMembership``) read ``LOOKUPS`` times, for
    random profiles; milliseconds per lookup."""
    import random
    import statistics
    import time

    from openseg.segmentation import membership

    with duckdb.connect() as con:
        ids = [r[0] for r in con.sql("SELECT _profile_id FROM read_parquet($p) USING SAMPLE 1000 ROWS",
                                     params={"p": str(Path(store) / "profiles.parquet")}).fetchall()]
    members = membership.MembershipStore(Path(state).parent.parent)
    times = []
    for profile_id in random.Random(7).choices(ids, k=LOOKUPS):
        started = time.perf_counter()
        members.lookup(members.state(state), [profile_id])
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": statistics.median(times), "p99_ms": sorted(times)[int(len(times) * 0.99) - 1]}


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def daily_jobs(store: str, segments: list[tuple[str, str]], as_of: datetime, out_dir: str) -> dict[str, int]:
    """``DAYS`` daily jobs (``as_of`` a day later each, so windows move and members enter and leave), with
    the service's retention; the membership's bytes on disk after the first and after the last."""
    from datetime import timedelta

    from openseg.segmentation import membership

    members = membership.MembershipStore(Path(out_dir))
    state = None
    sizes = []
    for day in range(DAYS):
        path = segment_job(store, segments, as_of + timedelta(days=day), state, out_dir, f"day{day:02d}")["state"]
        members.prune(membership.State.read(Path(path)), keep=2)
        state = path
        sizes.append(_bytes(Path(out_dir)))
    return {"first": sizes[0], "last": sizes[-1]}


def merged_build(ingest_dir: str, out_dir: str, memory_limit: str = "2GB") -> int:
    """The merged-profile build from the ingest files (default policy: pdg + timestampOrdered), with DuckDB
    capped at ``memory_limit`` (default: the service's ``OPENSEG_BUILD_MEMORY_LIMIT``)."""
    from openseg.profiles.build import build_profile_store
    from openseg.profiles.merge_policy import MergePolicySpec
    from openseg.profiles.sources import SourceFile

    ingest_time = datetime(2025, 7, 1, tzinfo=UTC)
    sources = [SourceFile(str(path), f"bench-{kind}", f"batch-{path.stem}", ingest_time,
                          "profile" if kind == "profiles" else "event")
               for kind in ("profiles", "events") for path in sorted((Path(ingest_dir) / kind).glob("*.parquet"))]
    from openseg.engines.duckdb import DuckDBEngine

    stats = build_profile_store(sources, MergePolicySpec(id="bench"), Path(out_dir) / "store",
                                memory_limit=memory_limit, engine=DuckDBEngine())
    return stats.profiles


def _export_membership(store: Path, root: Path, segment_id: str, count: int) -> str:
    """A membership store in which the first ``count`` profiles are in ``segment_id``; its state's path."""
    from openseg.segmentation import membership

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
    return str(membership.import_long_form(membership.MembershipStore(root), table, "export").path)


def measure_openseg(
    data_dir: Path, manifest: Manifest, suite: Sequence[Segment], mix: Sequence[Segment], repeat: int
) -> OpensegFigures:
    """Measures openseg on a generated data set (see the module docstring)."""
    store = str(data_dir / "plain")
    as_of = manifest.as_of_time.replace(tzinfo=UTC)
    work = Path(tempfile.mkdtemp(prefix="openseg-bench-"))
    try:
        # A first run makes the membership the measured runs diff against (as a daily job would).
        # Each measured run writes a new state beside the warm one (as the next daily job would).
        warm = segment_job(store, _pql(suite), as_of, None, str(work / "m10"), "warm")["state"]
        job_10 = measure("openseg-job-10", segment_job, store, _pql(suite), as_of, warm, str(work / "m10"),
                         repeat=repeat)
        warm100 = segment_job(store, _pql(mix), as_of, None, str(work / "m100"), "warm")["state"]
        job_100 = measure("openseg-job-100", segment_job, store, _pql(mix), as_of, warm100, str(work / "m100"),
                          repeat=repeat)
        count = min(EXPORT_PROFILES, manifest.profiles)
        export_state = _export_membership(Path(store), work / "export-membership", "bench-export", count)
        export = measure(f"openseg-export-{count}", export_members, store, export_state, "bench-export",
                         str(work), repeat=repeat)
        lookup = measure("openseg-membership-lookup", membership_lookups, str(work / "m100" / "states" / "bench.json"),
                         store, repeat=1)
        build = measure("openseg-merged-build", merged_build, str(data_dir / "ingest"), str(work), repeat=1)
        daily = measure("openseg-daily-jobs", daily_jobs, store, _pql(mix), as_of, str(work / "daily"), repeat=1)
        status_load = measure("openseg-status-under-load", status_under_load, data_dir, manifest, list(suite),
                              repeat=1)
        mixed_load = measure("openseg-mixed-calls-under-load", mixed_under_load, data_dir, manifest, list(suite),
                             repeat=1)
        streaming = measure("openseg-streaming", streaming_under_load, data_dir, manifest, list(suite), repeat=1)
        expiry = measure("openseg-stream-expiry", p5c, int(os.environ.get("BENCH_EXPIRING", EXPIRING)),
                         float(os.environ.get("EXPIRY_LEAD", 120)), float(os.environ.get("EXPIRY_SPREAD", 60)),
                         repeat=1)
        return OpensegFigures(job_10=job_10, job_100=job_100, export_300k=export, merged_build=build, lookup=lookup,
                              daily=daily, status_load=status_load, mixed_load=mixed_load, streaming=streaming,
                              expiry=expiry)
    finally:
        shutil.rmtree(work, ignore_errors=True)
