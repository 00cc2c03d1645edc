"""``metrics["openseg:streamingDrift"]``: how far a segment job's result lies from the membership streaming kept.

Streaming segmentation keeps every continuous segment up to date between jobs (``segmentation/streaming.py``),
so a job over the same data at the same time should move nobody in such a segment: its diff takes as the
previous membership the last job's with every per-profile (streaming) change folded in. Whatever the job's diff
does move is therefore drift, counted per continuous segment of the job:

* ``onlyBatch``: profiles the job puts in that streaming had out (entered by the job only);
* ``onlyStream``: profiles streaming had in that the job takes out (exited by the job only);
* ``baseline``: no job had evaluated the segment before, so streaming only ever saw the profiles messages
  touched, and ``onlyBatch`` counts the members found by this first evaluation (AEP's baseline), not drift.

Expected: zeros for every segment that is not a baseline. Data that reached the profile store without passing
through streaming (batch ingestion, which AEP too leaves to the next batch evaluation) or a window that expired
before the sweep reached it shows up here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, Protocol

from openseg.segmentation.membership import State
from openseg.segmentation.streaming import Streamable, is_streamed

#: The job metric's key.
DRIFT_METRIC = "openseg:streamingDrift"


class Definition(Streamable, Protocol):
    @property
    def id(self) -> str: ...


def continuous_segments(definitions: Iterable[Definition]) -> set[str]:
    """The ids of the definitions streaming segmentation evaluates (``streaming.is_streamed``)."""
    return {d.id for d in definitions if is_streamed(d)}


def streaming_drift(continuous: Collection[str], counts: Mapping[str, Mapping[str, int]],
                    previous: State | None) -> dict[str, dict[str, Any]]:
    """The drift of each continuous segment a job evaluated.

    Args:
        continuous: Ids of the continuous segments (others are left out).
        counts: The job diff's counts per segment (``realized``: entered by this job; ``exited``: left in it).
        previous: The membership state the diff started from (None: no job ever published one).

    Returns:
        Segment id -> ``{"onlyBatch", "onlyStream", "baseline"}``.
    """
    drift: dict[str, dict[str, Any]] = {}
    for segment_id in sorted(set(counts) & set(continuous)):
        entry = previous.segments.get(segment_id) if previous is not None else None
        drift[segment_id] = {"onlyBatch": int(counts[segment_id].get("realized", 0)),
                             "onlyStream": int(counts[segment_id].get("exited", 0)),
                             "baseline": entry is None or entry.evaluated_at is None}
    return drift


__all__ = ["DRIFT_METRIC", "continuous_segments", "streaming_drift"]
