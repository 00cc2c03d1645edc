"""The membership store: the one owner of segment membership (see ``layout.py`` for the files).

Everything outside this package reads and writes membership through :class:`MembershipStore`: jobs diff
and publish through ``differ.MembershipDiffer``; the planner reads ``inSegment`` through
:meth:`MembershipStore.relation`; exports, previews, ``/access/entities`` and history through the reads
below; streaming and edge through :meth:`MembershipStore.apply`.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from stat import S_ISDIR
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlglot import exp

from openseg.arrow_rows import python_columns, python_rows
from openseg.atomic_files import StagedFile, locked
from openseg.engines.parquet import key_runs, matching_rows, row_count
from openseg.segmentation.membership import changes as change_files
from openseg.segmentation.membership.changes import ChangeFile, LogPosition, Position
from openseg.segmentation.membership.layout import (
    CHANGES_SCHEMA,
    State,
    bit_set,
    in_column,
    mask_of,
    new_column,
    word_of,
)
from openseg.segmentation.membership.rule import PairState, transition

T = TypeVar("T")
#: The relations :meth:`MembershipStore.history` reads: the jobs' history files and the change files.
HISTORY_FILES, CHANGE_FILES = "history_files", "change_files"


@dataclass(frozen=True)
class BitsRelation:
    """The relation ``inSegment`` reads (one row per profile in some segment) and how to test it.

    The planner registers the snapshot as its ``membership`` relation; :meth:`member` is the condition
    that a row's profile is in a segment (None: the segment has no members anywhere).
    """

    segments: Mapping[str, int]

    def member(self, segment_id: str, alias: str) -> exp.Expr | None:
        bit = self.segments.get(segment_id)
        return None if bit is None else bit_set(in_column(word_of(bit)), bit, alias)


class MembershipStore:
    """The membership of one (sandbox, merge policy), under ``root``.

    Args:
        root: The store's folder.
        fan_in: How many change files of one tier a compaction merges into one (None: ``changes.FAN_IN``; 0: the
            store never compacts; see ``changes.py``).
    """

    def __init__(self, root: Path, fan_in: int | None = None) -> None:
        self.root = root
        self.fan_in = change_files.FAN_IN if fan_in is None else fan_in

    # ----------------------------------------------------------------------------------- states

    def state(self, pointer: str | None) -> State | None:
        """The state the metadata store's pointer names (None: no membership yet)."""
        if not pointer or not Path(pointer).is_file():
            return None
        if pointer.endswith(".parquet"):  # the long-form file of openseg before the bitmap layout
            return self._import_legacy(Path(pointer))
        return State.read(Path(pointer))

    def _import_legacy(self, path: Path) -> State:
        from openseg.segmentation.membership.encode import import_long_form

        name = f"legacy-{path.stem}"
        existing = self.root / "states" / f"{name}.json"
        if existing.is_file():
            return State.read(existing)
        return import_long_form(self, pq.read_table(path), name)

    def empty(self, name: str) -> State:
        return State(root=self.root, name=name)

    def changes(self, state: State | None) -> list[tuple[int, Path]]:
        """Per-profile change files not folded into ``state``, oldest first: the last write each holds and its
        path. Read them inside :meth:`reading` (or, in a segment job, its :meth:`job_lock`): a compaction may
        delete a file once it is merged into another."""
        through = state.changes_through if state else 0
        return [(change.last, change.path) for change in self._change_files() if change.last > through]

    def _change_files(self) -> list[ChangeFile]:
        return change_files.listing(self.root / "changes")[0]

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Serialises per-profile writers with the listing of changes a job folds (across processes)."""
        with locked(self.root / ".lock"):
            yield

    @contextmanager
    def job_lock(self) -> Iterator[None]:
        """Held by a segment job from reading the current membership to publishing its own, so that jobs of this
        store run one at a time in every process sharing the home (a lock file, as :meth:`lock`)."""
        with self._job_lock(wait=True):
            yield

    def _job_lock(self, wait: bool) -> AbstractContextManager[bool]:
        """:meth:`job_lock`; without ``wait``, yields whether it was free (and is now held)."""
        return locked(self.root / ".job.lock", wait=wait)

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Held while reading change files (those :meth:`changes` lists, and through them :meth:`history` and
        :meth:`define_long_form`): a compaction deletes the files it merged only when no reader holds this, so
        a listed file stays readable until the reader is done (see ``changes.py``). A shared lock on the store's
        folder (created if missing, as by a write): readers never wait for one another, nor for a compaction
        beyond its deleting files."""
        with self._folder_lock(shared=True, wait=True):
            yield

    def _folder_lock(self, *, shared: bool, wait: bool) -> AbstractContextManager[bool]:
        # The folder itself, not a file in it: taking the lock leaves no trace a reader of the folder would see.
        self.root.mkdir(parents=True, exist_ok=True)
        return locked(self.root, shared=shared, wait=wait)

    def relation(self, state: State | None) -> tuple[BitsRelation, str | None]:
        """What a plan reads for ``inSegment``: the bit tests and the snapshot file (None: nobody)."""
        if state is None:
            return BitsRelation({}), None
        snapshot = state.snapshot_path
        return BitsRelation({s: b.bit for s, b in state.segments.items()}), str(snapshot) if snapshot else None

    # ------------------------------------------------------------------------------------ reads

    def lookup(self, state: State | None, profile_ids: Sequence[str]) -> dict[str, dict[str, PairState]]:
        """Each profile's membership: segment id -> state, with per-profile changes applied."""
        result: dict[str, dict[str, PairState]] = {p: {} for p in profile_ids}
        if state is not None:
            by_bit = {b.bit: (s, b) for s, b in state.segments.items()}
            snapshot = state.snapshot_path
            if snapshot is not None:
                for row in rows_of(snapshot, profile_ids):
                    for bit, (segment_id, entry) in by_bit.items():
                        word = row.get(in_column(word_of(bit)))
                        if word is None or not word & mask_of(bit) or entry.evaluated_at is None:
                            continue
                        fresh = (row.get(new_column(word_of(bit))) or 0) & mask_of(bit)
                        result[row["_profile_id"]][segment_id] = PairState(
                            "realized" if fresh else "existing", entry.evaluated_at)
            pairs = state.pairs_path
            if pairs is not None:
                for row in rows_of(pairs, profile_ids):
                    segment_id, _ = by_bit[row["bit"]]
                    result[row["_profile_id"]][segment_id] = PairState(row["status"], row["lastQualificationTime"])
        with self.reading():
            for _, path in self.changes(state):
                # A merged file holds a profile's rows by ``seq``: later writes win, as across files.
                for row in rows_of(path, profile_ids):
                    result[row["_profile_id"]][row["segment_id"]] = PairState(row["status"],
                                                                              row["lastQualificationTime"])
        return result

    def define_long_form(self, workspace: Relations, state: State | None, name: str,
                         segment_ids: Sequence[str] | None = None) -> None:
        """Define the view ``name`` in ``workspace``: ``_profile_id, segment_id, status, lastQualificationTime``
        (AEP's ``segmentMembership.ups`` as rows) of ``segment_ids`` (None: all), per-profile changes applied.

        The membership files it reads are registered beside it as ``{name}_snapshot``, ``{name}_pairs`` and
        ``{name}_changes``, read where they lie; the view is an engine-neutral sqlglot query the workspace
        renders in its dialect.
        """
        tables: dict[str, exp.Table] = {}
        for kind, source in self._long_form_files(state).items():
            tables[kind] = exp.to_table(f"{name}_{kind}")
            workspace.register(tables[kind].name, source)
        workspace.define(name, long_form_query(state, segment_ids, tables))

    def register_long_form(self, con: Connection, state: State | None, name: str,
                           segment_ids: Sequence[str] | None = None) -> None:
        """:meth:`define_long_form` on a DuckDB connection (temporary views of it), for callers that hold one."""
        self.define_long_form(_DuckDBViews(con), state, name, segment_ids)

    def _long_form_files(self, state: State | None) -> dict[str, str | tuple[str, ...]]:
        """What the long form of ``state`` reads: ``snapshot`` and ``pairs`` (a file, or a directory of part
        files), and the ``changes`` files not folded into it (read inside :meth:`reading`)."""
        files: dict[str, str | tuple[str, ...]] = {}
        if state is not None:
            for kind, path in (("snapshot", state.snapshot_path), ("pairs", state.pairs_path)):
                if path is not None:
                    files[kind] = str(path)
        changes = tuple(str(path) for _, path in self.changes(state))
        if changes:
            files["changes"] = changes
        return files

    def history(self, jobs: Sequence[str]) -> tuple[exp.Query, dict[str, tuple[str, ...]]] | None:
        """Every entry and exit (``segment_id, _profile_id, event, at, job_id``) of the jobs that ``jobs`` lists as
        succeeded and of per-profile writes: a query and the relations it reads (names -> Parquet files), for
        an engine to run inside :meth:`reading` (None: no history)."""
        job_files = tuple(sorted(str(part) for p in (self.root / "history").glob("*.parquet")
                                 for part in parquet_files(p))) if (self.root / "history").is_dir() else ()
        written = tuple(str(path) for _, path in self.changes(None))
        columns = [exp.column(c, quoted=True) for c in ("segment_id", "_profile_id", "event", "at")]
        parts: list[exp.Query] = []
        tables: dict[str, tuple[str, ...]] = {}
        if job_files and jobs:
            tables[HISTORY_FILES] = job_files
            parts.append(exp.select(*columns, exp.column("job_id")).from_(HISTORY_FILES)
                         .where(exp.column("job_id").isin(*(exp.Literal.string(j) for j in jobs))))
        if written:
            tables[CHANGE_FILES] = written
            no_job = exp.alias_(exp.cast(exp.null(), exp.DataType.build("VARCHAR")), "job_id")
            parts.append(exp.select(*columns, no_job).from_(CHANGE_FILES)
                         .where(exp.column("event").is_(exp.null()).not_()))
        if not parts:
            return None
        query = parts[0]
        for part in parts[1:]:
            query = exp.union(query, part, distinct=False)
        return query, tables

    # ---------------------------------------------------------------------- per-profile writes

    def apply(self, state: State | None, evaluations: Mapping[str, Mapping[str, bool]], at: datetime,
              position: Position | None = None) -> list[dict[str, Any]]:
        """Apply the evaluation of a few profiles at ``at`` atomically: profile id -> segment id ->
        whether it qualifies now. Follows ``rule.transition``; visible to lookups and to the next job's
        diff once this returns. Returns the rows written (with their history ``event``).

        ``position``: the log messages this evaluation applied, written in the same change file (one is
        written for it even when no pair moved) and read back by :meth:`log_position`.

        Then, when enough change files of one tier are waiting, merges them (:meth:`compact`)."""
        with self.lock():
            current = self.lookup(state, list(evaluations))
            rows: list[dict[str, Any]] = []
            for profile_id, segments in evaluations.items():
                for segment_id, qualifies in segments.items():
                    previous = current[profile_id].get(segment_id)
                    moved = transition(previous, qualifies, at)
                    if moved.state is None or moved.state == previous:
                        continue
                    rows.append({"_profile_id": profile_id, "segment_id": segment_id, "status": moved.state.status,
                                 "lastQualificationTime": moved.state.last_qualification_time,
                                 "event": moved.event, "at": at, "seq": 0})
            if rows or position is not None:
                existing = self.changes(None)
                following = max([existing[-1][0] if existing else 0, state.changes_through if state else 0]) + 1
                for row in rows:
                    row["seq"] = following
                target = self.root / "changes" / change_files.file_name(following, following)
                # By profile, as lookups find a profile's rows through each row group's first id.
                table = pa.Table.from_pylist(sorted(rows, key=lambda row: row["_profile_id"]), schema=CHANGES_SCHEMA)
                if position is not None:
                    table = table.replace_schema_metadata(change_files.position_metadata([position]))
                write_atomically(table, target)
                self._compact(state)
        return rows

    def compact(self, state: State | None = None) -> int:
        """Merge waiting change files, as :meth:`apply` does after each write (see ``changes.py``): returns how
        many merges ran (0 also when a segment job of this store runs: the files wait for the next write)."""
        with self.lock():
            return self._compact(state)

    def _compact(self, state: State | None) -> int:
        """Under :meth:`lock`: up to ``changes.MAX_MERGES`` merges, then delete what earlier merges superseded."""
        folder = self.root / "changes"
        live, superseded = change_files.listing(folder)
        hint = state.changes_through if state else 0
        if not superseded and self._next_merge(live, hint) is None:
            return 0
        merges = 0
        with self._job_lock(wait=False) as free:
            if not free:
                return 0
            # No job runs, nor can start: the states there are all there will be until this ends.
            folded = max(hint, self._folded_through())
            while merges < change_files.MAX_MERGES:
                window = self._next_merge(change_files.listing(folder)[0], folded)
                if window is None:
                    break
                write_atomically(change_files.merged_table(window),
                                 folder / change_files.file_name(window[0].first, window[-1].last))
                merges += 1
            superseded = change_files.listing(folder)[1]
            if superseded:
                with self._folder_lock(shared=False, wait=False) as alone:
                    if alone:  # else readers may hold them: a later compaction deletes them
                        for change in superseded:
                            change.path.unlink(missing_ok=True)
        return merges

    def _next_merge(self, live: list[ChangeFile], folded: int) -> list[ChangeFile] | None:
        """The files to merge next among those not folded into any state (None: none)."""
        return change_files.plan_merge([f for f in live if f.first > folded], self.fan_in, _rows)

    def _folded_through(self) -> int:
        """The highest ``changes_through`` of the store's states: files up to it are folded into some state."""
        folder = self.root / "states"
        return max((State.read(path).changes_through for path in folder.glob("*.json")), default=0) \
            if folder.is_dir() else 0

    def log_position(self, consumer: str) -> LogPosition | None:
        """The newest log position ``consumer`` wrote with :meth:`apply` (None: it never wrote here)."""
        with self.reading():
            for _, path in reversed(self.changes(None)):
                for found in change_files.positions(pq.read_schema(path).metadata):
                    if found.consumer == consumer:
                        return found
        return None

    # -------------------------------------------------------------------------------- retention

    def prune(self, current: State, keep: int) -> list[Path]:
        """Delete the snapshots and pairs of all but the ``keep`` newest states (the current one always
        stays). History and change files stay (compaction merges change files, never drops a row): they answer
        "who was in S at T" for any T."""
        folder = self.root / "states"
        states = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        kept = {current.path} | set(states[:max(keep, 1)])
        referenced: set[Path] = set()
        for path in kept:
            state = State.read(path)
            referenced.update(p for p in (state.snapshot_path, state.pairs_path) if p is not None)
        removed = []
        for path in states:
            if path in kept:
                continue
            state = State.read(path)
            for data in (state.snapshot_path, state.pairs_path):
                if data is not None and data not in referenced and data.exists():
                    if data.is_dir():  # part files an engine wrote in parallel
                        shutil.rmtree(data)
                    else:
                        data.unlink()
                    removed.append(data)
            path.unlink()
            removed.append(path)
        return removed


