"""How membership is laid out on disk: one state manifest per published membership, bitmap snapshots,
explicit pairs, per-job history and per-profile change files.

``{home}/membership/{sandboxId}/{mergePolicyId}/``
- ``states/{name}.json`` (:class:`State`): what one published membership is made of. The metadata
  store's ``profile_stores.membership_path`` points at the current one.
- ``snapshots/{name}.parquet``: one row per profile in at least one segment: ``_profile_id`` and, per
  word ``k``, ``in_k`` (the segments it is in) and ``new_k`` (those it entered at the segment's last batch
  evaluation: ``realized`` rather than ``existing``), each a BIGINT of :data:`WORD_BITS` bits against the
  segment → bit registry the state carries (bit positions never move). Sorted by ``_profile_id``.
- ``pairs/{name}.parquet``: ``_profile_id, bit, status, lastQualificationTime`` for the pairs whose
  state does not follow from the bits: every ``exited`` pair (with the time it left) and pairs written
  one profile at a time since their segment's last batch evaluation.
- ``history/{jobId}.parquet``: a job's entries and exits (``segment_id, _profile_id, event, at, job_id``).
- ``changes/{seq}.parquet``: per-profile writes (``_profile_id, segment_id, status,
  lastQualificationTime, event, at, seq``), applied over the state until a job folds them in; kept as history.
  ``changes/{first}-{last}.parquet``: the writes ``first..last`` merged into one file (``changes.py``).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlglot import exp

FORMAT_VERSION = 1
#: Bits per word: a BIGINT's 63 value bits, so that no engine sees a sign or needs unsigned types.
WORD_BITS = 63

CHANGES_SCHEMA = pa.schema([
    ("_profile_id", pa.string()),
    ("segment_id", pa.string()),
    ("status", pa.string()),
    ("lastQualificationTime", pa.timestamp("us", tz="UTC")),
    ("event", pa.string()),
    ("at", pa.timestamp("us", tz="UTC")),
    ("seq", pa.int64()),
])


def word_of(bit: int) -> int:
    return bit // WORD_BITS


def mask_of(bit: int) -> int:
    return 1 << (bit % WORD_BITS)


def in_column(word: int) -> str:
    return f"in_{word}"


def new_column(word: int) -> str:
    return f"new_{word}"


def words_for(bits: int) -> int:
    """Words needed for ``bits`` bit positions (at least one)."""
    return max(1, -(-bits // WORD_BITS))


def bit_set(column: str, bit: int, table: str | None = None) -> exp.Expr:
    """``(table.column & mask) <> 0``: whether ``bit`` is set in the word column that holds it."""
    return exp.NEQ(this=exp.paren(exp.BitwiseAnd(this=exp.column(column, table=table),
                                                 expression=exp.Literal.number(mask_of(bit)))),
                   expression=exp.Literal.number(0))


@dataclass(frozen=True)
class SegmentBit:
    """A segment's bit and when a batch job last evaluated it (None: only per-profile writes so far)."""

    bit: int
    evaluated_at: datetime | None = None


@dataclass(frozen=True)
class State:
    """One published membership of a merge policy's store (a ``states/*.json`` manifest).

    Attributes:
        root: The membership directory of the (sandbox, merge policy).
        name: The state's name (the job that made it).
        snapshot: The bitmap snapshot file name under ``snapshots/`` (None: nobody is in any segment).
        pairs: The explicit pairs file name under ``pairs/`` (None: none).
        segments: Segment id -> its bit and last batch evaluation; every bit ever given stays.
        changes_through: Sequence number of the last per-profile change folded in.
    """

    root: Path
    name: str
    snapshot: str | None = None
    pairs: str | None = None
    segments: dict[str, SegmentBit] = field(default_factory=dict)
    changes_through: int = 0

    @property
    def words(self) -> int:
        return words_for(self.next_bit)

    @property
    def next_bit(self) -> int:
        return max((s.bit for s in self.segments.values()), default=-1) + 1

    @property
    def snapshot_path(self) -> Path | None:
        return self.root / "snapshots" / self.snapshot if self.snapshot else None

    @property
    def pairs_path(self) -> Path | None:
        return self.root / "pairs" / self.pairs if self.pairs else None

    @property
    def path(self) -> Path:
        return self.root / "states" / f"{self.name}.json"

    def with_bits(self, segment_ids: list[str]) -> State:
        """This state with a bit for each of ``segment_ids`` that has none (new bits after every used one)."""
        segments = dict(self.segments)
        following = self.next_bit
        for segment_id in segment_ids:
            if segment_id not in segments:
                segments[segment_id] = SegmentBit(following)
                following += 1
        return replace(self, segments=segments)

    def to_json(self) -> dict[str, Any]:
        return {
            "formatVersion": FORMAT_VERSION, "name": self.name, "snapshot": self.snapshot, "pairs": self.pairs,
            "changesThrough": self.changes_through,
            "segments": {s: {"bit": b.bit, "evaluatedAt": b.evaluated_at.isoformat() if b.evaluated_at else None}
                         for s, b in sorted(self.segments.items(), key=lambda item: item[1].bit)},
        }

    @classmethod
    def read(cls, path: Path) -> State:
        """The state the manifest at ``path`` holds; read once per version of the file (a state is written whole,
        once: each streamed interact and micro-batch reads its policy's, and parsing it anew cost 3 % of one)."""
        stat = path.stat()
        return _read_state(str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)

    @classmethod
    def _parse(cls, path: Path) -> State:
        data = json.loads(path.read_text())
        if data.get("formatVersion") != FORMAT_VERSION:
            raise ValueError(f"membership state {path} has format {data.get('formatVersion')}, not {FORMAT_VERSION}")
        segments = {s: SegmentBit(int(v["bit"]), datetime.fromisoformat(v["evaluatedAt"]) if v["evaluatedAt"] else None)
                    for s, v in data["segments"].items()}
        return cls(root=path.parent.parent, name=data["name"], snapshot=data["snapshot"], pairs=data["pairs"],
                   segments=segments, changes_through=int(data["changesThrough"]))


@functools.lru_cache(maxsize=64)
def _read_state(path: str, _mtime_ns: int, _size: int, _inode: int) -> State:
    return State._parse(Path(path))
