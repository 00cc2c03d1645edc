"""Lake files feeding the profile store, and the union Arrow schema across them.

Batches of one dataset may have different but compatible schemas (docs/architecture.md, "The data
lake"). Before unifying, each file schema is *normalised* so that differences that only come from how
the JSON was converted to Arrow do not conflict:

- ``identityMap`` is always ``map<string, list<struct<id: string, primary: bool>>>``; a file where
  pyarrow inferred a struct of lists (one field per namespace) is accepted and converted on read.
- Every timestamp becomes ``timestamp[us]`` holding UTC (time zones are resolved on read).
- The known time fields (an event's ``timestamp``, a fragment's
  ``extSourceSystemAudit.lastUpdatedDate``) are timestamps even when a file holds them as ISO 8601
  strings.
- Columns whose names the store reserves (``_profile_id``, ``_sources``, ...) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import pyarrow as pa

from openseg import failures, lake_files
from openseg.xdm.schema import INTERNAL_COLUMNS

SourceKind = Literal["profile", "event"]

IDENTITY_MAP = "identityMap"
IDENTITY_TYPE = pa.struct([pa.field("id", pa.string()), pa.field("primary", pa.bool_())])
IDENTITY_MAP_TYPE = pa.map_(pa.string(), pa.list_(IDENTITY_TYPE))
TIMESTAMP_TYPE = pa.timestamp("us")

# Field paths that must be timestamps whatever the file holds, per kind.
TIME_FIELDS: dict[str, frozenset[tuple[str, ...]]] = {
    "profile": frozenset({("extSourceSystemAudit", "lastUpdatedDate")}),
    "event": frozenset({("timestamp",)}),
}
# Columns every unified schema has, per kind, with their type when no file carries them.
REQUIRED_FIELDS: dict[str, tuple[pa.Field, ...]] = {
    "profile": (pa.field(IDENTITY_MAP, IDENTITY_MAP_TYPE),),
    "event": (
        pa.field("_id", pa.string()),
        pa.field("timestamp", TIMESTAMP_TYPE),
        pa.field("eventType", pa.string()),
        pa.field(IDENTITY_MAP, IDENTITY_MAP_TYPE),
    ),
}
# Columns the store adds; a source column with one of these names is ignored.
RESERVED_COLUMNS = INTERNAL_COLUMNS


class SchemaConflictError(ValueError):
    """Two source files hold incompatible types for the same field."""


@dataclass(frozen=True)
class SourceFile:
    """One Parquet file of a successful batch.

    Attributes:
        path: The Parquet file.
        dataset_id: The dataset the batch belongs to.
        batch_id: The batch that wrote the file.
        ingest_time: When the batch succeeded, in UTC (naive datetimes are read as UTC).
        kind: ``"profile"`` for profile fragments, ``"event"`` for ExperienceEvents.
    """

    path: str
    dataset_id: str
    batch_id: str
    ingest_time: datetime
    kind: SourceKind

    def __post_init__(self) -> None:
        if self.kind not in ("profile", "event"):
            raise ValueError(f"kind: {self.kind!r} is not 'profile' or 'event'")


def ingest_order(sources: Iterable[SourceFile]) -> list[SourceFile]:
    """Sources in the order their records were ingested (the tie-break of every later step)."""
    return sorted(sources, key=lambda s: (utc_naive(s.ingest_time), s.dataset_id, s.batch_id, s.path))


def utc_naive(moment: datetime) -> datetime:
    """``moment`` as a naive UTC datetime (naive input is taken to be UTC already)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def read_file_schema(path: str) -> pa.Schema:
    """The Arrow schema stored in a Parquet file, without metadata."""
    return lake_files.read_schema(path).remove_metadata()


def source_schema(source: SourceFile) -> pa.Schema:
    """The Arrow schema of a batch's file; a file that cannot be read is told as its batch."""
    try:
        return read_file_schema(source.path)
    except (pa.ArrowInvalid, OSError) as unreadable:
        raise unreadable_source(source, unreadable) from unreadable


