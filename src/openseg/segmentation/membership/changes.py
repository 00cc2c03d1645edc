"""Per-profile change files: how they are named and listed, and how compaction merges them.

Every :meth:`MembershipStore.apply <openseg.segmentation.membership.store.MembershipStore.apply>` writes one
file, ``changes/{n:012d}.parquet`` (its rows carry ``seq = n``). Until a segment job folds them into a state
(``State.changes_through``), every lookup reads every such file; a streamer writes several a second. Compaction
keeps their number logarithmic, size-tiered as in an LSM tree: ``fan_in`` (:data:`FAN_IN`) consecutive files of
one tier become one file of the next tier (:func:`plan_merge`).

Naming. A merged file is ``changes/{first:012d}-{last:012d}.parquet``: every row of the files numbered
``first..last``, each row as it was (``event``, ``at`` and ``seq`` included: history reads them all), sorted by
``_profile_id`` then ``seq`` in small row groups, so a lookup reads one group per profile and sees a profile's
writes in the order they were made (later writes win). A file is known by the last number it covers
(:attr:`ChangeFile.last`), so ordering files, a job's ``changes_through`` (the last file it listed) and the next
number (last + 1) read the same with or without merged files. A file is never rewritten under its name: a
reader that opened a listed path reads exactly the rows it listed.

Listing. A file whose range lies within another listed file's range is *superseded*: its rows are in the
bigger file, and :func:`listing` leaves it out. So a listing holds each row once, whether it is made before,
during or after a merge (a merge only adds a file; until the rename that publishes it, its inputs are listed,
after it the merged file). Superseded files are deleted later, when no reader can hold them (see below); one
left by a process killed between publishing and deleting is deleted by the next compaction.

Who reads what, and why nobody loses or double-counts a row (the store's locks: ``lock()`` serialises
writers, ``job_lock()`` is held by a segment job from reading the current membership to publishing its own,
``reading()`` is a shared lock on the store's folder):

- A compaction holds ``lock()`` (so no ``apply`` numbers or writes a file meanwhile) and ``job_lock()``, taken
  without waiting (a compaction is skipped while a job runs and tried again at the next write). Holding it, it
  knows every state that exists or can be made until it ends, and merges only files numbered above the
  highest ``changes_through`` of them: no merged file straddles a state's boundary, so each reader's state
  still splits the files into folded (all of a file) and unfolded (all of it). (A reader holds the current
  state or an older one that retention keeps; a pruned state is unreadable anyway: its snapshot is gone.)
- A job lists the changes to fold under ``lock()`` inside its ``job_lock()`` and reads them by path during its
  plan: no compaction runs until it publishes, so its files stay, and the ``changes_through`` it records (the
  last number it listed) is a file boundary for the compactions after it.
- Every other reader (lookups, ``log_position``, history and long-form queries, exports, dry runs) lists and
  reads inside ``reading()``. A compaction deletes superseded files only under the exclusive form of that lock,
  taken without waiting (else it leaves them to a later compaction), so no file a reader listed disappears
  before the reader is done, and no read needs a retry. A compaction never waits for a reader; a reader waits at
  most for a compaction's unlinking of files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from openseg.segmentation.membership.layout import CHANGES_SCHEMA

_CHANGE_FILE = re.compile(r"^(\d{12})(?:-(\d{12}))?\.parquet$")
#: The Parquet key-value metadata of a change file naming the log messages it applied (:class:`LogPosition`):
#: one position (a file ``apply`` wrote) or a list of them, the newest of each consumer (a merged file).
LOG_POSITION_KEY = b"openseg:logPosition"
#: Files of one tier merged into one (a store's default ``fan_in``; 0 or 1: never merge).
FAN_IN = 8
#: The most rows one merge reads (it holds them in memory and sorts them while the writer waits): a window of
#: files holding more is left as it is until a job folds it.
MAX_MERGE_ROWS = 500_000
#: The most merges one write runs: a backlog (files written while a job ran) is worked off over a few writes.
MAX_MERGES = 8


class Position(Protocol):
    """What :meth:`MembershipStore.apply` records of a log position (:class:`LogPosition` is one)."""

    @property
    def consumer(self) -> str: ...

    @property
    def after(self) -> int: ...

    @property
    def through(self) -> int: ...


@dataclass(frozen=True)
class LogPosition:
    """The stream log messages a change file applied: ``consumer``'s messages ``after < seq <= through`` (the
    consumer's offset lives in the files it writes, so one atomic write holds both effects and progress)."""

    consumer: str
    after: int
    through: int


