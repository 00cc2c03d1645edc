"""Point reads of a sorted Parquet file (``Engine.read_rows``): the rows holding some keys, reading only the row
groups that can hold them, from any number of threads at once."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openseg.engines import parquet
from openseg.engines.duckdb import DuckDBEngine

#: 1,000 profiles sorted by id, two rows for p0499 (the last of row group 4, the first of 5), groups of 100 rows.
IDS = sorted([f"p{n:04d}" for n in range(1000)] + ["p0499"])


@pytest.fixture
def store_file(tmp_path: Path) -> Path:
    path = tmp_path / "profiles.parquet"
    table = pa.table({"_profile_id": IDS, "n": list(range(len(IDS))), "city": [f"c{n % 7}" for n in range(len(IDS))]})
    pq.write_table(table, path, row_group_size=100)
    return path


def test_the_rows_holding_the_keys_in_file_order(duckdb_engine: DuckDBEngine, store_file: Path) -> None:
    rows = duckdb_engine.read_rows(store_file, "_profile_id", ["p0999", "p0499", "p0001"])
    assert rows.to_pylist() == [
        {"_profile_id": "p0001", "n": 1, "city": "c1"},
        {"_profile_id": "p0499", "n": 499, "city": "c2"},
        {"_profile_id": "p0499", "n": 500, "city": "c3"},
        {"_profile_id": "p0999", "n": 1000, "city": "c6"},
    ]
    assert duckdb_engine.read_rows(store_file, "_profile_id", ["p0002"], columns=["city"]).to_pylist() == [
        {"city": "c2"}]
    nobody = duckdb_engine.read_rows(store_file, "_profile_id", ["q"], columns=["n"])
    assert (nobody.num_rows, nobody.schema.names) == (0, ["n"])
    with pytest.raises(KeyError):
        duckdb_engine.read_rows(store_file, "nope", ["p0001"])


@pytest.fixture
def read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The row groups decoded from now on, in order (none kept decoded from before)."""
    groups: list[int] = []
    real = pq.ParquetFile.read_row_group

    def spy(self: pq.ParquetFile, group: int, *args: object, **kwargs: object) -> pa.Table:
        groups.append(group)
        return real(self, group, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    parquet._group.cache_clear()
    parquet._recent.cache_clear()
    return groups


def test_only_the_row_groups_that_can_hold_a_key_are_read(duckdb_engine: DuckDBEngine, store_file: Path,
                                                          read: list[int]) -> None:
    duckdb_engine.read_rows(store_file, "_profile_id", ["p0250"])
    duckdb_engine.read_rows(store_file, "_profile_id", ["p0499"])  # the last row of group 4, the first of 5
    duckdb_engine.read_rows(store_file, "_profile_id", ["a", "q"])  # before the first id, after the last
    assert read == [2, 4, 5]
    # A group already decoded is not decoded again (a request reads a profile's group twice).
    assert duckdb_engine.read_rows(store_file, "_profile_id", ["p0251"]).column("_profile_id").to_pylist() == ["p0251"]
    assert read == [2, 4, 5]


def test_a_file_linked_under_another_name_is_read_from_the_groups_kept(duckdb_engine: DuckDBEngine, store_file: Path,
                                                                      read: list[int]) -> None:
    # A profile refresh links the events it keeps into its new build directory; the old directory goes later.
    duckdb_engine.read_rows(store_file, "_profile_id", ["p0250"])
    linked = store_file.parent / "next" / store_file.name
    linked.parent.mkdir()
    os.link(store_file, linked)
    store_file.unlink()
    assert duckdb_engine.read_rows(linked, "_profile_id", ["p0251", "p0777"]).column("n").to_pylist() == [251, 778]
    assert read == [2, 7]


def test_a_file_rewritten_under_its_name_is_read_anew(duckdb_engine: DuckDBEngine, store_file: Path) -> None:
    assert duckdb_engine.read_rows(store_file, "_profile_id", ["p0001"], columns=["n"]).to_pylist() == [{"n": 1}]
    stat = store_file.stat()
    pq.write_table(pa.table({"_profile_id": ["p0001", "p0002"], "n": [10, 20], "city": ["x", "y"]}), store_file)
    os.utime(store_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert duckdb_engine.read_rows(store_file, "_profile_id", ["p0001"], columns=["n"]).to_pylist() == [{"n": 10}]


def test_concurrent_lookups_share_no_reader(duckdb_engine: DuckDBEngine, store_file: Path) -> None:
    wanted = [IDS[(n * 37) % len(IDS)] for n in range(400)]

    def lookup(key: str) -> list[int]:
        return [row["n"] for row in duckdb_engine.read_rows(store_file, "_profile_id", [key], columns=["n"]).to_pylist()]

    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lookup, wanted))
    assert found == [[n for n, each in enumerate(IDS) if each == key] for key in wanted]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.integers(0, 40), min_size=1, max_size=120), group_rows=st.integers(1, 17),
       keys=st.lists(st.integers(-2, 42), min_size=1, max_size=12), shuffled=st.booleans())
