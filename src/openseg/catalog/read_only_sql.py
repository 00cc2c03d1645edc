"""Query Service: read-only SQL over a sandbox's datasets (each a table named after the dataset).

Two walls keep a query read-only and inside its sandbox: every node of sqlglot's tree is checked (one
query statement; tables of the sandbox or CTEs in scope where they are read; no function that reads
files, settings or the catalog), and DuckDB runs it with external access off except for the sandbox's
lake directory, with the configuration locked.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from openseg import lake_files
from openseg.engines.duckdb import connection_config
from openseg.errors import BadRequest
from openseg.json_values import json_value as json_value  # re-exported for its callers here

#: Rows a query may return (the rest is cut, and the result says so).
MAX_ROWS = 100_000
#: Seconds a query may run before it is interrupted.
TIMEOUT_SECONDS = 120.0
#: Memory and threads a query may use (``OPENSEG_QUERY_MEMORY_LIMIT``, ``OPENSEG_QUERY_THREADS``).
MEMORY_LIMIT = "1GB"
THREADS = 1


class QueryLimitExceeded(Exception):
    """A query met one of its limits (time or memory) and was stopped; the message names the limit."""

#: Statements and clauses that write, change settings or reach outside the query, by what a 400 calls them.
_FORBIDDEN: dict[type[exp.Expr], str] = {
    exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE", exp.Create: "CREATE", exp.Drop: "DROP",
    exp.Alter: "ALTER", exp.Copy: "COPY", exp.Merge: "MERGE", exp.TruncateTable: "TRUNCATE", exp.Set: "SET",
    exp.Pragma: "PRAGMA", exp.Use: "USE", exp.Attach: "ATTACH", exp.Detach: "DETACH", exp.Install: "INSTALL",
    exp.LoadData: "LOAD", exp.Transaction: "BEGIN", exp.Commit: "COMMIT", exp.Rollback: "ROLLBACK",
    exp.Describe: "DESCRIBE", exp.Show: "SHOW", exp.Summarize: "SUMMARIZE", exp.ReadCSV: "read_csv",
    exp.ReadParquet: "read_parquet",
}

#: DuckDB functions that read files, list paths, reveal settings or the catalog (which names the server's
#: paths), or run SQL text of their own; checked by name because sqlglot parses most as ``Anonymous``.
_FORBIDDEN_FUNCTIONS = frozenset({
    "glob", "current_setting", "getenv", "query", "query_table", "sniff_csv", "read_text", "read_blob",
    "which_secret", "checkpoint", "force_checkpoint", "json_execute_serialized_sql", "delta_scan", "st_read",
    "load_aws_credentials", "current_database", "current_schema", "current_schemas", "file_exists",
})
_FORBIDDEN_PREFIXES = ("read_", "parquet_", "duckdb_", "pragma_", "iceberg_", "sqlite_", "postgres_", "mysql_",
                       "scan_", "st_read")


def table_name(dataset_name: str) -> str:
    """The SQL table of a dataset: its name in lower case, runs of other characters as ``_``."""
    name = re.sub(r"[^0-9a-z]+", "_", dataset_name.lower()).strip("_")
    return name if name and not name[0].isdigit() else f"t_{name}"


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    truncated: bool
    seconds: float


def check_read_only(sql: str, tables: set[str]) -> None:
    """Refuse anything but one query over the sandbox's tables (and its own CTEs)."""
    if not isinstance(sql, str) or not sql.strip():
        raise BadRequest("'sql' is required", field="sql")
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except ParseError as exc:
        raise BadRequest(f"'sql' does not parse: {exc.errors[0]['description'] if exc.errors else exc}",
                         field="sql") from exc
    except TokenError as exc:  # an unterminated quote or comment
        raise BadRequest(f"'sql' does not parse: {exc}", field="sql") from exc
    except RecursionError as exc:  # thousands of nested parentheses
        raise BadRequest("'sql' is nested too deeply to parse", field="sql") from exc
    if len(statements) != 1:
        raise BadRequest("'sql' must be exactly one statement", field="sql")
    statement = statements[0]
    for node in statement.walk():
        _check_node(node, tables)
    if not isinstance(statement, exp.Query):
        raise BadRequest(f"the Query Service is read-only: only SELECT queries are accepted, not {_kind(statement)}",
                         field="sql")


def _kind(statement: exp.Expr) -> str:
    if isinstance(statement, exp.Command):
        return str(statement.this).upper()
    return _FORBIDDEN.get(type(statement), statement.key.upper())