def unreadable_source(source: SourceFile, error: Exception) -> Exception:
    """What to raise for a batch file that could not be read: a full disk as it is, anything else as
    :class:`~openseg.failures.DamagedBatch` naming the batch and its dataset."""
    if failures.is_disk_full(error):
        return error
    return failures.DamagedBatch(source.dataset_id, source.batch_id, "not a readable Parquet file")


def normalize_schema(schema: pa.Schema, kind: SourceKind) -> pa.Schema:
    """A file schema as it will be read: see the module docstring for the rules."""
    fields = []
    for field in schema:
        if field.name in RESERVED_COLUMNS:
            continue
        if field.name == IDENTITY_MAP:
            fields.append(pa.field(IDENTITY_MAP, IDENTITY_MAP_TYPE))
            continue
        fields.append(field.with_type(normalize_type(field.type, (field.name,), kind)))
    return pa.schema(fields)


def normalize_type(data_type: pa.DataType, path: tuple[str, ...], kind: SourceKind) -> pa.DataType:
    """The type a value at ``path`` is converted to on read."""
    if path in TIME_FIELDS[kind] and (pa.types.is_string(data_type) or pa.types.is_large_string(data_type)):
        return TIMESTAMP_TYPE
    if pa.types.is_timestamp(data_type):
        return TIMESTAMP_TYPE
    if pa.types.is_struct(data_type):
        children = [data_type.field(i) for i in range(data_type.num_fields)]
        return pa.struct([c.with_type(normalize_type(c.type, (*path, c.name), kind)) for c in children])
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        # Elements of an array are not addressable as paths of their own: arrays merge as a whole.
        return pa.list_(data_type.value_field.with_type(normalize_type(data_type.value_type, (), kind)))
    return data_type


def unify_schemas(schemas: Sequence[pa.Schema], kind: SourceKind) -> pa.Schema:
    """The union of normalised file schemas of one kind, with the kind's required columns.

    Args:
        schemas: Normalised file schemas, in ingest order (the first file fixes column order).
        kind: Which kind of record the files hold.

    Returns:
        The unified schema (``pyarrow.unify_schemas`` with permissive promotion).

    Raises:
        SchemaConflictError: If two files hold incompatible types for one field.
    """
    try:
        unified = pa.unify_schemas(list(schemas), promote_options="permissive") if schemas else pa.schema([])
    except (pa.ArrowTypeError, pa.ArrowInvalid) as error:
        raise SchemaConflictError(f"{kind} sources have incompatible schemas: {error}") from None
    # A field no file ever filled (JSON nulls only) has Arrow type null, which no engine can store:
    # type it as text until a file brings a value (permissive unification then promotes it).
    unified = pa.schema([f.with_type(_without_null_type(f.type)) for f in unified])
    for required in REQUIRED_FIELDS[kind]:
        index = unified.get_field_index(required.name)
        if index < 0:
            unified = unified.append(required)
        elif required.name in ("timestamp", IDENTITY_MAP) and unified.field(index).type != required.type:
            raise SchemaConflictError(
                f"{kind} field {required.name!r} has type {unified.field(index).type}, expected {required.type}"
            )
    return unified


def _without_null_type(data_type: pa.DataType) -> pa.DataType:
    if pa.types.is_null(data_type):
        return pa.string()
    if pa.types.is_struct(data_type):
        children = [data_type.field(i) for i in range(data_type.num_fields)]
        return pa.struct([c.with_type(_without_null_type(c.type)) for c in children])
    if pa.types.is_list(data_type):
        return pa.list_(data_type.value_field.with_type(_without_null_type(data_type.value_type)))
    if pa.types.is_map(data_type):
        return pa.map_(_without_null_type(data_type.key_type), _without_null_type(data_type.item_type))
    return data_type
