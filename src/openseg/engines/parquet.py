"""Parquet in this process: writing a stream of Arrow record batches to one file (compressing in a second
thread), and reading the few rows of a sorted file that hold some keys.

Engines that hand results to this process (DuckDB's Arrow stream, :class:`~openseg.engines.base.ArrowWorkspace`)
write single files with it, and so does the profile store's splice, which rewrites a sorted file in place.
Point lookups (:meth:`openseg.engines.base.Engine.read_rows`) read with :func:`matching_rows`, from the file's
decoded copy where it has one (:func:`write_decoded_copy`).
"""

from __future__ import annotations

import array
import bisect
import collections
import datetime as dt
import functools
import itertools
import json
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: Every Parquet file an engine writes is zstd at level 1: as fast to write as snappy and no larger than
#: zstd's default level 3 on our files (the snapshot of a 1M-profile, 10-segment job: 0.14 s and 7.7 MiB
#: at level 1, 0.23-0.26 s and 8.6 MiB at level 3; docs/benchmarks.md).
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 1


class BatchWriter:
    """Writes record batches to a Parquet file (zstd), and optionally one column to a second file.

    DuckDB's Arrow stream feeding pyarrow's writer was measured faster than DuckDB's own writer on
    sorted nested XDM events (2 cores). Writing runs in a second thread so that compressing one batch
    overlaps with producing the next (both release the GIL).

    Args:
        path: The Parquet file to write.
        schema: The batches' schema.
        split: ``(column, path)``: write that column (the last) to a file of its own instead, row for row.
        row_group_rows: Rows per row group (at most).
    """

    def __init__(self, path: Path, schema: pa.Schema, split: tuple[str, Path] | None = None,
                 row_group_rows: int | None = None) -> None:
        self._split = split[0] if split else None
        self._row_group_rows = row_group_rows
        if split is not None:
            if schema.names[-1] != split[0]:
                raise ValueError(f"split: {split[0]!r} is not the last column")
            split_path = split[1]
            split_path.parent.mkdir(parents=True, exist_ok=True)
            self._side: pq.ParquetWriter | None = pq.ParquetWriter(
                split_path, pa.schema([schema.field(split[0])]), compression=COMPRESSION, compression_level=COMPRESSION_LEVEL
            )
            schema = schema.remove(len(schema) - 1)
        else:
            self._side = None
        self.schema = schema
        self._main = pq.ParquetWriter(path, schema, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL)
        self._pool = ThreadPoolExecutor(1)
        self._pending: Future[None] | None = None
        self.rows = 0

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Queue ``batch`` (with the split column last, if any) for writing."""
        if batch.num_rows == 0:
            return
        if self._pending is not None:
            self._pending.result()
        self._pending = self._pool.submit(self._write, batch)
        self.rows += batch.num_rows

    def _write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if self._side is not None:
            last = batch.num_columns - 1
            self._side.write_table(pa.table([batch.column(last)], names=[self._split]),
                                   row_group_size=self._row_group_rows)
            batch = batch.remove_column(last)
        if isinstance(batch, pa.RecordBatch):
            self._main.write_batch(batch, row_group_size=self._row_group_rows)
        else:
            self._main.write_table(batch, row_group_size=self._row_group_rows)

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._pending is not None and exc_info[0] is None:
                self._pending.result()
        finally:
            self._pool.shutdown(wait=True)
            self._main.close()
            if self._side is not None:
                self._side.close()


def matching_rows(path: str | os.PathLike[str], column: str, keys: Sequence[Any],
                  columns: Sequence[str] | None = None, newer: tuple[str, dt.datetime] | None = None,
                  stat: os.stat_result | None = None) -> pa.Table:
    """The rows of the Parquet file at ``path`` whose ``column`` holds one of ``keys``, in file order.

    Only the row groups whose min/max statistics of ``column`` can hold a key are read (all of those whose
    statistics are missing): in a file sorted by ``column`` with small row groups, one group per key. The
    file's footer and each column's ranges are read once per version of the file (the file, however it is
    named, its size and mtime: :func:`_version`) and kept; every call opens the file anew, so concurrent calls
    share no reader.

    Args:
        path: The Parquet file.
        column: The column the keys are compared with (equality).
        keys: The values looked for.
        columns: The columns to return (all when None); ``column`` is read anyway.
        newer: ``(time column, instant)``: leave out the rows whose time is before the instant (rows without one
            are kept); the row groups whose statistics show only earlier times are not read at all.
        stat: The file's ``os.stat``, where the caller took it already (an edge call reads each of a build's
            event files: a stat each, not one per question asked of it).

    Returns:
        The matching rows (the file's schema, or ``columns``); none when no key matches.
    """
    version = _version(path, stat)
    footer = _footer(*version)
    groups = _groups_holding(*version, column, keys)
    if newer is not None:
        ranges, timeless = _ranges(*version, newer[0]), _with_nulls(*version, newer[0])
        groups = [g for g in groups
                  if ranges[g] is None or timeless[g] or not _before(ranges[g][1], newer[1])]  # type: ignore[index]
    wanted = None if columns is None else list(dict.fromkeys([*columns, column, *([newer[0]] if newer else [])]))
    chosen = None if columns is None else tuple(columns)
    if not groups:
        return _empty(*version, chosen)
    mapped = _copy_of(version) if newer is None else None
    rows = _group_rows(*version)
    small = [g for g in groups if rows[g] <= CACHED_GROUP_ROWS]
    kept: list[tuple[pa.Table, _Runs | _SortedColumn | None]] | None = None
    if mapped is not None:
        # The file's decoded copy: its groups as they lie in the map, each bisected there; many keys (a stream's
        # refresh reads the profiles of 7,500 events) are filtered below in one pass of Arrow's instead, 110 ms
        # for 7,500 profiles at 1M against 290-450 ms bisecting for each key.
        if len(keys) < FILTERED_KEYS:
            kept = [mapped.indexed(g, column) for g in groups]
    elif newer is not None and wanted is not None and len(small) == len(groups):
        # Streaming reads a profile's recent events: each group is kept as its rows of the day ``newer`` falls
        # in and after, a small part of a group, so that a process soon holds every group's recent rows
        # (the groups' whole columns, 865 MB at 10M events, would not stay in ``_group``'s budget).
        horizon = _utc(newer[1]).replace(hour=0, minute=0, second=0, microsecond=0)
        recent = [(_recent(*version, g, tuple(wanted), newer[0], horizon), (*version, g, newer[0], horizon))
                  for g in groups]
        kept = [(table, _runs(kept_as, column, table)) for table, kept_as in recent]
    elif len(small) == len(groups):
        # A lookup's groups are small: each is decoded once and kept for the next lookups of this file version
        # (one request reads a profile's group for its identities, then for its row).
        decoded = [(_group(*version, g, None if wanted is None else tuple(wanted)), (*version, g)) for g in groups]
        kept = [(table, _runs(kept_as, column, table)) for table, kept_as in decoded]
    if kept is not None:
        found = _keyed_rows(kept, keys, wanted)
        if found is not None:
            if not found.num_rows:  # the file's groups hold none of them (a point read, mostly)
                return _empty(*version, chosen)
            matched = found if newer is None else _newer_than(found, *newer)
            return matched if columns is None else matched.select(list(columns))
        table = pa.concat_tables([group for group, _ in kept])
    elif mapped is not None:
        table = pa.concat_tables([mapped.group(g) for g in groups])
    else:
        # In the calling thread: a request's row groups must not queue in Arrow's shared pool behind a job's
        # (whose threads, started by the worker, run at its lower priority).
        table = pq.ParquetFile(path, metadata=footer).read_row_groups(groups, columns=wanted, use_threads=False)
    matched = table.filter(pc.is_in(table[column], value_set=pa.array(list(keys), table.schema.field(column).type)))
    if newer is not None:
        matched = _newer_than(matched, *newer)
    return matched if columns is None else matched.select(list(columns))


#: From this many keys, :func:`matching_rows` filters a decoded copy's groups rather than bisecting each for each key.
FILTERED_KEYS = 2_000


def _newer_than(table: pa.Table, time_column: str, instant: dt.datetime) -> pa.Table:
    """The rows of ``table`` whose time is ``instant`` or later, or missing.

    A point read's rows are few, and mostly none (an edge call looks its profile up in every event file of a
    build): each Arrow call costs more than its rows, so an empty table is returned as it is and a column without
    nulls is compared once (four event files' four calls each were 7 % of an edge call's CPU, 16 % in the streaming
    bench)."""
    if not table.num_rows:
        return table
    times = table[time_column]
    since = pa.scalar(_like(times.type, instant), times.type)
    recent = pc.greater_equal(times, since)
    return table.filter(recent if not times.null_count else pc.or_kleene(pc.is_null(times), recent))


def _keyed_rows(groups: Sequence[tuple[pa.Table, _Runs | _SortedColumn | None]], keys: Sequence[Any],
                columns: Sequence[str] | None = None) -> pa.Table | None:
    """The rows of groups whose key column holds one of ``keys``, in file order, found by bisection in each group's
    index of that column (:class:`_Runs` kept beside a decoded group, :class:`_SortedColumn` over a mapped one) and
    sliced out without a copy; None when a group has no index (it is not sorted by the column) or the keys do not
    compare with its values (the caller filters instead). ``columns``: only those (None: all); chosen before the
    rows are sliced and combined, which pay per column (120 groups' rows of ``profiles.parquet``: 1.5 ms with its
    ten columns, 0.8 with three).

    A point lookup used to filter its whole group with ``is_in``: 0.42 ms for one key in a 2,048-row group of
    ``profiles.parquet`` with its identity map, against 7 us for the bisection and the slice."""
    try:
        wanted = sorted(set(keys))
    except TypeError:
        return None
    parts: list[pa.Table] = []
    for table, index in groups:
        if index is None:
            return None
        try:
            spans = list(index.spans(wanted))
        except TypeError:
            return None
        if spans:
            chosen = table if columns is None else table.select(columns)
            parts += [chosen.slice(start, length) for start, length in spans]
    if not parts:
        return groups[0][0].slice(0, 0) if columns is None else groups[0][0].select(columns).slice(0, 0)
    # One chunk: converting rows to Python pays per chunk (500 one-row chunks of membership changes took twice
    # the time of the same rows combined, which cost a fifth of that).
    return pa.concat_tables(parts).combine_chunks() if len(parts) > 1 else parts[0]


def _within(wanted: list[Any], first: Any, last: Any) -> list[Any]:
    """The sorted keys ``wanted`` from ``first`` to ``last``: those a group can hold (a micro-batch looks up
    hundreds of profiles across as many groups)."""
    low = bisect.bisect_left(wanted, first)
    return wanted[low:bisect.bisect_right(wanted, last, low)]


def _before(value: Any, instant: dt.datetime) -> bool:
    """Whether a statistic ``value`` (a naive UTC or an aware datetime) is before ``instant``."""
    if not isinstance(value, dt.datetime):
        return False
    return _utc(value) < _utc(instant)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _like(kind: pa.DataType, instant: dt.datetime) -> dt.datetime:
    """``instant`` as a value of the timestamp type ``kind`` (naive UTC when it has no time zone)."""
    aware = _utc(instant)
    return aware if getattr(kind, "tz", None) else aware.replace(tzinfo=None)


def _groups_holding(path: str, mtime_ns: int, size: int, column: str, keys: Sequence[Any]) -> list[int]:
    """The row groups whose (min, max) of ``column`` can hold one of ``keys`` (every group without
    statistics), in order.

    In a file sorted by the column (every file a lookup reads), each key's groups are found by bisection: a
    lookup of 500 profiles in a 1M-profile file compared every key with every group's bounds, 1.3 ms a call."""
    ranges = _ranges(path, mtime_ns, size, column)
    maxes = _sorted_maxes(path, mtime_ns, size, column)
    if maxes is None:
        return [index for index, bounds in enumerate(ranges)
                if bounds is None or any(bounds[0] <= key <= bounds[1] for key in keys)]
    found: set[int] = set()
    for key in keys:
        # The first group whose max reaches the key, then every following group whose min does not pass it.
        index = bisect.bisect_left(maxes, key)
        while index < len(ranges) and ranges[index][0] <= key:  # type: ignore[index]
            found.add(index)
            index += 1
    return sorted(found)


