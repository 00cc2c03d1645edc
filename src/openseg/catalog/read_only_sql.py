"""Query Service: read-only SQL over a sandbox's datasets (each a table named after the dataset).

Two walls keep a query read-only and inside its sandbox: sqlglot accepts one query statement that
reads only known tables, and DuckDB runs it with external access off except for the sandbox's lake
directory, with the configuration locked.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from openseg.errors import BadRequest

#: Rows a query may return (the rest is cut, and the result says so).
MAX_ROWS = 100_000
#: Seconds a query may run before it is interrupted.
TIMEOUT_SECONDS = 120.0

_FORBIDDEN = (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Alter, exp.Command, exp.Copy,
              exp.Merge, exp.TruncateTable, exp.Set, exp.Pragma, exp.Use, exp.Attach, exp.Detach, exp.Install,
              exp.LoadData, exp.Transaction, exp.Commit, exp.Rollback)


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
    if not isinstance(statement, exp.Query) or any(isinstance(n, _FORBIDDEN) for n in statement.walk()):
        raise BadRequest("the Query Service is read-only: only SELECT queries are accepted (no DDL or DML)",
                         field="sql")
    ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
    for table in statement.find_all(exp.Table):
        if isinstance(table.this, exp.Func) or not table.name:
            raise BadRequest("table functions are not available in the Query Service", field="sql")
        name = table.name.lower()
        if name not in tables and name not in ctes:
            raise BadRequest(f"unknown table '{table.name}'; tables: {', '.join(sorted(tables)) or '(none)'}",
                             field="sql")


def run_query(sql: str, tables: dict[str, list[str]], allowed_dir: Path, *, max_rows: int = MAX_ROWS,
              timeout: float = TIMEOUT_SECONDS) -> QueryResult:
    """Run a checked query; ``tables`` maps table names to their Parquet files."""
    started = time.perf_counter()
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, files in tables.items():
            if files:
                con.read_parquet(files, union_by_name=True).create_view(name)
            else:
                con.sql(f"CREATE VIEW {exp.to_identifier(name, quoted=True).sql('duckdb')} AS SELECT 1 AS _ WHERE false")
        con.execute("SET allowed_directories = $dirs", {"dirs": [str(allowed_dir) + "/"]})
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
            raise TimeoutError(f"the query ran longer than {timeout:.0f} s and was stopped") from exc
        finally:
            timer.cancel()
        table = pa.Table.from_batches(batches, schema=reader.schema)
        truncated = table.num_rows > max_rows
        return QueryResult(table.slice(0, max_rows), truncated, time.perf_counter() - started)
    finally:
        con.close()


def json_value(value: Any) -> Any:
    """A result cell as JSON: dates and times as RFC 3339 text, decimals as numbers."""
    import datetime as dt
    import decimal

    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and isinstance(value[0], tuple) and len(value[0]) == 2:  # a map
            return {str(k): json_value(v) for k, v in value}
        return [json_value(v) for v in value]
    return value
