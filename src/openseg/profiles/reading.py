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

import duckdb
import pyarrow as pa
from sqlglot import exp

from openseg.profiles._sql import cast, col, duckdb_type, field, is_null, string, struct_pack
from openseg.profiles.sources import (
    IDENTITY_MAP,
    IDENTITY_MAP_TYPE,
    IDENTITY_TYPE,
    RESERVED_COLUMNS,
    TIME_FIELDS,
    SourceFile,
    SourceKind,
    normalize_schema,
    read_file_schema,
    unify_schemas,
    utc_naive,
)

RID = "__rid"
DATASET = "__dataset_id"
INGEST = "__ingest_time"
SOURCES_TABLE = "__source_files"
PROVENANCE = (RID, DATASET, INGEST)
_FILE_COLUMN = "__source_path"


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
        per_kind[source.kind].append((index, source, read_file_schema(source.path)))
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


def read_query(connection: duckdb.DuckDBPyConnection, source: KindInput) -> exp.Query:
    """A query yielding every record of ``source`` in the unified schema plus provenance columns.

    Args:
        connection: Used only to map Arrow types to DuckDB types.
        source: The files and unified schema of one kind.

    Returns:
        ``SELECT <unified columns>, __rid, __dataset_id, __ingest_time`` over all files (no rows and
        the same columns when there are no files).
    """
    targets = {f.name: duckdb_type(connection, f.type) for f in source.schema}
    groups: dict[pa.Schema, list[str]] = {}
    for _, file, stored in source.files:
        groups.setdefault(stored, []).append(file.path)
    if not groups:
        empty = [exp.alias_(cast(exp.Null(), t), name, quoted=True) for name, t in targets.items()]
        empty += [
            exp.alias_(cast(exp.Null(), exp.DataType.build(t)), name, quoted=True)
            for name, t in ((RID, "BIGINT"), (DATASET, "VARCHAR"), (INGEST, "TIMESTAMP"))
        ]
        return exp.select(*empty).where(exp.false())
    selects = [_group_select(connection, source, stored, paths, targets) for stored, paths in groups.items()]
    query: exp.Query = selects[0]
    for select in selects[1:]:
        query = exp.union(query, select, distinct=False)
    return query


def _group_select(
    connection: duckdb.DuckDBPyConnection,
    source: KindInput,
    stored: pa.Schema,
    paths: list[str],
    targets: dict[str, exp.DataType],
) -> exp.Select:
    raw = {f.name: f.type for f in stored if f.name not in RESERVED_COLUMNS}
    columns = [
        exp.alias_(
            _convert(
                connection,
                col(name, "r") if name in raw else None,
                raw.get(name),
                f.type,
                (name,),
                source.kind,
                targets[name],
            ),
            name,
            quoted=True,
        )
        for name, f in ((f.name, f) for f in source.schema)
    ]
    rid = exp.BitwiseOr(
        this=exp.BitwiseLeftShift(
            this=cast(col("file_idx", "s"), exp.DataType.build("BIGINT")), expression=exp.Literal.number(32)
        ),
        expression=cast(col("file_row_number", "r"), exp.DataType.build("BIGINT")),
    )
    columns += [
        exp.alias_(rid, RID, quoted=True),
        exp.alias_(col("dataset_id", "s"), DATASET, quoted=True),
        exp.alias_(col("ingest_time", "s"), INGEST, quoted=True),
    ]
    reader = exp.func(
        "read_parquet",
        exp.Array(expressions=[string(p) for p in paths]),
        exp.PropertyEQ(this=exp.to_identifier("filename"), expression=string(_FILE_COLUMN)),
        exp.PropertyEQ(this=exp.to_identifier("file_row_number"), expression=exp.true()),
    )
    return (
        exp.select(*columns)
        .from_(exp.alias_(reader, "r", quoted=True))
        .join(
            exp.alias_(exp.to_table(SOURCES_TABLE), "s", quoted=True),
            on=exp.EQ(this=col("path", "s"), expression=col(_FILE_COLUMN, "r")),
        )
    )


def _convert(
    connection: duckdb.DuckDBPyConnection,
    value: exp.Expr | None,
    raw: pa.DataType | None,
    target: pa.DataType,
    path: tuple[str, ...],
    kind: SourceKind,
    target_sql: exp.DataType | None = None,
) -> exp.Expr:
    """Convert ``value`` (stored as ``raw``) to ``target``; ``None`` means the file lacks it."""
    target_sql = target_sql or duckdb_type(connection, target)
    if value is None or raw is None:
        return cast(exp.Null(), target_sql)
    if path == (IDENTITY_MAP,):
        return _identity_map(connection, value, raw)
    if raw == target:
        return value
    if path in TIME_FIELDS[kind] and (pa.types.is_string(raw) or pa.types.is_large_string(raw)):
        # CAST(text AS TIMESTAMP) ignores a UTC offset; going through TIMESTAMPTZ honours it (the
        # connection's time zone is UTC).
        return cast(exp.TryCast(this=value, to=exp.DataType.build("TIMESTAMPTZ")), target_sql)
    if pa.types.is_struct(raw) and pa.types.is_struct(target) and _holds_text_time(raw, path, kind):
        items = []
        for i in range(target.num_fields):
            child = target.field(i)
            index = raw.get_field_index(child.name)
            items.append(
                (
                    child.name,
                    _convert(
                        connection,
                        field(value, child.name) if index >= 0 else None,
                        raw.field(index).type if index >= 0 else None,
                        child.type,
                        (*path, child.name),
                        kind,
                    ),
                )
            )
        return exp.case().when(is_null(value), exp.Null()).else_(struct_pack(items))
    # DuckDB casts structs by field name, filling missing fields with NULL and dropping extra ones.
    return cast(value, target_sql)


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


def _identity_map(connection: duckdb.DuckDBPyConnection, value: exp.Expr, raw: pa.DataType) -> exp.Expr:
    """``identityMap`` as ``MAP(VARCHAR, STRUCT(id, primary)[])`` from a map or a struct of lists."""
    map_type = duckdb_type(connection, IDENTITY_MAP_TYPE)
    if not pa.types.is_struct(raw):
        return cast(value, map_type)
    # pyarrow infers a struct with one field per namespace from JSON objects: rebuild the map,
    # leaving out namespaces a record does not carry (a NULL field), as the JSON had no such key.
    ids_type = duckdb_type(connection, pa.list_(IDENTITY_TYPE))
    entries = []
    for i in range(raw.num_fields):
        namespace = raw.field(i).name
        ids = field(value, namespace)
        entry = struct_pack([("key", string(namespace)), ("value", cast(ids, ids_type))])
        entries.append(exp.case().when(is_null(ids), exp.Array(expressions=[])).else_(exp.Array(expressions=[entry])))
    rebuilt = exp.func("map_from_entries", exp.func("flatten", exp.Array(expressions=entries)))
    return exp.case().when(is_null(value), cast(exp.Null(), map_type)).else_(cast(rebuilt, map_type))