def _check_node(node: exp.Expr, tables: set[str]) -> None:
    """One node of the query's tree: no forbidden statement or function, and tables of this sandbox only."""
    what = _FORBIDDEN.get(type(node))
    if what is None and isinstance(node, exp.Command):
        what = _kind(node)
    if what is not None:
        raise BadRequest(f"{what} is not available: the Query Service is read-only, SELECT queries over this "
                         "sandbox's datasets", field="sql")
    if isinstance(node, exp.Func):
        name = _function_name(node)
        if name in _FORBIDDEN_FUNCTIONS or name.startswith(_FORBIDDEN_PREFIXES):
            raise BadRequest(f"the function {name}() is not available in the Query Service: it reads only this "
                             "sandbox's datasets, not files, settings or the catalog", field="sql")
    if isinstance(node, exp.Table):
        _check_table(node, tables)


def _function_name(node: exp.Func) -> str:
    return (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()


def _check_table(table: exp.Table, tables: set[str]) -> None:
    if isinstance(table.this, exp.Func):
        raise BadRequest(f"table functions are not available in the Query Service: {_function_name(table.this)}() "
                         "(it reads only this sandbox's datasets)", field="sql")
    if not table.name:
        raise BadRequest("table functions are not available in the Query Service", field="sql")
    name = table.name
    if any(c in name for c in "/\\."):  # a table name never holds these; a path or file name does
        raise BadRequest(f"'{name}' is a file path, not a table: the Query Service reads only this sandbox's "
                         "datasets", field="sql")
    if table.args.get("db") or table.args.get("catalog"):
        raise BadRequest(f"'{table.sql('duckdb')}' is a qualified table name; name a table of this sandbox "
                         f"alone: {', '.join(sorted(tables)) or '(none)'}", field="sql")
    if name.lower() not in tables and name.lower() not in _visible_ctes(table):
        raise BadRequest(f"unknown table '{name}'; tables: {', '.join(sorted(tables)) or '(none)'}", field="sql")


def _visible_ctes(table: exp.Table) -> set[str]:
    """The CTE names in scope where ``table`` is read: a CTE is visible in its query's body and in the CTEs
    after it (and in itself when RECURSIVE), not elsewhere; a same-named CTE in another subquery does not
    make a catalog table (``duckdb_views``, which names the server's paths) readable."""
    visible: set[str] = set()
    node: exp.Expr = table
    while node.parent is not None:
        parent = node.parent
        if isinstance(parent, exp.With) and isinstance(node, exp.CTE):
            ctes = list(parent.expressions)
            upto = ctes.index(node) + (1 if parent.args.get("recursive") else 0)
            visible.update(cte.alias_or_name.lower() for cte in ctes[:upto])
            owner = parent.parent  # the query this WITH belongs to: its other CTEs are not visible here
            if owner is None:
                break
            node = owner
            continue
        with_ = parent.args.get("with_")
        if isinstance(with_, exp.With) and with_ is not node:
            visible.update(cte.alias_or_name.lower() for cte in with_.expressions)
        node = parent
    return visible


def run_query(sql: str, tables: dict[str, list[str]], allowed_dir: str | Path, *, max_rows: int = MAX_ROWS,
              timeout: float = TIMEOUT_SECONDS, memory_limit: str = MEMORY_LIMIT, threads: int = THREADS) -> QueryResult:
    """Run a checked query; ``tables`` maps table names to their Parquet files.

    The query is bounded: ``timeout`` seconds (then interrupted), ``memory_limit`` of memory and ``threads``
    threads (a recursive CTE that never ends meets one of the two first), at most ``max_rows`` rows kept.
    """
    started = time.perf_counter()
    con = duckdb.connect(config=connection_config(memory_limit=memory_limit, threads=threads))
    try:
        con.execute("SET TimeZone = 'UTC'")
        for filesystem in lake_files.duckdb_filesystems():  # an object store lake's s3:// files
            con.register_filesystem(filesystem)
        for name, files in tables.items():
            if files:
                con.read_parquet(files, union_by_name=True).create_view(name)
            else:
                con.sql(f"CREATE VIEW {exp.to_identifier(name, quoted=True).sql('duckdb')} AS SELECT 1 AS _ WHERE false")
        con.execute("SET allowed_directories = $dirs", {"dirs": [str(allowed_dir).rstrip("/") + "/"]})
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        timer = threading.Timer(timeout, con.interrupt)
        timer.start()
        try:
            reader = con.sql(sql).to_arrow_reader(batch_size=10_000)
            batches, rows = [], 0
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                if rows > max_rows:
                    break
        except duckdb.InterruptException as exc:
            raise QueryLimitExceeded(
                f"the query ran longer than its time limit ({timeout:g} s, OPENSEG_QUERY_TIMEOUT) and was stopped") from exc
        except duckdb.OutOfMemoryException as exc:
            raise QueryLimitExceeded(
                f"the query needed more memory than its limit ({memory_limit}, OPENSEG_QUERY_MEMORY_LIMIT) and was "
                "stopped") from exc
        finally:
            timer.cancel()
        table = pa.Table.from_batches(batches, schema=reader.schema)
        truncated = table.num_rows > max_rows
        return QueryResult(table.slice(0, max_rows), truncated, time.perf_counter() - started)
    finally:
        con.close()
