"""``profiles/splice.py``: a sorted store file rewritten with some keys' rows replaced, or kept as it is when the
replacement rows are the rows it holds."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from openseg.profiles.splice import splice_or_link, splice_sorted

IDS = [f"p{n:04d}" for n in range(0, 1000, 2)]  # every other id: room for new ones between


@pytest.fixture
def old(tmp_path: Path) -> Path:
    path = tmp_path / "old.parquet"
    pq.write_table(pa.table({"_profile_id": IDS, "x": [n % 7 for n in range(len(IDS))],
                             "tags": [[f"t{n % 3}"] for n in range(len(IDS))]}), path, row_group_size=64)
    return path


def _rows(path: Path, ids: list[str]) -> pa.Table:
    table = pq.read_table(path)
    return table.filter(pc.is_in(table["_profile_id"], value_set=pa.array(ids)))


@pytest.mark.parametrize("where", ["first", "last"])
def test_replacement_rows_that_differ_anywhere_are_spliced_as_splice_sorted_writes_them(
        tmp_path: Path, old: Path, where: str) -> None:
    touched = ["p0000", "p0500", "p0998"]
    rows = _rows(old, touched).to_pylist()
    rows[0 if where == "first" else -1]["x"] = 99
    insert = pa.Table.from_pylist(rows, schema=pq.read_schema(old))
    assert splice_or_link(old, tmp_path / "a.parquet", "_profile_id", pa.array(touched), insert, 64) == len(IDS)
    splice_sorted(old, tmp_path / "b.parquet", "_profile_id", pa.array(touched), insert, row_group_rows=64)
    assert pq.read_table(tmp_path / "a.parquet").equals(pq.read_table(tmp_path / "b.parquet"))
    assert os.stat(tmp_path / "a.parquet").st_ino != os.stat(old).st_ino


@pytest.mark.parametrize("extra", [None, "p0001", "gone"])
def test_the_file_is_kept_only_when_the_rows_are_the_same_rows(tmp_path: Path, old: Path, extra: str | None) -> None:
    """The same rows for the same keys: a hard link to the old file. A new key among them (a profile the old file
    lacks), or a key whose old row has no replacement (a profile merged away), is a change."""
    touched = ["p0000", "p0500", "p0998"]
    insert = _rows(old, touched)
    if extra == "p0001":
        touched, insert = [*touched, "p0001"], pa.concat_tables([insert, pa.Table.from_pylist(
            [{"_profile_id": "p0001", "x": 1, "tags": []}], schema=insert.schema)]).sort_by("_profile_id")
    elif extra == "gone":
        insert = insert.slice(0, 2)
    out = tmp_path / "new.parquet"
    rows = splice_or_link(old, out, "_profile_id", pa.array(touched), insert, 64)
    assert (os.stat(out).st_ino == os.stat(old).st_ino) is (extra is None)
    assert rows == len(IDS) + (extra == "p0001") - (extra == "gone")
    expected = tmp_path / "expected.parquet"
    splice_sorted(old, expected, "_profile_id", pa.array(touched), insert, row_group_rows=64)
    assert pq.read_table(out).equals(pq.read_table(expected))
