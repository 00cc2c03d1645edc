"""Arrow rows as Python dicts, maps as dicts: what ``Table.to_pylist(maps_as_pydicts="strict")`` returns, made
faster for the point reads of streaming, the edge and profile access.

pyarrow turns each map value into a dict with Python-level work of its own: one profile row's ``identityMap``
(three namespaces) took 66 us that way against 10 us as pairs, most of a 120 us row. Here every column is
converted as pairs and each map (at any depth: in a list, a struct or another map's values) is made a dict
after, by a converter built once per Arrow type. Duplicate keys in a map raise ``KeyError``, as pyarrow's
strict mode does. A column of UTC times is read as counts from the epoch (pyarrow's own conversion went through the zone
for each value: 5 ms for 500 values).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

import pyarrow as pa

Convert = Callable[[Any], Any]


def python_rows(table: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    """The rows of ``table`` as dicts by column name, maps as dicts."""
    if table.num_rows == 0:  # most point reads of a membership's change files
        return []
    names = table.column_names
    return [dict(zip(names, values, strict=True)) for values in zip(*python_columns(table), strict=True)]


def python_columns(table: pa.Table | pa.RecordBatch) -> list[list[Any]]:
    """The columns of ``table`` as lists of the values :func:`python_rows` gives."""
    columns = []
    for column in table.columns:
        convert = _converter(column.type)
        if _is_utc_time(column.type):
            columns.append(_utc_times(column))
        elif convert is _PYARROW:
            columns.append(column.to_pylist(maps_as_pydicts="strict"))
        elif convert is None:
            columns.append(column.to_pylist())
        else:
            columns.append([convert(value) for value in column.to_pylist()])
    return columns


def _utc_times(column: pa.Array | pa.ChunkedArray) -> list[dt.datetime | None]:
    """A column of UTC times as Python datetimes. pyarrow makes each zone-aware value through its zone (10 us a
    value); the epoch plus the value's count of its unit is exact and five times faster, and a value repeated in
    the column is made once (a membership change file's rows share their evaluation time: 69 rows' two time
    columns, 110 us each way, 25 us so)."""
    scale = _PER_MICROSECOND[column.type.unit]
    made: dict[int | None, dt.datetime | None] = {None: None}
    times = []
    for count in column.cast(pa.int64()).to_pylist():
        value = made.get(count, _MISSING)
        if value is _MISSING:
            seconds, fraction = divmod(count, scale[0])
            value = made[count] = _EPOCH + dt.timedelta(0, seconds, fraction * scale[1])
        times.append(value)
    return times


def _is_utc_time(kind: pa.DataType) -> bool:
    """A timestamp in UTC, of a unit whose values are Python datetimes (not nanoseconds)."""
    return pa.types.is_timestamp(kind) and kind.tz in _UTC_NAMES and kind.unit in ("s", "ms", "us")


_UTC_NAMES = frozenset({"UTC", "utc", "Etc/UTC", "+00:00", "Z"})
#: Per unit: its counts per second, and microseconds per count.
_PER_MICROSECOND = {"s": (1, 0), "ms": (1_000, 1_000), "us": (1_000_000, 1)}
_MISSING: Any = object()
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _pyarrow(value: Any) -> Any:  # pragma: no cover - a marker, never called
    raise NotImplementedError


#: A type this module does not walk (a union, say) whose values may hold a map: pyarrow converts the column.
_PYARROW: Convert = _pyarrow


@functools.lru_cache(maxsize=512)
def _converter(kind: pa.DataType) -> Convert | None:
    """What turns a value of ``kind``, as ``to_pylist()`` gives it, into its value with maps as dicts; None when
    it needs nothing (no map inside)."""
    if pa.types.is_map(kind):
        return _map(_converter(kind.item_type))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        element = _converter(kind.value_type)
        if element is _PYARROW:
            return _PYARROW
        return None if element is None else _list(element)
    if pa.types.is_struct(kind):
        fields = [(kind.field(i).name, _converter(kind.field(i).type)) for i in range(kind.num_fields)]
        if any(convert is _PYARROW for _, convert in fields):
            return _PYARROW
        converted = [(name, convert) for name, convert in fields if convert is not None]
        return _struct(converted) if converted else None
    if pa.types.is_dictionary(kind):
        return _converter(kind.value_type)
    if pa.types.is_nested(kind) or pa.types.is_union(kind):
        return _PYARROW
    return None


def _map(item: Convert | None) -> Convert:
    if item is _PYARROW:
        return _PYARROW

    def as_dict(value: list[tuple[Any, Any]] | None) -> dict[Any, Any] | None:
        if value is None:
            return None
        found = dict(value) if item is None else {key: item(entry) for key, entry in value}
        if len(found) != len(value):
            duplicate = next(key for index, (key, _) in enumerate(value) if key in dict(value[:index]))
            raise KeyError("Converting to Python dictionary is not supported in strict mode when duplicate keys "
                           f"are present (duplicate key was {duplicate!r}).")
        return found

    return as_dict


def _list(element: Convert) -> Convert:
    def as_list(value: list[Any] | None) -> list[Any] | None:
        return None if value is None else [element(entry) for entry in value]

    return as_list


def _struct(fields: list[tuple[str, Convert]]) -> Convert:
    def as_struct(value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            for name, convert in fields:
                value[name] = convert(value[name])
        return value

    return as_struct


__all__ = ["python_rows"]