def _rows(change: ChangeFile) -> int:
    return row_count(change.path)


def rows_of(path: Path, profile_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of a membership file (sorted by ``_profile_id``; or a directory of such part files) that
    belong to ``profile_ids``, each profile's in the file's order.

    A small file (a change file: a micro-batch's rows, merged by eights) is read whole once per version and kept
    with where each profile's rows lie (:data:`SMALL_FILE_ROWS`): a micro-batch's lookup of 300 profiles in each
    of twenty change files bisected each file for each profile, 26 ms, where a dictionary takes about 2. A larger
    one (a snapshot, a job's pairs) is read with the engines' point reads, which decode only the row groups that
    can hold them, once per file version, and keep them. Files are never rewritten under their name with the same
    size and time."""
    if not profile_ids:
        return []
    found: list[dict[str, Any]] = []
    wanted = set(profile_ids)
    for part, stat in _parts(path):
        kept = _small_files.kept(part, stat)
        if kept is None and row_count(part, stat) <= SMALL_FILE_ROWS:
            kept = _small_files.read(part, stat)
        if kept is not None:
            found += kept.rows(wanted)
            continue
        held = _file_ids.ids(part, stat) if row_count(part, stat) <= INDEXED_FILE_ROWS else None
        asked = profile_ids if held is None else [p for p in profile_ids if p in held]
        if asked:  # a file that holds none of them is not read
            found += python_rows(matching_rows(part, "_profile_id", asked))
    return found


def _parts(path: Path) -> list[tuple[Path, os.stat_result]]:
    """:func:`parquet_files` with each file's ``stat`` (a file's own, taken once)."""
    found = path.stat()
    if S_ISDIR(found.st_mode):
        return [(part, part.stat()) for part in parquet_files(path)]
    return [(path, found)]


#: A membership file of at most this many rows is kept whole in memory by :func:`rows_of`.
SMALL_FILE_ROWS = 50_000
#: How many rows of small files a process keeps at most (the least recently read files leave first).
KEPT_SMALL_ROWS = 1_000_000
#: A larger one of at most this many rows (a merged change file of a high tier) has the set of its profile ids kept,
#: so that a lookup of profiles it does not hold reads none of its row groups: streaming's lookups of a micro-batch's
#: profiles missed a change file of 126,000 rows at almost every micro-batch, and its point reads took a tenth of
#: the streamer's CPU (py-spy, the streaming bench at 1M).
INDEXED_FILE_ROWS = 500_000
#: How many profile ids of such files a process keeps at most (the least recently read files leave first).
KEPT_FILE_IDS = 1_000_000


class _KeptFile(NamedTuple):
    """A small membership file's rows, sorted by profile (stably: each profile's in the file's order), as a tuple
    of Python values per column, and each profile's run of rows: ``(start, stop)``."""

    names: tuple[str, ...]
    columns: tuple[tuple[Any, ...], ...]
    runs: dict[str, tuple[int, int]]

    @classmethod
    def of(cls, table: pa.Table) -> _KeptFile:
        runs = key_runs(table.column("_profile_id"))
        if runs is None:  # not sorted (every writer of the store sorts; a file of another writer may not be)
            table = table.take(pc.sort_indices(table, sort_keys=[("_profile_id", "ascending")]))
            runs = key_runs(table.column("_profile_id"))
            assert runs is not None
        return cls(tuple(table.column_names), tuple(tuple(column) for column in python_columns(table)), runs)

    @property
    def num_rows(self) -> int:
        return len(self.columns[0])

    def rows(self, wanted: set[str]) -> list[dict[str, Any]]:
        """The rows of the ``wanted`` profiles, each profile's in the file's order."""
        fewer, more = (wanted, self.runs) if len(wanted) < len(self.runs) else (self.runs, wanted)
        return [dict(zip(self.names, [column[row] for column in self.columns], strict=True))
                for profile_id in fewer if profile_id in more for row in range(*self.runs[profile_id])]


class _ByVersion(Generic[T]):
    """What a process keeps of membership files, by file version (path, time, size: a file is never rewritten under
    its name with the same size and time), least recently read first out once their sizes pass ``capacity``."""

    def __init__(self, capacity: int, size: Callable[[T], int]) -> None:
        self.capacity = capacity
        self._size = size
        self._kept: OrderedDict[tuple[str, int, int], T] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, path: Path, stat: os.stat_result) -> T | None:
        version = (str(path), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            kept = self._kept.get(version)
            if kept is not None:
                self._kept.move_to_end(version)
        return kept

    def put(self, path: Path, stat: os.stat_result, value: T) -> T:
        version = (str(path), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if version not in self._kept:
                self._kept[version] = value
                self._total += self._size(value)
                while self._total > self.capacity and len(self._kept) > 1:
                    self._total -= self._size(self._kept.popitem(last=False)[1])
        return value


class _SmallFiles:
    """Small membership files, each read whole once per version and kept as its columns' values with each
    profile's run of rows.

    Columns and runs are tuples of plain values, which the garbage collector stops tracking at its first
    collection of them: kept as lists of dictionaries, the 100,000 profiles of the change files a streaming process
    held at 1M profiles made a full collection of the process every second, 20-30 ms of CPU each, a pause of every
    micro-batch and edge call in it. Kept as a tuple of values per row, grouped by profile, a merged change file of
    12,000 rows took 8.2 ms to take in, on the first lookup of it in each process; as columns, 4.4. (As an Arrow table
    with its runs it took 3, but each lookup that found a profile's rows then paid 35-70 us to make them Python
    values, against 1 here.)"""

    def __init__(self, capacity: int) -> None:
        self._kept: _ByVersion[_KeptFile] = _ByVersion(capacity, lambda kept: kept.num_rows)

    def kept(self, path: Path, stat: os.stat_result) -> _KeptFile | None:
        """The file's version as kept, if it is and is small (:data:`SMALL_FILE_ROWS`)."""
        kept = self._kept.get(path, stat)
        return kept if kept is not None and kept.num_rows <= SMALL_FILE_ROWS else None

    def read(self, path: Path, stat: os.stat_result) -> _KeptFile:
        """The file's version, read whole and kept."""
        # Not read_table: its dataset discovery doubled a small file's read; one thread: a change file is a row
        # group or a few, which the thread pool's hand-offs made slower.
        with pq.ParquetFile(path, pre_buffer=False) as file:
            return self._kept.put(path, stat, _KeptFile.of(file.read(use_threads=False)))


_small_files = _SmallFiles(KEPT_SMALL_ROWS)


class _FileIds:
    """The profile ids of membership files of :data:`INDEXED_FILE_ROWS` rows at most, each file version's read once
    (its ``_profile_id`` column) and kept as a set."""

    def __init__(self, capacity: int) -> None:
        self._kept: _ByVersion[frozenset[str]] = _ByVersion(capacity, len)

    def ids(self, path: Path, stat: os.stat_result) -> frozenset[str]:
        kept = self._kept.get(path, stat)
        if kept is not None:
            return kept
        with pq.ParquetFile(path, pre_buffer=False) as file:
            ids = frozenset(file.read(columns=["_profile_id"], use_threads=False).column(0).to_pylist())
        return self._kept.put(path, stat, ids)


_file_ids = _FileIds(KEPT_FILE_IDS)


def parquet_files(path: Path) -> list[Path]:
    """The Parquet files of a membership file: itself, or the part files of a directory (an engine that
    writes in parallel, Spark, writes one per task), in name order."""
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def parquet_schema(path: Path) -> pa.Schema:
    """The schema of a membership file or directory of part files."""
    return pq.read_schema(parquet_files(path)[0])


class Relations(Protocol):
    """Where the long form is defined: an engine's workspace (``openseg.engines.base.Workspace``)."""

    def register(self, name: str, source: str | tuple[str, ...]) -> None: ...

    def define(self, name: str, query: exp.Query) -> None: ...


class Connection(Protocol):
    """A DuckDB connection, as far as :meth:`MembershipStore.register_long_form` uses it."""

    def execute(self, query: str) -> object: ...


class _DuckDBViews:
    """:class:`Relations` as temporary views of a DuckDB connection."""

    def __init__(self, con: Connection) -> None:
        self.con = con

    def register(self, name: str, source: str | tuple[str, ...]) -> None:
        paths = [Path(source)] if isinstance(source, str) else [Path(path) for path in source]
        files = [str(part) for path in paths for part in parquet_files(path)]
        self.define(name, exp.select(exp.Star()).from_(exp.func("read_parquet", exp.convert(files))))

    def define(self, name: str, query: exp.Query) -> None:
        view = exp.Create(this=exp.to_table(name), kind="VIEW", expression=query, replace=True,
                          properties=exp.Properties(expressions=[exp.TemporaryProperty()]))
        self.con.execute(view.sql("duckdb"))


#: The long form's columns, in order.
LONG_FORM_COLUMNS = ("_profile_id", "segment_id", "status", "lastQualificationTime")


def _timestamp(value: datetime) -> exp.Expr:
    return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("TIMESTAMPTZ"))


def _nothing(*columns: tuple[str, str]) -> exp.Select:
    """No rows, with the columns ``(name, type)``."""
    return exp.select(*(exp.cast(exp.null(), exp.DataType.build(kind)).as_(column) for column, kind in columns)
                      ).where(exp.false())


def _union_all(queries: Sequence[exp.Query]) -> exp.Query:
    return queries[0] if len(queries) == 1 else exp.union(*queries, distinct=False)


def long_form_query(state: State | None, segment_ids: Sequence[str] | None,
                    tables: Mapping[str, exp.Table]) -> exp.Query:
    """The query behind :meth:`MembershipStore.define_long_form`, reading the relations ``tables`` (``snapshot``,
    ``pairs``, ``changes``: those the state has). Segment ids and times are literals."""
    empty = _nothing(("_profile_id", "VARCHAR"), ("segment_id", "VARCHAR"), ("status", "VARCHAR"),
                     ("lastQualificationTime", "TIMESTAMPTZ"))
    wanted = None if segment_ids is None else set(segment_ids)
    base: exp.Query = empty
    if state is not None:
        chosen = {s: b for s, b in state.segments.items() if wanted is None or s in wanted}
        # Members by their bits: one scan of the snapshot per segment, for the segments evaluated by a job.
        branches: list[exp.Query] = [
            exp.select(
                "_profile_id", exp.Literal.string(segment_id).as_("segment_id"),
                exp.case().when(bit_set(new_column(word_of(entry.bit)), entry.bit), exp.Literal.string("realized"))
                .else_(exp.Literal.string("existing")).as_("status"),
                _timestamp(entry.evaluated_at).as_("lastQualificationTime"),
                exp.Literal.number(entry.bit).as_("bit"),
            ).from_(tables["snapshot"].copy()).where(bit_set(in_column(word_of(entry.bit)), entry.bit))
            for segment_id, entry in sorted(chosen.items())
            if entry.evaluated_at is not None and "snapshot" in tables]
        derived = _union_all(branches) if branches else exp.select(
            *LONG_FORM_COLUMNS, exp.cast(exp.null(), exp.DataType.build("INTEGER")).as_("bit")).from_(
            empty.subquery("nobody"))
        if "pairs" in tables and chosen:
            # Explicit pairs (exits, per-profile writes since the last job) replace what the bits say.
            names = _union_all([exp.select(exp.Literal.number(entry.bit).as_("bit"),
                                           exp.Literal.string(segment_id).as_("segment_id"))
                                for segment_id, entry in chosen.items()])
            explicit = exp.select("x._profile_id", "n.segment_id", "x.status", "x.lastQualificationTime",
                                  "x.bit").from_(tables["pairs"].copy().as_("x")).join(
                names.subquery("n"), using=["bit"])
            # Columns by name: Spark's ``*`` over a USING join puts the USING columns first.
            derived = exp.union(
                exp.select(*(exp.column(c, table="d") for c in (*LONG_FORM_COLUMNS, "bit"))).from_(
                    derived.subquery("d")).join(
                    explicit.subquery("e"), using=["_profile_id", "bit"], join_type="anti"),
                explicit, distinct=False)
        base = exp.select(*LONG_FORM_COLUMNS).from_(derived.subquery("derived"))
    if "changes" not in tables:
        return base
    keep = None if wanted is None else (
        exp.column("segment_id").isin(*(exp.Literal.string(s) for s in sorted(wanted))) if wanted else exp.false())
    latest = exp.select(
        "_profile_id", "segment_id",
        exp.ArgMax(this=exp.column("status"), expression=exp.column("seq")).as_("status"),
        exp.ArgMax(this=exp.column("lastQualificationTime"), expression=exp.column("seq")).as_("lastQualificationTime"),
    ).from_(tables["changes"].copy()).where(keep).group_by("_profile_id", "segment_id")
    return exp.union(
        exp.select(*(exp.column(c, table="b") for c in LONG_FORM_COLUMNS)).from_(base.subquery("b")).join(
            latest.subquery("c"), using=["_profile_id", "segment_id"], join_type="anti"),
        exp.select(*LONG_FORM_COLUMNS).from_(latest.subquery("latest")), distinct=False)


def write_atomically(table: pa.Table, path: Path) -> None:
    """Write a Parquet file so that readers see no file or the whole file."""
    with StagedFile(path) as staged:
        pq.write_table(table, staged.path, compression="zstd", row_group_size=8192)
        staged.publish()