def test_the_groups_found_by_bisection_hold_every_matching_row(tmp_path: Path, values: list[int], group_rows: int,
                                                               keys: list[int], shuffled: bool) -> None:
    """Sorted files are searched by bisection over their groups' bounds (repeated keys across groups, keys
    outside every group); a file whose groups are not in order is searched group by group: both find exactly
    the rows a filter of the whole file finds."""
    ordered = values if shuffled else sorted(values)
    path = tmp_path / f"{len(list(tmp_path.iterdir()))}.parquet"
    pq.write_table(pa.table({"k": ordered, "row": list(range(len(ordered)))}), path, row_group_size=group_rows)
    found = parquet.matching_rows(path, "k", keys).to_pylist()
    assert found == [{"k": k, "row": n} for n, k in enumerate(ordered) if k in keys]


def test_rows_before_an_instant_are_left_out_and_their_groups_not_read(tmp_path: Path, read: list[int]) -> None:
    """Events by profile, oldest groups first: a read ``newer`` than an instant skips the groups whose
    statistics end before it, and keeps the rows of that time or later and those without a time."""
    start = datetime(2025, 1, 1)
    ids = [f"p{n // 4:03d}" for n in range(40)]
    times = [start + timedelta(hours=n) for n in range(40)]
    times[37] = None  # type: ignore[call-overload]
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"_profile_id": ids, "timestamp": pa.array(times, pa.timestamp("us")),
                             "n": list(range(40))}), path, row_group_size=4)
    since = datetime(2025, 1, 2, 12, tzinfo=UTC)  # hour 36: its row is kept, as is 37 without a time
    found = parquet.matching_rows(path, "_profile_id", ["p001", "p009"], ["n"], newer=("timestamp", since))
    assert found.to_pylist() == [{"n": 36}, {"n": 37}, {"n": 38}, {"n": 39}]
    assert read == [9]  # p001's group ends at hour 7: not read
    everything = parquet.matching_rows(path, "_profile_id", ["p001"], ["n"])
    assert everything.to_pylist() == [{"n": 4}, {"n": 5}, {"n": 6}, {"n": 7}]


def test_a_groups_recent_rows_are_kept_for_every_later_instant_of_the_day(tmp_path: Path, read: list[int]) -> None:
    """Streaming reads a profile's events of the last hour, a later hour each time: a group is decoded once a
    day, as its rows of the day and after (and those without a time), and each read keeps exactly its own."""
    start = datetime(2025, 1, 1, 12)
    times: list[datetime | None] = [start + timedelta(hours=3 * n) for n in range(16)]  # 12:00 Jan 1 .. 09:00 Jan 3
    times[5] = None
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"_profile_id": ["p1"] * 8 + ["p2"] * 8, "timestamp": pa.array(times, pa.timestamp("us")),
                             "n": list(range(16))}), path, row_group_size=16)

    def since(hour: int, day: int = 2) -> list[int]:
        rows = parquet.matching_rows(path, "_profile_id", ["p1", "p2"], ["n"],
                                     newer=("timestamp", datetime(2025, 1, day, hour, tzinfo=UTC)))
        return [row["n"] for row in rows.to_pylist()]

    assert since(0) == [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]  # Jan 2 00:00 is row 4's time
    assert since(1) == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    assert since(22) == [5, 12, 13, 14, 15]  # row 5 has no time: always kept
    assert read == [0]  # one decode for the whole day
    assert since(1, day=3) == [5, 13, 14, 15]
    assert read == [0, 0]  # a new day: its rows are kept anew
    assert since(12, day=1) == list(range(16))  # an earlier day than the last kept: read as it is
    assert parquet.matching_rows(path, "_profile_id", ["p2"], ["n"]).num_rows == 8  # all rows without ``newer``


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(st.none(), st.sampled_from("abcdef")), min_size=1, max_size=80),
       group_rows=st.integers(1, 9), keys=st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=5),
       ordered=st.booleans(), hour=st.one_of(st.none(), st.integers(0, 90)), timeless=st.booleans())
