"""XDM JSON values against their field types: text dates become dates, and a value that does not fit its
field's type is a problem named by its path.

AEP validates ingested records against the dataset's XDM schema and refuses a record whose value does not
fit (help/ingestion/batch-ingestion/troubleshooting.md); openseg does the same for the standard fields, and
stores ``date`` and ``date-time`` values as dates and UTC timestamps so every PQL date function works on them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from openseg.xdm.schema import FieldKind, FieldType

#: A problem with one value: (dotted path, what is wrong), e.g. ("person.birthDate", "must be a date ...").
Problem = tuple[str, str]

_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NAMES = {FieldKind.OBJECT: "an object", FieldKind.ARRAY: "an array", FieldKind.MAP: "an object (a map)",
          FieldKind.STRING: "a string", FieldKind.INTEGER: "an integer", FieldKind.NUMBER: "a number",
          FieldKind.BOOLEAN: "true or false", FieldKind.DATE: "a date (YYYY-MM-DD)",
          FieldKind.DATETIME: "an RFC 3339 date-time with an offset"}


def parse_date_time(value: object) -> datetime | None:
    """An RFC 3339 date-time with an explicit offset (``Z`` or ``±hh:mm``), as UTC; None if it is not one."""
    if not isinstance(value, str) or len(value) < 20 or "T" not in value.upper():
        return None
    text = value.strip()
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


def parse_date(value: object) -> date | None:
    """An RFC 3339 full-date (``1990-06-12``); None if it is not one."""
    if not isinstance(value, str) or not _FULL_DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def conform(record: Mapping[str, Any], root: FieldType, *, skip: Collection[str] = ()) -> tuple[dict[str, Any], list[Problem]]:
    """``record`` with each value of a typed field converted to its type, and the values that do not fit.

    Args:
        record: One XDM record as decoded from JSON.
        root: The object type the record should fit (fields it does not name are kept as they are).
        skip: Top-level fields left as they are (validated elsewhere).

    Returns:
        The converted record (dates and date-times parsed, integral floats of integer fields made ints)
        and one problem per value that does not fit, in record order.
    """
    problems: list[Problem] = []
    out = {}
    for key, value in record.items():
        child = root.field(key)
        out[key] = value if key in skip or child is None else _conform(value, child, key, problems)
    return out, problems


def _conform(value: Any, type_: FieldType, path: str, problems: list[Problem]) -> Any:
    if value is None:
        return None
    converted = _convert(value, type_, path, problems)
    if converted is _MISFIT:
        problems.append((path, f"must be {_NAMES[type_.kind]} (its XDM type), not {_shown(value)}"))
        return value
    return converted


_MISFIT = object()


def _convert(value: Any, type_: FieldType, path: str, problems: list[Problem]) -> Any:
    kind = type_.kind
    if kind is FieldKind.OBJECT:
        if not isinstance(value, dict):
            return _MISFIT
        if not type_.fields:  # an object whose fields the catalog leaves open
            return value
        return {k: v if (child := type_.field(k)) is None else _conform(v, child, f"{path}.{k}", problems)
                for k, v in value.items()}
    if kind is FieldKind.ARRAY:
        if not isinstance(value, list):
            return _MISFIT
        assert type_.of is not None
        return [_conform(v, type_.of, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if kind is FieldKind.MAP:
        if not isinstance(value, dict):
            return _MISFIT
        assert type_.of is not None
        return {k: _conform(v, type_.of, f"{path}.{k}", problems) for k, v in value.items()}
    return _scalar(value, kind)


def _scalar(value: Any, kind: FieldKind) -> Any:
    found: Any = _MISFIT
    if kind is FieldKind.STRING:
        found = value if isinstance(value, str) else _MISFIT
    elif isinstance(value, bool):
        found = value if kind is FieldKind.BOOLEAN else _MISFIT
    elif kind is FieldKind.INTEGER:
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            found = int(value)
    elif kind is FieldKind.NUMBER:
        found = value if isinstance(value, int | float) else _MISFIT
    elif kind is FieldKind.DATE:
        found = parse_date(value) or _MISFIT
    elif kind is FieldKind.DATETIME:
        found = parse_date_time(value) or _MISFIT
    return found


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def arrow_misfits(schema: pa.Schema, root: FieldType, *, skip: Collection[str] = ()) -> list[Problem]:
    """The columns of a Parquet file whose Arrow type cannot hold their standard field's values.

    Args:
        schema: The file's Arrow schema.
        root: The object type its records should fit (columns it does not name may have any type).
        skip: Top-level columns checked elsewhere.

    Returns:
        One problem per column or nested field whose type does not fit (a column of all nulls fits anything).
    """
    problems: list[Problem] = []
    for column in schema:
        child = root.field(column.name)
        if column.name not in skip and child is not None:
            _arrow_fit(column.type, child, column.name, problems)
    return problems


_ARROW_SCALARS = {
    FieldKind.STRING: lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    FieldKind.INTEGER: pa.types.is_integer,
    FieldKind.NUMBER: lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t),
    FieldKind.BOOLEAN: pa.types.is_boolean,
    FieldKind.DATE: pa.types.is_date,
    FieldKind.DATETIME: pa.types.is_timestamp,
    FieldKind.OBJECT: pa.types.is_struct,
    FieldKind.ARRAY: lambda t: pa.types.is_list(t) or pa.types.is_large_list(t),
    FieldKind.MAP: pa.types.is_map,
}


def _arrow_fit(data_type: pa.DataType, type_: FieldType, path: str, problems: list[Problem]) -> None:
    if pa.types.is_null(data_type):
        return
    if not _ARROW_SCALARS[type_.kind](data_type):
        problems.append((path, f"has Parquet type {data_type}, which cannot hold {_NAMES[type_.kind]} (its XDM type)"))
    elif type_.kind is FieldKind.OBJECT:
        for i in range(data_type.num_fields):
            field = data_type.field(i)
            if (child := type_.field(field.name)) is not None:
                _arrow_fit(field.type, child, f"{path}.{field.name}", problems)
    elif type_.kind is FieldKind.ARRAY and type_.of is not None:
        _arrow_fit(data_type.value_type, type_.of, f"{path}[]", problems)
    elif type_.kind is FieldKind.MAP and type_.of is not None:
        _arrow_fit(data_type.item_type, type_.of, f"{path}{{}}", problems)
