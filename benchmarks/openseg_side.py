"""openseg's side of the benchmark: the measurements that need the openseg engine.

The lead wires these once segment jobs, exports and the merged-profile build exist; until then
``measure_openseg`` raises ``NotImplementedError`` and the report shows those rows as "not measured"
rather than inventing figures. Each figure must come from ``benchmarks.measure.measure`` (median of
``repeat`` runs in a fresh process, with its peak memory), on the same data and in the same run as
the baselines it is compared with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.generate import Manifest
from benchmarks.measure import Measurement
from benchmarks.segments import Segment


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


def measure_openseg(
    data_dir: Path, manifest: Manifest, suite: Sequence[Segment], mix: Sequence[Segment], repeat: int
) -> OpensegFigures:
    """Measures openseg on a generated data set.

    Args:
        data_dir: The generated data (``plain/`` merged store, ``ingest/`` records to ingest).
        manifest: Its manifest; ``manifest.as_of_time`` is the evaluation time of every job.
        suite: The 10-segment suite (``Segment.pql()`` gives each definition's PQL text).
        mix: The 100-segment mix.
        repeat: Runs per measurement (the median is reported).

    Raises:
        NotImplementedError: Until openseg's engine is wired in here.
    """
    raise NotImplementedError("openseg measurements not wired yet")