def test_a_kept_group_finds_exactly_the_rows_a_filter_finds(tmp_path: Path, values: list[str | None],
                                                            group_rows: int, keys: list[str], ordered: bool,
                                                            hour: int | None, timeless: bool) -> None:
    """A kept (decoded) group is searched by bisection over its runs of keys when it is sorted, and filtered when
    it is not or holds a null key; asked twice (the second time from what the first kept), with or without an
    instant to be ``newer`` than, with or without rows that have no time, both find exactly the rows a filter of
    the whole file finds, in file order, as a table of the columns asked for (none found included)."""
    if ordered:
        values = sorted(values, key=lambda v: (v is not None, v or ""))
    start = datetime(2025, 1, 1)
    times = [None if timeless and n % 5 == 3 else start + timedelta(hours=n) for n in range(len(values))]
    path = tmp_path / f"{len(list(tmp_path.iterdir()))}.parquet"
    pq.write_table(pa.table({"k": pa.array(values, pa.string()), "timestamp": pa.array(times, pa.timestamp("us")),
                             "row": list(range(len(values)))}), path, row_group_size=group_rows)
    since = None if hour is None else datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=hour)
    expected = [n for n, (k, t) in enumerate(zip(values, times, strict=True))
                if k in keys and (since is None or t is None or t >= since.replace(tzinfo=None))]
    for _ in range(2):
        found = parquet.matching_rows(path, "k", keys, ["row"], newer=None if since is None else ("timestamp", since))
        assert [row["row"] for row in found.to_pylist()] == expected
        assert found.schema == pa.schema([("row", pa.int64())])


def _python_runs(values: list[object]) -> tuple[list[object], list[int]] | None:
    """Runs of equal values the plain way: the keys in order and where each run starts (the length last), or None
    when a value is missing or smaller than the one before it."""
    if any(value is None for value in values):
        return None
    keys: list[object] = []
    starts: list[int] = []
    for position, value in enumerate(values):
        if position and value < values[position - 1]:  # type: ignore[operator]
            return None
        if not position or value != values[position - 1]:
            keys.append(value)
            starts.append(position)
    return keys, [*starts, len(values)]


@settings(max_examples=150, deadline=None)
@given(values=st.one_of(
    st.lists(st.one_of(st.none(), st.text(alphabet="aZé\u00ff\u0100\uffef\U0001f600-_0", max_size=3)), max_size=40),
    st.lists(st.integers(-3, 3), max_size=40)), ordered=st.booleans(), chunks=st.integers(1, 3))