@functools.lru_cache(maxsize=256)
def _sorted_maxes(path: str, mtime_ns: int, size: int, column: str) -> list[Any] | None:
    """Each row group's max of ``column`` when every group has statistics and both its mins and maxes never
    decrease (the file is sorted by the column); else None."""
    ranges = _ranges(path, mtime_ns, size, column)
    if any(bounds is None for bounds in ranges):
        return None
    if any(a[0] > b[0] or a[1] > b[1] for a, b in itertools.pairwise(ranges)):  # type: ignore[index]
        return None
    return [bounds[1] for bounds in ranges]  # type: ignore[index]


def row_count(path: str | os.PathLike[str], stat: os.stat_result | None = None) -> int:
    """The number of rows of the Parquet file at ``path`` (its footer read once per version, no file kept open);
    ``stat``: the file's, where the caller has it already."""
    return int(_footer(*_version(path, stat)).num_rows)


def read_columns(path: str | os.PathLike[str], stat: os.stat_result | None = None) -> tuple[str, ...]:
    """The top-level column names of the Parquet file at ``path`` (its footer read once per version); ``stat``:
    the file's, where the caller has it already."""
    return _names(*_version(path, stat))


class _File(str):
    """A file's path that hashes and compares as the file it names (its device and inode): the caches below key
    a file's version by it, so a file linked into a new build directory under another name (the events a
    profile refresh keeps as they were) is the version already read, decoded groups and all."""

    _file: tuple[int, int]

    def __new__(cls, path: str, stat: os.stat_result) -> _File:
        named = super().__new__(cls, path)
        named._file = (stat.st_dev, stat.st_ino)
        return named

    def __hash__(self) -> int:
        return hash(self._file)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _File) and self._file == other._file

    def __ne__(self, other: object) -> bool:
        return not self == other


