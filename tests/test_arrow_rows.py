"""``arrow_rows.python_rows``: Arrow rows as dicts with maps as dicts, exactly as pyarrow's strict conversion gives
them, for maps at any depth and for UTC times."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openseg.arrow_rows import python_rows


@st.composite
def typed(draw: st.DrawFn, depth: int = 0) -> tuple[pa.DataType, st.SearchStrategy[Any]]:
    """An Arrow type (maps, lists and structs nested up to three deep) and a strategy of its Python values."""
    kinds = ["int", "string"] + (["map", "list", "struct"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        return pa.int64(), st.none() | st.integers(-5, 5)
    if kind == "string":
        return pa.string(), st.none() | st.text("abc", max_size=3)
    if kind == "map":
        item, items = draw(typed(depth + 1))
        pairs = st.lists(st.tuples(st.text("xyz", max_size=2), items), max_size=3, unique_by=lambda p: p[0])
        return pa.map_(pa.string(), item), st.none() | pairs
    if kind == "list":
        element, elements = draw(typed(depth + 1))
        return pa.list_(element), st.none() | st.lists(elements, max_size=3)
    (a, a_values), (b, b_values) = draw(typed(depth + 1)), draw(typed(depth + 1))
    return pa.struct([("a", a), ("b", b)]), st.none() | st.fixed_dictionaries({"a": a_values, "b": b_values})


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    columns = {}
    for name in ("c0", "c1"):
        kind, values = draw(typed())
        columns[name] = pa.array(draw(st.lists(values, max_size=4)), kind)
    times = st.none() | st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC))
    pool = draw(st.lists(times, min_size=1, max_size=3))  # a time repeated down a column is made once
    columns["at"] = pa.array(draw(st.lists(st.sampled_from(pool), max_size=4)), pa.timestamp(draw(st.sampled_from(["s", "ms", "us"])),
                                                                            tz=draw(st.sampled_from(["UTC", "+00:00"]))))
    size = min(len(column) for column in columns.values())
    return pa.table({name: column.slice(0, size) for name, column in columns.items()})


@settings(max_examples=300, deadline=None)
@given(table=tables(), offset=st.integers(0, 2))
def test_rows_are_what_pyarrow_gives_with_maps_as_dicts(table: pa.Table, offset: int) -> None:
    sliced = table.slice(min(offset, table.num_rows))
    assert python_rows(sliced) == sliced.to_pylist(maps_as_pydicts="strict")


def test_a_map_with_a_duplicate_key_is_refused_as_pyarrow_refuses_it() -> None:
    table = pa.table({"m": pa.array([[("a", 1), ("a", 2)]], pa.map_(pa.string(), pa.int64()))})
    with pytest.raises(KeyError, match="duplicate key was 'a'"):
        python_rows(table)