def test_a_groups_runs_of_keys_are_those_python_finds_in_its_order(values: list[object], ordered: bool,
                                                                    chunks: int) -> None:
    """A kept group's runs of keys, found by Arrow's kernels, are the runs Python finds, in Python's order: strings
    of any code points (Arrow compares their UTF-8 bytes), integers, over one chunk or several; a group out of
    order or holding a null has none (it is filtered instead)."""
    if ordered and None not in values:
        values = sorted(values)  # type: ignore[type-var]
    arrow = pa.array(values, pa.string() if values and isinstance(next((v for v in values if v is not None), ""), str)
                     else pa.int64())
    size = max(1, len(values) // chunks)
    column = pa.chunked_array([arrow.slice(at, size) for at in range(0, len(values), size)] or [arrow], arrow.type)
    runs = parquet._runs_of(column)
    expected = _python_runs(values)
    assert (None if runs is None else (list(runs.keys), list(runs.starts))) == expected


def test_a_groups_kept_runs_leave_the_garbage_collectors_walks() -> None:
    """A streaming process keeps the runs of many groups' keys (8,192 profile ids each of a membership snapshot's):
    as lists, every full collection of the process (about one a second) walked them id by id."""
    import gc

    runs = parquet._runs_of(pa.array([f"p{n:05d}" for n in range(8_192)]))
    gc.collect()
    assert runs is not None and len(runs.keys) == 8_192
    assert not gc.is_tracked(runs.keys)


def test_a_column_arrow_cannot_order_has_no_runs() -> None:
    """Keys Arrow cannot compare (a list column) leave the group to be filtered, as a group out of order is."""
    assert parquet._runs_of(pa.array([[1], [1], [2]])) is None


def test_a_file_with_its_decoded_copy_is_read_from_the_copy(duckdb_engine: DuckDBEngine, store_file: Path,
                                                             read: list[int]) -> None:
    copy = parquet.write_decoded_copy(store_file)
    assert copy == store_file.with_suffix(".arrow") and parquet.has_decoded_copy(store_file)
    read.clear()  # writing the copy decoded every group, once
    rows = duckdb_engine.read_rows(store_file, "_profile_id", ["p0999", "p0499", "p0001", "q"])
    assert rows.to_pylist() == [
        {"_profile_id": "p0001", "n": 1, "city": "c1"},
        {"_profile_id": "p0499", "n": 499, "city": "c2"},
        {"_profile_id": "p0499", "n": 500, "city": "c3"},
        {"_profile_id": "p0999", "n": 1000, "city": "c6"},
    ]
    assert rows.schema == pq.read_schema(store_file)  # the file's own schema, not the copy's
    nobody = duckdb_engine.read_rows(store_file, "_profile_id", ["q"], columns=["n"])
    assert (nobody.num_rows, nobody.schema.names) == (0, ["n"])
    assert read == []  # no row group of the Parquet file was decoded


def test_a_decoded_copy_of_another_version_of_the_file_is_not_read(duckdb_engine: DuckDBEngine,
                                                                   store_file: Path) -> None:
    parquet.write_decoded_copy(store_file)
    stat = store_file.stat()
    pq.write_table(pa.table({"_profile_id": ["p0001", "p0002"], "n": [10, 20], "city": ["x", "y"]}), store_file)
    os.utime(store_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert not parquet.has_decoded_copy(store_file)
    assert duckdb_engine.read_rows(store_file, "_profile_id", ["p0001"], columns=["n"]).to_pylist() == [{"n": 10}]


def test_a_decoded_copy_not_sorted_by_the_column_is_filtered(tmp_path: Path) -> None:
    path = tmp_path / "unsorted.parquet"
    pq.write_table(pa.table({"k": [3, 1, 2, 1], "row": [0, 1, 2, 3]}), path, row_group_size=4)
    parquet.write_decoded_copy(path)
    assert parquet.matching_rows(path, "k", [1]).to_pylist() == [{"k": 1, "row": 1}, {"k": 1, "row": 3}]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.sampled_from(["a", "b", "bb", "c", "é", "z"]), min_size=1, max_size=60),
       group_rows=st.integers(1, 30), keys=st.lists(st.sampled_from(["", "a", "b", "bc", "c", "é", "zz"]), max_size=6),
       fence_rows=st.integers(1, 7))