def _version(path: str | os.PathLike[str], stat: os.stat_result | None = None) -> tuple[_File, int, int]:
    """The version of the file at ``path`` the caches key by: the file, its modification time and size (a file
    rewritten under its name is another version; files are replaced whole, never grown in place)."""
    stat = stat or os.stat(path)
    return _File(os.fspath(path), stat), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=256)
def _names(path: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    return tuple(_footer(path, mtime_ns, size).schema.to_arrow_schema().names)


#: Row groups up to this size are kept decoded (:func:`_group`); the lookup files are written in groups of 2,048, events in 16,384.
CACHED_GROUP_ROWS = 16_384


class _KeptBytes:
    """Decoded Arrow data (anything with ``nbytes``) by key, the least recently used dropped first once they hold
    more than ``max_bytes``; shared by the threads of a process."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._kept: collections.OrderedDict[tuple[Any, ...], Any] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Any:
        """What is kept under ``key`` (now the most recently used), or None."""
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
            return found

    def put(self, items: Sequence[tuple[tuple[Any, ...], Any]]) -> None:
        with self._lock:
            for key, value in items:
                if key not in self._kept:
                    self._kept[key] = value
                    self._bytes += value.nbytes
            while self._bytes > self.max_bytes and self._kept:
                self._bytes -= self._kept.popitem(last=False)[1].nbytes

    def cache_clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._bytes = 0


class _DecodedColumns(_KeptBytes):
    """Small row groups' columns, decoded in the calling thread and kept per column, the least recently used
    dropped first once they hold more than ``max_bytes``: a streamed message reads a profile's group with the
    columns the overlay keys by, then with the fields its definitions read, and the second read decodes only the
    columns the first did not; a process looking up profiles at random soon holds the columns it reads of the
    whole build (at 1M profiles, the identities and the profile columns of the bench's definitions: about 400 MB),
    and a lookup decodes nothing until the next build."""

    def __call__(self, path: str, mtime_ns: int, size: int, group: int, columns: tuple[str, ...] | None) -> pa.Table:
        names = columns if columns is not None else _names(path, mtime_ns, size)
        found: dict[str, pa.ChunkedArray] = {}
        for name in names:
            column = self.get((path, mtime_ns, size, group, name))
            if column is not None:
                found[name] = column
        missing = [name for name in names if name not in found]
        if missing:
            table = _reader(path, mtime_ns, size).read_row_group(group, columns=missing, use_threads=False)
            found.update((name, table.column(name)) for name in missing)
            self.put([((path, mtime_ns, size, group, name), found[name]) for name in missing])
        return pa.table([found[name] for name in names], names=list(names))


#: What a decoded copy's schema metadata names the Parquet file it copies by: ``[size, mtime_ns, row groups]``.
_COPY_OF = b"openseg:copyOf"


def decoded_copy_path(path: str | os.PathLike[str]) -> Path:
    """Where the decoded copy of the Parquet file at ``path`` lies: beside it, ``.arrow`` for ``.parquet``."""
    return Path(path).with_suffix(".arrow")


def write_decoded_copy(path: str | os.PathLike[str]) -> Path:
    """Write beside the Parquet file at ``path`` its decoded copy: an uncompressed Arrow IPC file, one record
    batch per row group, which :func:`matching_rows` maps instead of decoding the file's groups.

    Every process that looks rows up decodes the groups it reads, once per file version: after a build of 1M
    profiles, the streamer and the API's processes each decoded the identities and the profile columns again
    (1.6 s of CPU each, in their first seconds of traffic: the written p99 was seconds there). Mapped, the copy's
    pages are the page cache's, shared by every process and already there when the build wrote them. It costs
    the file's decoded size on disk (at 1M profiles 180 MB for ``identities.parquet``, 305 MB for
    ``profiles.parquet``) and one decode here.

    Returns:
        The copy's path (:func:`decoded_copy_path`).
    """
    source = pq.ParquetFile(path)
    stat = os.stat(path)
    groups = source.metadata.num_row_groups
    schema = source.schema_arrow.with_metadata({
        **(source.schema_arrow.metadata or {}),
        _COPY_OF: json.dumps([stat.st_size, stat.st_mtime_ns, groups]).encode()})
    target = decoded_copy_path(path)
    partial = target.with_name(f".{target.name}.partial")
    with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for group in range(groups):
            table = source.read_row_group(group).combine_chunks()
            batches = table.to_batches()
            writer.write_batch(batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema))
    os.replace(partial, target)
    _decoded_copy.cache_clear()  # this process may have found the file without its copy
    return target


def has_decoded_copy(path: str | os.PathLike[str]) -> bool:
    """Whether the Parquet file at ``path`` has its decoded copy (of this version of it) beside it."""
    return _copy_of(_version(path)) is not None


def _copy_of(version: tuple[_File, int, int]) -> _Mapped | None:
    """The mapped decoded copy of a file version, looked up by the name the file was read under."""
    return _decoded_copy(str(version[0]), version[1], version[2])


class _Mapped:
    """A decoded copy, memory-mapped: its groups as tables (each made once, its arrays over the map), and whether
    each is sorted by a column (checked once)."""

    def __init__(self, reader: pa.ipc.RecordBatchFileReader, copy: tuple[int, ...] | None = None) -> None:
        self._reader = reader
        #: The mapped file (:func:`_identity`; None: unknown).
        self.copy = copy
        # The Parquet file's own schema, as a read of its groups gives it.
        metadata = {k: v for k, v in (reader.schema.metadata or {}).items() if k != _COPY_OF}
        self._schema = reader.schema.with_metadata(metadata) if metadata else reader.schema.remove_metadata()
        self._groups: list[pa.Table | None] = [None] * reader.num_record_batches
        self._sorted: dict[tuple[int, str], _SortedColumn | None] = {}

    def group(self, index: int) -> pa.Table:
        found = self._groups[index]
        if found is None:
            batch = self._reader.get_batch(index)
            found = self._groups[index] = pa.Table.from_batches([batch], schema=self._schema)
        return found

    def indexed(self, index: int, column: str) -> tuple[pa.Table, _SortedColumn | None]:
        """Group ``index``, and its ``column`` to bisect where it lies (None when the group is not sorted by it:
        checked once). Bisected in place (15 us a key in a 2,048-row group), a group costs nothing before its first lookup:
        a process that turned each group's keys into runs first (:func:`_runs_of`, 0.2-0.9 ms a group) paid about
        a second for them after each build, for groups it mostly looks into once."""
        table = self.group(index)
        if (index, column) not in self._sorted:  # the column combined and checked once (4 % of a streamer's time)
            chunks = table.column(column)
            # A group is one batch: its one chunk, over the map (combining would copy it to the heap).
            values = chunks.chunk(0) if chunks.num_chunks == 1 else chunks.combine_chunks()
            self._sorted[(index, column)] = _SortedColumn(values) if _ascending(values) else None
        return table, self._sorted[(index, column)]


class _SortedColumn:
    """A sorted key column as it lies (a mapped group's), bisected a value at a time: first in every
    :data:`FENCE_ROWS`-th value, kept as Python values, then in the rows between two of them (a value read from the
    column costs about 1 us: a key in a 2,048-row group took 13 reads, now 6)."""

    __slots__ = ("_bounds", "_fences", "_values")

    def __init__(self, values: pa.Array) -> None:
        self._values = _Values(values)
        self._fences: list[Any] = values.take(pa.array(range(0, len(values), FENCE_ROWS))).to_pylist()
        self._bounds = (self._fences[0], self._values[len(values) - 1]) if len(values) else None

    def spans(self, wanted: list[Any]) -> Iterator[tuple[int, int]]:
        """``(start, length)`` of the rows of each of the sorted keys ``wanted`` the group holds."""
        values, size = self._values, len(self._values)
        if self._bounds is None:
            return
        for key in _within(wanted, *self._bounds):
            # The fences before and from the key: its first row is after the one, at or before the other.
            fence = bisect.bisect_left(self._fences, key)
            low = (fence - 1) * FENCE_ROWS + 1 if fence else 0
            start = bisect.bisect_left(values, key, low, min(fence * FENCE_ROWS, size))
            if start == size or values[start] != key:
                continue
            # Mostly a run of one row (a profile's, an identity's): its end is bisected only when it is longer.
            end = start + 1
            if end < size and values[end] == key:
                end = bisect.bisect_right(values, key, end)
            yield start, end - start


#: Every how many rows :class:`_SortedColumn` keeps a key as a Python value (128 of a 2,048-row group).
FENCE_ROWS = 16


class _Values:
    """An Arrow array as a sequence of Python values, each converted when read (what :mod:`bisect` reads)."""

    __slots__ = ("_array",)

    def __init__(self, array: pa.Array) -> None:
        self._array = array

    def __len__(self) -> int:
        return len(self._array)

    def __getitem__(self, index: int) -> Any:
        return self._array[index].as_py()


def _ascending(values: pa.Array) -> bool:
    """Whether ``values`` hold no null and never decrease (compared by Arrow: strings by their UTF-8 bytes, which
    is Python's order of their code points)."""
    if values.null_count:
        return False
    try:
        return not pc.any(pc.less(values.slice(1), values.slice(0, len(values) - 1))).as_py()
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        return False


class _MappedCopies:
    """The decoded copies this process has mapped, and the file versions found without one, by the file's path as
    named (a plain ``str``), not by the file (:class:`_File`): a copy lies beside a name, and a file linked into a
    new build may have its copy there when the old name had none, or the reverse.

    A new build links the files of the last one it keeps as they were, copies included: a name whose copy is one
    already mapped under another name (the same file, beside the same version of its Parquet file) shares that
    mapping, with the groups and sorted columns made of it so far. Mapped anew under each build's names, every
    group a lookup touched was made again after each refresh: a second of an edge process's requests at three to
    four times their usual CPU after each of the streaming bench's refreshes.

    A mapped copy keeps its bytes on disk after a build's pruning removed it, until it is unmapped: a copy whose
    name is gone is dropped whenever another is mapped, and at most ``max_files`` are kept (and 256 versions
    without a copy: the events files, the membership's)."""

    def __init__(self, max_files: int) -> None:
        self.max_files = max_files
        self._mapped: collections.OrderedDict[tuple[str, int, int], _Mapped] = collections.OrderedDict()
        self._without: collections.OrderedDict[tuple[str, int, int], None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, path: str, mtime_ns: int, size: int) -> _Mapped | None:
        key = (path, mtime_ns, size)
        with self._lock:
            if key in self._mapped:
                self._mapped.move_to_end(key)
                return self._mapped[key]
            if key in self._without:
                self._without.move_to_end(key)
                return None
        found = self._linked(path, mtime_ns, size) or self._map(path, mtime_ns, size)
        with self._lock:
            if found is None:
                self._without[key] = None
                while len(self._without) > 256:
                    self._without.popitem(last=False)
                return None
            for gone in [kept for kept in self._mapped if not decoded_copy_path(kept[0]).exists()]:
                del self._mapped[gone]
            self._mapped[key] = found
            while len(self._mapped) > self.max_files:
                self._mapped.popitem(last=False)
        return found

    def _linked(self, path: str, mtime_ns: int, size: int) -> _Mapped | None:
        """The copy mapped under another name that is this name's copy too, if any."""
        try:
            copy = os.stat(decoded_copy_path(path))
        except OSError:
            return None
        with self._lock:
            for (_, kept_mtime_ns, kept_size), mapped in self._mapped.items():
                if (kept_mtime_ns, kept_size) == (mtime_ns, size) and mapped.copy == _identity(copy):
                    return mapped
        return None

    @staticmethod
    def _map(path: str, mtime_ns: int, size: int) -> _Mapped | None:
        copy_path = decoded_copy_path(path)
        try:
            before = os.stat(copy_path)
            reader = pa.ipc.open_file(pa.memory_map(str(copy_path)))
            after = os.stat(copy_path)
        except (OSError, pa.ArrowInvalid):
            return None
        copied = (reader.schema.metadata or {}).get(_COPY_OF)
        if copied is None or json.loads(copied) != [size, mtime_ns, len(_group_rows(path, mtime_ns, size))]:
            return None
        # Which file was mapped, for other names of it (none when it was replaced while it was opened).
        return _Mapped(reader, _identity(after) if _identity(before) == _identity(after) else None)

    def cache_clear(self) -> None:
        with self._lock:
            self._mapped.clear()
            self._without.clear()


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    """A file as a stat of it names it: its device and inode, with the modification time and size it had."""
    return stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size


#: How many decoded copies a process keeps mapped: a build's two, and a few builds'.
MAPPED_COPIES = 16
_decoded_copy = _MappedCopies(MAPPED_COPIES)


#: How much decoded columns of small row groups a process keeps (``_DecodedColumns``).
DECODED_BYTES = 512 * 1024 * 1024
#: Row groups up to ``CACHED_GROUP_ROWS`` rows, decoded column by column: the columns of the last lookups.
_group = _DecodedColumns(DECODED_BYTES)


class _RecentRows(_KeptBytes):
    """Small row groups' rows at or after a horizon (and those without a time), per group, columns and horizon,
    the least recently used dropped first once they hold more than ``max_bytes``."""

    def __call__(self, path: str, mtime_ns: int, size: int, group: int, columns: tuple[str, ...], time_column: str,
                 horizon: dt.datetime) -> pa.Table:
        key = (path, mtime_ns, size, group, columns, time_column, horizon)
        found: pa.Table | None = self.get(key)
        if found is not None:
            return found
        table = _reader(path, mtime_ns, size).read_row_group(group, columns=list(columns), use_threads=False)
        times = table[time_column]
        since = pa.scalar(_like(times.type, horizon), times.type)
        table = table.filter(pc.or_kleene(pc.is_null(times), pc.greater_equal(times, since))).combine_chunks()
        self.put([(key, table)])
        return table


#: Row groups' recent rows (``_RecentRows``): what streaming and the edge read of events.
_recent = _RecentRows(256 * 1024 * 1024)

class _Runs:
    """A decoded group's key column as runs of equal keys: the keys in order (each once) and where each run
    starts (one more, the group's length, at the end).

    The keys are a tuple: a tuple of strings or numbers is left alone by the garbage collector after its first
    collection, where the 38 lists of 8,192 profile ids a streaming process kept of a membership snapshot's groups
    were walked, id by id, by every full collection (about one a second)."""

    __slots__ = ("keys", "nbytes", "starts")

    def __init__(self, keys: tuple[Any, ...], starts: array.array[int], value_bytes: int) -> None:
        self.keys = keys
        self.starts = starts
        # What the process holds for it: the tuple, its values (each a Python object over ``value_bytes`` of data
        # in all: strings for the store's ids) and the offsets; an estimate, for the cache's budget.
        self.nbytes = (sys.getsizeof(keys) + len(keys) * _OBJECT_BYTES + value_bytes
                       + starts.itemsize * len(starts))

    def spans(self, wanted: list[Any]) -> Iterator[tuple[int, int]]:
        """``(start, length)`` of the run of each of the sorted keys ``wanted`` the group holds."""
        if not self.keys:
            return
        for key in _within(wanted, self.keys[0], self.keys[-1]):
            index = bisect.bisect_left(self.keys, key)
            if index < len(self.keys) and self.keys[index] == key:
                yield self.starts[index], self.starts[index + 1] - self.starts[index]


class _KeptRuns(_KeptBytes):
    """The runs of the key columns of kept decoded groups (:func:`_keyed_rows`), by the group's key and column;
    a group not sorted by the column is kept as such (False)."""

    def __call__(self, kept_as: tuple[Any, ...], column: str, table: pa.Table) -> _Runs | None:
        key = (*kept_as, column)
        found = self.get(key)
        if found is None:
            found = _runs_of(table.column(column))
            self.put([(key, found if found is not None else _UNSORTED)])
        return None if found is None or found is _UNSORTED else found


class _Unsorted:
    nbytes = 0


_UNSORTED: Any = _Unsorted()


def _runs_of(values: pa.Array | pa.ChunkedArray) -> _Runs | None:
    """``values`` as runs of equal values, or None when they are not in ascending order, hold a null, or do not
    compare in Arrow (nested values).

    Found by Arrow's kernels, not a Python loop over the values: a group first read by a process (every group,
    after each build) cost 0.5 ms for the 2,048 identities of an ``identities.parquet`` group and 0.85 ms for a
    ``profiles.parquet`` group that way. Arrow orders strings by their UTF-8 bytes, which is Python's order of
    their code points, so the keys bisect in Python as they compared here."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    count = len(values)
    if values.null_count:
        return None
    if not count:
        return _Runs((), array.array("q", [0]), 0)
    earlier, later = values.slice(0, count - 1), values.slice(1)
    try:
        if pc.any(pc.less(later, earlier)).as_py():
            return None
        changes = pc.indices_nonzero(pc.not_equal(later, earlier))
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    starts = [0, *pc.add(changes, 1).to_pylist()]
    firsts = values.take(pa.array(starts, pa.int64()))
    return _Runs(tuple(firsts.to_pylist()), array.array("q", [*starts, count]), firsts.nbytes)


def key_runs(values: pa.Array | pa.ChunkedArray) -> dict[Any, tuple[int, int]] | None:
    """Each value's run of rows in ``values``, ``(start, stop)``; None as :func:`_runs_of` (not ascending, a null,
    values Arrow does not order)."""
    runs = _runs_of(values)
    if runs is None:
        return None
    return {key: (runs.starts[index], runs.starts[index + 1]) for index, key in enumerate(runs.keys)}


#: A Python object's own bytes beside its data, as :class:`_Runs` estimates them (a short ``str``: 49 and up).
_OBJECT_BYTES = 56


#: The runs of kept groups' key columns: Python values, about three times the bytes of their Arrow column.
_runs = _KeptRuns(256 * 1024 * 1024)

_readers = threading.local()


def _reader(path: str, mtime_ns: int, size: int) -> pq.ParquetFile:
    """An open reader of one version of a file, kept per thread (opening one took 0.4 ms of a 3 ms lookup); the
    readers of the thread's last 8 file versions are kept."""
    kept: dict[tuple[str, int, int], pq.ParquetFile] | None = getattr(_readers, "files", None)
    if kept is None:
        kept = _readers.files = {}
    version = (path, mtime_ns, size)
    reader = kept.pop(version, None)
    if reader is None:
        reader = pq.ParquetFile(path, metadata=_footer(path, mtime_ns, size))
        while len(kept) >= 8:
            kept.pop(next(iter(kept))).close()
    kept[version] = reader  # most recently used last
    return reader


@functools.lru_cache(maxsize=256)
def _footer(path: str, _mtime_ns: int, _size: int) -> pq.FileMetaData:
    # Keyed by mtime and size as well: a file rewritten under the same name is read anew.
    return pq.read_metadata(path)


@functools.lru_cache(maxsize=256)
def _empty(path: str, mtime_ns: int, size: int, columns: tuple[str, ...] | None) -> pa.Table:
    """No rows of the file's schema, or of its ``columns`` (what a read finding no row returns: converting the
    footer's schema each time took 7 % of an interact's CPU, which looks its profile up in files that do not hold
    it, and selecting the columns of an empty slice each time cost about as much)."""
    empty = _footer(path, mtime_ns, size).schema.to_arrow_schema().empty_table()
    return empty if columns is None else empty.select(list(columns))


@functools.lru_cache(maxsize=256)
def _group_rows(path: str, mtime_ns: int, size: int) -> tuple[int, ...]:
    """Each row group's number of rows (a group's metadata is an object made anew on each access)."""
    footer = _footer(path, mtime_ns, size)
    return tuple(footer.row_group(index).num_rows for index in range(footer.num_row_groups))


def _leaf(footer: pq.FileMetaData, path: str, column: str) -> int:
    # Leaves are numbered across nested columns too: find the column's by its path.
    leaf = next((i for i in range(footer.num_columns) if footer.schema.column(i).path == column), None)
    if leaf is None:
        raise KeyError(f"{column!r} is not a top-level column of {path}")
    return leaf


@functools.lru_cache(maxsize=256)
def _with_nulls(path: str, mtime_ns: int, size: int, column: str) -> tuple[bool, ...]:
    """Whether each row group may hold a null of the top-level primitive ``column`` (True where the file does
    not count them): its min and max say nothing of those rows."""
    footer = _footer(path, mtime_ns, size)
    leaf = _leaf(footer, path, column)
    found: list[bool] = []
    for group in range(footer.num_row_groups):
        statistics = footer.row_group(group).column(leaf).statistics
        found.append(statistics is None or not statistics.has_null_count or statistics.null_count > 0)
    return tuple(found)


@functools.lru_cache(maxsize=256)
def _ranges(path: str, mtime_ns: int, size: int, column: str) -> tuple[tuple[Any, Any] | None, ...]:
    """Each row group's (min, max) of the top-level primitive ``column``, None where the file keeps no such
    statistics."""
    footer = _footer(path, mtime_ns, size)
    leaf = _leaf(footer, path, column)
    ranges: list[tuple[Any, Any] | None] = []
    for group in range(footer.num_row_groups):
        statistics = footer.row_group(group).column(leaf).statistics
        ok = statistics is not None and statistics.has_min_max
        ranges.append((statistics.min, statistics.max) if ok else None)
    return tuple(ranges)
