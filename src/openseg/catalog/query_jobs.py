"""Query Service resources: submitted queries run on the worker; results kept as Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from openseg import failures
from openseg.catalog.read_only_sql import check_read_only, json_value, run_query, table_name
from openseg.catalog.service import successful_files
from openseg.clock import new_uuid, now_ms
from openseg.errors import BadRequest
from openseg.request_fields import optional_string
from openseg.scope import Scope
from openseg.store.models import Dataset, Query, WorkItem
from openseg.worker.queue import enqueue

if TYPE_CHECKING:
    from openseg.services import Services

RUN_QUERY = "query"


def sandbox_tables(session: Session, sandbox_id: str) -> dict[str, list[str]]:
    """Every dataset of the sandbox as a table: its name (see ``table_name``), files of successful batches."""
    tables: dict[str, list[str]] = {}
    for dataset in session.scalars(select(Dataset).where(Dataset.sandbox_id == sandbox_id).order_by(Dataset.created)):
        files = [f.path for f in successful_files(session, sandbox_id, dataset.id)]
        tables.setdefault(table_name(dataset.name), files)
    return tables


def submit_query(session: Session, scope: Scope, body: object) -> Query:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", field="body")
    sql = body.get("sql")
    check_read_only(sql, set(sandbox_tables(session, scope.sandbox_id)))  # type: ignore[arg-type]
    now = now_ms()
    query = Query(id=new_uuid(), org_id=scope.org_id, sandbox_id=scope.sandbox_id, name=optional_string(body, "name"),
                  description=optional_string(body, "description"), sql=sql, state="SUBMITTED", errors=[], created=now,
                  updated=now)
    session.add(query)
    session.flush()
    enqueue(session, RUN_QUERY, query.id)
    return query


def get_query(session: Session, scope: Scope, query_id: str) -> Query:
    return scope.get(session, Query, query_id, "query")


def execute(services: Services, query_id: str) -> None:
    """Run a submitted query now (the worker handler and ``openseg query`` both come here)."""
    with services.db.session() as session:
        query = session.get(Query, query_id)
        if query is None or query.state != "SUBMITTED":
            return
        query.state, query.updated = "IN_PROGRESS", now_ms()
        tables = sandbox_tables(session, query.sandbox_id)
        sql, sandbox_id = query.sql, query.sandbox_id
    allowed = services.settings.lake / sandbox_id
    allowed.mkdir(parents=True, exist_ok=True)
    target = services.settings.home / "queries" / f"{query_id}.parquet"
    try:
        check_read_only(sql, set(tables))
        result = run_query(sql, tables, allowed)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(result.table, target)
    except Exception as exc:  # noqa: BLE001 - a failing query is the user's answer, not a worker crash
        message = exc.detail if isinstance(exc, BadRequest) else failures.describe(exc, services.settings.lake)
        with services.db.session() as session:
            query = session.get(Query, query_id)
            assert query is not None
            query.state, query.errors, query.updated = "FAILED", [{"code": "QS-1001", "message": message}], now_ms()
        return
    with services.db.session() as session:
        query = session.get(Query, query_id)
        assert query is not None
        query.state, query.row_count, query.result_path = "SUCCESS", result.table.num_rows, str(target)
        query.elapsed_ms, query.updated = int(result.seconds * 1000), now_ms()
        if result.truncated:
            query.errors = [{"code": "QS-2001", "message": "the result was cut at the row limit"}]


def run_query_item(services: Services, item: WorkItem) -> None:
    execute(services, item.ref_id)


def query_json(query: Query) -> dict[str, Any]:
    href = f"/data/foundation/query/queries/{query.id}"
    return {
        "id": query.id,
        "name": query.name,
        "description": query.description,
        "sql": query.sql,
        "state": query.state,
        "rowCount": query.row_count,
        "errors": query.errors or [],
        "elapsedTime": query.elapsed_ms,
        "created": query.created,
        "updated": query.updated,
        "_links": {"self": {"href": href}, "results": {"href": f"{href}/results"}},
    }


def query_results(query: Query, *, start: int, limit: int) -> dict[str, Any]:
    if query.state != "SUCCESS" or not query.result_path or not Path(query.result_path).is_file():
        raise BadRequest(f"query '{query.id}' is {query.state}; results exist once it is SUCCESS", field="id")
    table = pq.read_table(query.result_path)
    page = table.slice(start, limit)
    return {
        "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
        "rows": [[json_value(v) for v in row.values()] for row in page.to_pylist()],
        "rowCount": table.num_rows,
    }