def test_a_decoded_copy_finds_the_rows_the_file_does(tmp_path: Path, values: list[str], group_rows: int,
                                                     keys: list[str], fence_rows: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Bisected where it lies, a group of the copy gives each key's rows (runs of a key across groups and across
    the group's fences, keys between or outside the values, strings compared by code point) as the file's decoded
    groups do."""
    monkeypatch.setattr(parquet, "FENCE_ROWS", fence_rows)
    ordered = sorted(values)
    path = tmp_path / f"{len(list(tmp_path.iterdir()))}.parquet"
    pq.write_table(pa.table({"k": ordered, "row": list(range(len(ordered)))}), path, row_group_size=group_rows)
    expected = [{"k": k, "row": n} for n, k in enumerate(ordered) if k in keys]
    assert parquet.matching_rows(path, "k", keys).to_pylist() == expected
    parquet.write_decoded_copy(path)
    assert parquet.matching_rows(path, "k", keys).to_pylist() == expected
    assert parquet.matching_rows(path, "k", keys, columns=["row"]).to_pylist() == [
        {"row": row["row"]} for row in expected]
    # Many keys (a refresh's thousands of profiles): the copy's groups filtered in one pass give the same rows.
    filtered, parquet.FILTERED_KEYS = parquet.FILTERED_KEYS, 1
    try:
        assert parquet.matching_rows(path, "k", keys).to_pylist() == expected
        assert parquet.matching_rows(path, "k", keys, columns=["row"]).to_pylist() == [
            {"row": row["row"]} for row in expected]
    finally:
        parquet.FILTERED_KEYS = filtered


def test_a_decoded_copy_whose_build_was_removed_is_unmapped(tmp_path: Path) -> None:
    # A mapped file keeps its bytes on disk until it is unmapped: the copies of pruned builds must not pile up.
    paths = []
    for build in ("old", "new"):
        path = tmp_path / build / "profiles.parquet"
        path.parent.mkdir()
        pq.write_table(pa.table({"_profile_id": ["a", "b"]}), path)
        parquet.write_decoded_copy(path)
        paths.append(path)
    assert parquet.matching_rows(paths[0], "_profile_id", ["a"]).num_rows == 1
    mapped = parquet._decoded_copy._mapped
    assert [key[0] for key in mapped] == [str(paths[0])]
    for file in paths[0].parent.iterdir():
        file.unlink()
    assert parquet.matching_rows(paths[1], "_profile_id", ["b"]).num_rows == 1
    assert [key[0] for key in mapped] == [str(paths[1])]


def test_a_decoded_copy_linked_into_a_new_build_shares_its_mapping(tmp_path: Path) -> None:
    # A refresh links the last build's files into its own folder: the groups and sorted columns made so far are
    # the new names' too (made again, they cost a second of an edge process's CPU after each refresh).
    old = tmp_path / "old" / "profiles.parquet"
    old.parent.mkdir()
    pq.write_table(pa.table({"_profile_id": ["a", "b", "c", "d"], "n": [1, 2, 3, 4]}), old, row_group_size=2)
    parquet.write_decoded_copy(old)
    assert parquet.matching_rows(old, "_profile_id", ["c"]).to_pylist() == [{"_profile_id": "c", "n": 3}]
    linked, copied = tmp_path / "linked" / "profiles.parquet", tmp_path / "copied" / "profiles.parquet"
    for build in (linked, copied):
        build.parent.mkdir()
        os.link(old, build)
    os.link(parquet.decoded_copy_path(old), parquet.decoded_copy_path(linked))
    shutil.copy2(parquet.decoded_copy_path(old), parquet.decoded_copy_path(copied))  # another file: mapped anew

    for build in (linked, copied):
        assert parquet.matching_rows(build, "_profile_id", ["c", "d"]).to_pylist() == [
            {"_profile_id": "c", "n": 3}, {"_profile_id": "d", "n": 4}]
    mapping = {name: parquet._copy_of(parquet._version(name)) for name in (old, linked, copied)}
    assert mapping[linked] is mapping[old] is not None
    assert mapping[copied] is not None and mapping[copied] is not mapping[old]
    # The old build pruned: the new names keep reading the file it mapped.
    for file in old.parent.iterdir():
        file.unlink()
    old.parent.rmdir()
    assert parquet.matching_rows(linked, "_profile_id", ["a"]).to_pylist() == [{"_profile_id": "a", "n": 1}]
    assert parquet._copy_of(parquet._version(linked)) is mapping[linked]