@dataclass(frozen=True)
class ChangeFile:
    """One change file: the rows of the writes numbered ``first..last`` (one write unless merged)."""

    first: int
    last: int
    path: Path

    @property
    def span(self) -> int:
        return self.last - self.first + 1


def file_name(first: int, last: int) -> str:
    """The name of the change file holding the writes ``first..last``."""
    return f"{last:012d}.parquet" if first == last else f"{first:012d}-{last:012d}.parquet"


def listing(folder: Path) -> tuple[list[ChangeFile], list[ChangeFile]]:
    """The change files in ``folder``: those to read, oldest first, and those superseded by a merged file."""
    if not folder.is_dir():
        return [], []
    found = []
    for path in folder.iterdir():
        match = _CHANGE_FILE.match(path.name)
        if match:
            last = int(match.group(2) or match.group(1))
            found.append(ChangeFile(int(match.group(1)), last, path))
    # Ranges nest or are disjoint (a merge takes whole consecutive files): by first number, widest first, a
    # file within the reach of one before it is superseded.
    found.sort(key=lambda f: (f.first, -f.last))
    live: list[ChangeFile] = []
    superseded: list[ChangeFile] = []
    reach = 0
    for change in found:
        if change.last <= reach:
            superseded.append(change)
        else:
            live.append(change)
            reach = change.last
    return live, superseded


def tier(span: int, fan_in: int) -> int:
    """A file's tier: 0 for one write, 1 for ``fan_in`` writes, 2 for ``fan_in ** 2`` and so on."""
    level = 0
    while span >= fan_in:
        span //= fan_in
        level += 1
    return level


def plan_merge(files: Sequence[ChangeFile], fan_in: int, rows: Callable[[ChangeFile], int],
               max_rows: int = MAX_MERGE_ROWS) -> list[ChangeFile] | None:
    """The next files to merge into one: the oldest ``fan_in`` consecutive ``files`` of one tier that hold at
    most ``max_rows`` rows together (None: none).

    Each merge turns ``fan_in`` files of tier t into one of tier t + 1, so, written one at a time and merged
    after each write, n writes leave at most ``fan_in - 1`` files per tier: ``(fan_in - 1) * log_fan_in(n)``
    (28 files for 2,000 writes at 8), and each row is rewritten once per tier it climbs."""
    if fan_in < 2:
        return None
    start = 0
    while start < len(files):
        level = tier(files[start].span, fan_in)
        end = start
        while end < len(files) and tier(files[end].span, fan_in) == level:
            end += 1
        for first in range(start, end - fan_in + 1):
            window = list(files[first:first + fan_in])
            if sum(rows(f) for f in window) <= max_rows:
                return window
        start = end
    return None


def merged_table(files: Sequence[ChangeFile]) -> pa.Table:
    """Every row of ``files`` (consecutive, oldest first) in one table sorted by ``_profile_id`` then ``seq``,
    carrying the newest log position of each consumer that wrote one of them."""
    tables = []
    newest: dict[str, LogPosition] = {}
    for change in files:
        table = pq.read_table(change.path)
        for position in positions(table.schema.metadata):
            newest[position.consumer] = position
        tables.append(table.replace_schema_metadata(None).select(CHANGES_SCHEMA.names).cast(CHANGES_SCHEMA))
    merged = pa.concat_tables(tables)
    merged = merged.take(pc.sort_indices(merged, sort_keys=[("_profile_id", "ascending"), ("seq", "ascending")]))
    if newest:
        merged = merged.replace_schema_metadata(position_metadata(list(newest.values())))
    return merged


def position_metadata(found: Sequence[Position]) -> dict[bytes, str]:
    """The schema metadata recording ``found`` (one position as an object, as ``apply`` has always written it)."""
    encoded = [{"consumer": p.consumer, "after": p.after, "through": p.through} for p in found]
    return {LOG_POSITION_KEY: json.dumps(encoded[0] if len(encoded) == 1 else encoded)}


def positions(metadata: Mapping[bytes, bytes] | None) -> list[LogPosition]:
    """The log positions a change file's schema metadata records."""
    raw = (metadata or {}).get(LOG_POSITION_KEY)
    if raw is None:
        return []
    found = json.loads(raw)
    return [LogPosition(p["consumer"], int(p["after"]), int(p["through"]))
            for p in (found if isinstance(found, list) else [found])]
