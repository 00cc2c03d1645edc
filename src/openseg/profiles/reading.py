"""Reading lake files of one kind as one relation with the unified schema.

Files are grouped by their stored schema; each group is one ``read_parquet`` whose columns are converted
to the unified types (:mod:`openseg.profiles.sources` gives the rules), and the groups are concatenated.
Every row also carries its provenance: a record id (``__rid``: the file's position in ingest order in
the high 32 bits, its row number in the low 32 bits, so ordering by it is ordering by ingestion), the
dataset id and the ingest time of its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from openseg.profiles._sql import cast, col, field, is_null, sql_type, string, struct_pack
from openseg.profiles.sources import (
    IDENTITY_MAP,
    IDENTITY_MAP_TYPE,
    IDENTITY_TYPE,
    RESERVED_COLUMNS,
    TIME_FIELDS,
    SourceFile,
    SourceKind,
    normalize_schema,
    source_schema,
    unify_schemas,
    utc_naive,
)

if TYPE_CHECKING:
    from openseg.engines.base import Workspace

RID = "__rid"
DATASET = "__dataset_id"
INGEST = "__ingest_time"
SOURCES_TABLE = "__source_files"
PROVENANCE = (RID, DATASET, INGEST)
_FILE_COLUMN = "__file_idx"
_ROW_COLUMN = "__file_row"


@dataclass(frozen=True)
class KindInput:
    """The files of one kind and their unified schema.

    Attributes:
        kind: ``"profile"`` or ``"event"``.
        files: ``(file index, source, stored schema)`` in ingest order.
        schema: The unified, normalised schema of the data columns.
    """

    kind: SourceKind
    files: tuple[tuple[int, SourceFile, pa.Schema], ...]
    schema: pa.Schema


def plan_inputs(sources: Sequence[SourceFile]) -> tuple[dict[str, KindInput], pa.Table]:
    """Read every file's schema and unify them per kind.

    Args:
        sources: Files in ingest order (see :func:`openseg.profiles.sources.ingest_order`).

    Returns:
        The inputs per kind, and the table of files (``file_idx, path, dataset_id, batch_id,
        ingest_time``) the read queries join to as ``__source_files``.
    """
    per_kind: dict[str, list[tuple[int, SourceFile, pa.Schema]]] = {"profile": [], "event": []}
    for index, source in enumerate(sources):
        per_kind[source.kind].append((index, source, source_schema(source)))
    inputs = {
        kind: KindInput(
            kind=kind,  # type: ignore[arg-type]
            files=tuple(files),
            schema=unify_schemas([normalize_schema(s, kind) for _, _, s in files], kind),  # type: ignore[arg-type]
        )
        for kind, files in per_kind.items()
    }
    table = pa.table(
        {
            "file_idx": pa.array(range(len(sources)), pa.int64()),
            "path": pa.array([s.path for s in sources], pa.string()),
            "dataset_id": pa.array([s.dataset_id for s in sources], pa.string()),
            "batch_id": pa.array([s.batch_id for s in sources], pa.string()),
            "ingest_time": pa.array([utc_naive(s.ingest_time) for s in sources], pa.timestamp("us")),
        }
    )
    return inputs, table


def read_query(workspace: Workspace, source: KindInput, name: str) -> exp.Query:
    """A query yielding every record of ``source`` in the unified schema plus provenance columns.

    Each group of files with one stored schema is registered in ``workspace`` as ``{name}_{n}``, numbered
    (:meth:`~openseg.engines.base.Workspace.register_numbered`); the query joins them to the table of source
    files (:data:`SOURCES_TABLE`, see :func:`plan_inputs`), which must be registered too.

    Args:
        workspace: Where the files are read.
        source: The files and unified schema of one kind.
        name: Prefix of the relations registered for its files.

    Returns:
        ``SELECT <unified columns>, __rid, __dataset_id, __ingest_time`` over all files (no rows and
        the same columns when there are no files).
    """
    targets = {f.name: sql_type(f.type) for f in source.schema}
    groups: dict[pa.Schema, list[tuple[int, str]]] = {}
    for index, file, stored in source.files:
        groups.setdefault(stored, []).append((index, file.path))
    if not groups:
        empty = [exp.alias_(cast(exp.Null(), t), column, quoted=True) for column, t in targets.items()]
        empty += [
            exp.alias_(cast(exp.Null(), sql_type(t)), column, quoted=True)
            for column, t in ((RID, pa.int64()), (DATASET, pa.string()), (INGEST, pa.timestamp("us")))
        ]
        return exp.select(*empty).where(exp.false())
    selects = []
    for number, (stored, files) in enumerate(groups.items()):
        relation = f"{name}_{number}"
        workspace.register_numbered(relation, files, _FILE_COLUMN, _ROW_COLUMN)
        selects.append(_group_select(relation, source, stored))
    query: exp.Query = selects[0]
    for select in selects[1:]:
        query = exp.union(query, select, distinct=False)
    return query


def _group_select(relation: str, source: KindInput, stored: pa.Schema) -> exp.Select:
    raw = {f.name: f.type for f in stored if f.name not in RESERVED_COLUMNS}
    columns = [
        exp.alias_(
            _convert(col(name, "r") if name in raw else None, raw.get(name), f.type, (name,), source.kind),
            name,
            quoted=True,
        )
        for name, f in ((f.name, f) for f in source.schema)
    ]
    rid = exp.BitwiseOr(
        this=exp.BitwiseLeftShift(this=col(_FILE_COLUMN, "r"), expression=exp.Literal.number(32)),
        expression=col(_ROW_COLUMN, "r"),
    )
    columns += [
        exp.alias_(rid, RID, quoted=True),
        exp.alias_(col("dataset_id", "s"), DATASET, quoted=True),
        # A timestamp without zone (UTC) however the engine registered the Arrow table (Spark: as zoned).
        exp.alias_(cast(col("ingest_time", "s"), sql_type(pa.timestamp("us"))), INGEST, quoted=True),
    ]
    return (
        exp.select(*columns)
        .from_(exp.alias_(exp.to_table(relation), "r", quoted=True))
        .join(
            exp.alias_(exp.to_table(SOURCES_TABLE), "s", quoted=True),
            on=exp.EQ(this=col("file_idx", "s"), expression=col(_FILE_COLUMN, "r")),
        )
    )


def _convert(
    value: exp.Expr | None,
    raw: pa.DataType | None,
    target: pa.DataType,
    path: tuple[str, ...],
    kind: SourceKind,
    depth: int = 0,
) -> exp.Expr:
    """Convert ``value`` (stored as ``raw``) to ``target``; ``None`` means the file lacks it.

    A cast converts a value whose shape is the target's (the same struct fields in the same order, at every
    level): engines cast structs by position (Spark) or by name (DuckDB), which agree then. Any other struct is
    rebuilt field by field, and a list of them element by element, so every engine fills missing fields with
    NULL and drops extra ones alike.
    """
    target_sql = sql_type(target)
    if value is None or raw is None or pa.types.is_null(raw):
        # A column a file holds only nulls in has no type of its own (Spark reads it as INT).
        return cast(exp.Null(), target_sql)
    if path == (IDENTITY_MAP,):
        return _identity_map(value, raw)
    if raw == target:
        return value
    if path in TIME_FIELDS[kind] and (pa.types.is_string(raw) or pa.types.is_large_string(raw)):
        # CAST(text AS TIMESTAMP) ignores a UTC offset; going through TIMESTAMPTZ honours it (the
        # session's time zone is UTC).
        return cast(exp.TryCast(this=value, to=exp.DataType.build("TIMESTAMPTZ")), target_sql)
    if pa.types.is_struct(raw) and pa.types.is_struct(target) and (
        _holds_text_time(raw, path, kind) or not _same_shape(raw, target)
    ):
        items = []
        for i in range(target.num_fields):
            child = target.field(i)
            index = raw.get_field_index(child.name)
            items.append(
                (
                    child.name,
                    _convert(
                        field(value, child.name) if index >= 0 else None,
                        raw.field(index).type if index >= 0 else None,
                        child.type,
                        (*path, child.name),
                        kind,
                        depth,
                    ),
                )
            )
        return exp.case().when(is_null(value), cast(exp.Null(), target_sql)).else_(struct_pack(items))
    if _is_list(raw) and _is_list(target) and not _same_shape(raw.value_type, target.value_type):
        # Elements are not addressable as paths (arrays merge whole): converted by type alone.
        element = exp.to_identifier(f"__element{depth}")
        converted = _convert(exp.column(element), raw.value_type, target.value_type, (), kind, depth + 1)
        return exp.Transform(this=value, expression=exp.Lambda(this=converted, expressions=[element]))
    return cast(value, target_sql)


def _is_list(data_type: pa.DataType) -> bool:
    return bool(pa.types.is_list(data_type) or pa.types.is_large_list(data_type))


def _same_shape(raw: pa.DataType, target: pa.DataType) -> bool:
    """Whether a cast converts ``raw`` to ``target`` alike on every engine: the same nesting, and structs with
    the same field names in the same order (leaf types may differ)."""
    if pa.types.is_struct(raw) or pa.types.is_struct(target):
        return bool(
            pa.types.is_struct(raw)
            and pa.types.is_struct(target)
            and [raw.field(i).name for i in range(raw.num_fields)]
            == [target.field(i).name for i in range(target.num_fields)]
            and all(_same_shape(raw.field(i).type, target.field(i).type) for i in range(raw.num_fields))
        )
    if _is_list(raw) or _is_list(target):
        return bool(_is_list(raw) and _is_list(target) and _same_shape(raw.value_type, target.value_type))
    if pa.types.is_map(raw) or pa.types.is_map(target):
        return bool(
            pa.types.is_map(raw)
            and pa.types.is_map(target)
            and _same_shape(raw.key_type, target.key_type)
            and _same_shape(raw.item_type, target.item_type)
        )
    return True


def _holds_text_time(raw: pa.DataType, path: tuple[str, ...], kind: SourceKind) -> bool:
    for time_path in TIME_FIELDS[kind]:
        if len(time_path) > len(path) and time_path[: len(path)] == path:
            node: pa.DataType = raw
            for name in time_path[len(path) :]:
                if not pa.types.is_struct(node) or node.get_field_index(name) < 0:
                    break
                node = node.field(node.get_field_index(name)).type
            else:
                if pa.types.is_string(node) or pa.types.is_large_string(node):
                    return True
    return False


def _identity_map(value: exp.Expr, raw: pa.DataType) -> exp.Expr:
    """``identityMap`` as ``MAP(VARCHAR, STRUCT(id, primary)[])`` from a map or a struct of lists."""
    map_type = sql_type(IDENTITY_MAP_TYPE)
    ids = pa.list_(IDENTITY_TYPE)
    if not pa.types.is_struct(raw):
        if _same_shape(raw, IDENTITY_MAP_TYPE):
            return cast(value, map_type)
        # Identities with other fields (or in another order): rebuilt entry by entry.
        name = exp.to_identifier("__entry")
        rebuilt_ids = _convert(field(exp.column(name), "value"), raw.item_type, ids, (), "profile", 1)
        pair = struct_pack([("key", field(exp.column(name), "key")), ("value", rebuilt_ids)])
        each = exp.Transform(this=exp.func("map_entries", value), expression=exp.Lambda(this=pair, expressions=[name]))
        return cast(exp.func("map_from_entries", each), map_type)
    # pyarrow infers a struct with one field per namespace from JSON objects: rebuild the map,
    # leaving out namespaces a record does not carry (a NULL field), as the JSON had no such key.
    entry_type = sql_type(pa.list_(pa.struct([pa.field("key", pa.string()), pa.field("value", ids)])))
    entries = []
    for i in range(raw.num_fields):
        namespace = raw.field(i).name
        namespace_ids = field(value, namespace)
        entry = struct_pack([("key", string(namespace)), ("value", _convert(namespace_ids, raw.field(i).type, ids, (), "profile", 1))])
        entries.append(
            exp.case().when(is_null(namespace_ids), cast(exp.Array(expressions=[]), entry_type))
            .else_(exp.Array(expressions=[entry]))
        )
    rebuilt = exp.func("map_from_entries", exp.func("flatten", exp.Array(expressions=entries)))
    return exp.case().when(is_null(value), cast(exp.Null(), map_type)).else_(cast(rebuilt, map_type))
