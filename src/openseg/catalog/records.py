"""Reading uploaded files record by record (streaming) and turning XDM records into Arrow."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from openseg.catalog.validation import EVENT, parse_rfc3339

IDENTITY_TYPE = pa.struct([("id", pa.string()), ("primary", pa.bool_())])
IDENTITY_MAP_TYPE = pa.map_(pa.string(), pa.list_(IDENTITY_TYPE))

_CHUNK = 1 << 20


class FileFormatError(ValueError):
    """The file is not JSON lines, a JSON array, or Parquet."""


def iter_json_records(path: Path) -> Iterator[object]:
    """Yield the records of a JSON-lines file or a JSON array, streaming: never the whole file in memory."""
    with path.open("rb") as handle:
        first = _first_significant_byte(handle)
        if first is None:
            return
        if first == b"[":
            yield from _iter_array(handle)
        else:
            yield from _iter_lines(handle)


def _first_significant_byte(handle: BinaryIO) -> bytes | None:
    while True:
        byte = handle.read(1)
        if not byte:
            return None
        if byte == b"\xef":  # UTF-8 byte order mark
            handle.read(2)
            continue
        if not byte.isspace():
            handle.seek(handle.tell() - 1)
            return byte


def _iter_lines(handle: BinaryIO) -> Iterator[object]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            raise FileFormatError(f"line {number} is not valid JSON: {exc.msg} (column {exc.colno})") from exc


def _iter_array(handle: BinaryIO) -> Iterator[object]:
    """Decode a top-level JSON array element by element with ``raw_decode`` over a sliding buffer."""
    decoder = json.JSONDecoder()
    buffer = ""
    pos = 0
    eof = False
    handle.read(1)  # the '['
    expect_value = True
    while True:
        # Skip whitespace and separators, refilling as needed.
        while True:
            while pos < len(buffer) and buffer[pos].isspace():
                pos += 1
            if pos < len(buffer) or eof:
                break
            buffer, pos, eof = _refill(handle, buffer, pos)
        if pos >= len(buffer):
            raise FileFormatError("the JSON array is not closed with ']'")
        char = buffer[pos]
        if char == "]":
            return
        if char == ",":
            if expect_value:
                raise FileFormatError("unexpected ',' in the JSON array")
            pos += 1
            expect_value = True
            continue
        if not expect_value:
            raise FileFormatError(f"expected ',' or ']' in the JSON array, found {char!r}")
        while True:
            try:
                value, end = decoder.raw_decode(buffer, pos)
                # A number at the buffer's end may continue in the next chunk.
                if end == len(buffer) and not eof:
                    raise json.JSONDecodeError("incomplete", buffer, end)
                break
            except json.JSONDecodeError as exc:
                if eof:
                    raise FileFormatError(f"invalid JSON in the array: {exc.msg}") from exc
                buffer, pos, eof = _refill(handle, buffer, pos)
        pos = end
        expect_value = False
        yield value


def _refill(handle: BinaryIO, buffer: str, pos: int) -> tuple[str, int, bool]:
    chunk = handle.read(_CHUNK)
    if not chunk:
        return buffer[pos:], 0, True
    # Keep multi-byte characters whole across chunk boundaries.
    while True:
        try:
            text = chunk.decode("utf-8")
            break
        except UnicodeDecodeError as exc:
            if exc.end < len(chunk) - 3:
                raise FileFormatError("the file is not UTF-8") from exc
            more = handle.read(1)
            if not more:
                raise FileFormatError("the file is not UTF-8") from exc
            chunk += more
    return buffer[pos:] + text, 0, False


def _drop_empty(value: Any) -> Any:
    """Parquet cannot store a struct without fields: an empty object becomes null."""
    if isinstance(value, dict):
        cleaned = {k: _drop_empty(v) for k, v in value.items()}
        cleaned = {k: v for k, v in cleaned.items() if v is not None}
        return cleaned or None
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


def identity_entries(identity_map: dict[str, list[dict[str, Any]]]) -> list[tuple[str, list[dict[str, Any]]]]:
    return [
        (namespace, [{"id": str(i["id"]), "primary": bool(i.get("primary", False))} for i in identities])
        for namespace, identities in identity_map.items()
    ]


def records_to_table(records: list[dict[str, Any]], kind: str) -> pa.Table:
    """Convert valid XDM records to Arrow: nested objects become structs, ``identityMap`` a map column,
    an event's ``timestamp`` a UTC timestamp.

    Raises:
        FileFormatError: when a field holds values of incompatible types across records.
    """
    identity_maps = [identity_entries(r.get("identityMap") or {}) for r in records]
    rows = []
    for record in records:
        row = {k: v for k, v in record.items() if k != "identityMap"}
        if kind == EVENT:
            row["timestamp"] = parse_rfc3339(row["timestamp"])
        rows.append(_drop_empty(row) or {})
    try:
        # pa.array infers one struct type from every record (from_pylist would read only the first's keys).
        table = (pa.Table.from_struct_array(pa.array(rows)) if any(rows)
                 else pa.table({"_": pa.nulls(len(rows))}).drop(["_"]))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise FileFormatError(f"records disagree on a field's type: {exc}") from exc
    if kind == EVENT and "timestamp" in table.column_names:
        index = table.column_names.index("timestamp")
        table = table.set_column(index, "timestamp", table["timestamp"].cast(pa.timestamp("us", tz="UTC")))
    return table.append_column("identityMap", pa.array(identity_maps, type=IDENTITY_MAP_TYPE))


def utc_from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
