"""Query Service resources: submitted queries run on the worker; results kept as Parquet; listed, cancelled
and soft-deleted as AEP's ``/data/foundation/query/queries`` does."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pyarrow.parquet as pq
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from openseg import failures
from openseg.catalog.read_only_sql import QueryLimitExceeded, check_read_only, json_value, run_query, table_name
from openseg.catalog.service import successful_files
from openseg.clock import ms_to_datetime, new_uuid, now_ms, rfc3339
from openseg.errors import BadRequest, Conflict
from openseg.request_fields import optional_string
from openseg.scope import Scope
from openseg.store.models import Dataset, Query, WorkItem
from openseg.worker.queue import enqueue

if TYPE_CHECKING:
    from openseg.container import Services

RUN_QUERY = "query"
#: States after which a query no longer changes (a cancel is refused with 409, as AEP answers).
FINISHED = frozenset({"SUCCESS", "FAILED", "KILLED", "TIMEOUT"})
#: AEP's query definition fields openseg does not run: templates, CTAS, INSERT INTO and parameter replacement.
UNSUPPORTED = {
    "templateId": "query templates are not available in openseg",
    "ctasParameters": "CREATE TABLE AS SELECT is not available: openseg runs read-only SELECTs",
    "insertIntoParameters": "INSERT INTO is not available: openseg runs read-only SELECTs",
    "queryParameters": "parameter replacement ($key) is not available: write the values in the SQL",
}


def sandbox_tables(session: Session, sandbox_id: str) -> dict[str, list[str]]:
    """Every dataset of the sandbox as a table: its name (see ``table_name``), files of successful batches."""
    tables: dict[str, list[str]] = {}
    for dataset in session.scalars(select(Dataset).where(Dataset.sandbox_id == sandbox_id).order_by(Dataset.created)):
        files = [f.path for f in successful_files(session, sandbox_id, dataset.id)]
        tables.setdefault(table_name(dataset.name), files)
    return tables


def submit_query(session: Session, scope: Scope, body: object, *, client: str = "API",
                 user_id: str | None = None) -> Query:
    """Accept a query (AEP's ``query_def``) for the worker.

    Args:
        client: who sent it (AEP's ``client``): ``API`` for the HTTP API, ``openseg CLI`` for the command.
        user_id: the credentials that sent it (AEP's ``userId``).

    Raises:
        BadRequest: not a read-only SELECT over the sandbox's datasets, or a feature openseg lacks.
    """
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", field="body")
    for field, reason in UNSUPPORTED.items():
        if body.get(field) not in (None, {}, ""):
            raise BadRequest(f"'{field}': {reason}", field=field)
    sql = body.get("sql")
    check_read_only(sql, set(sandbox_tables(session, scope.sandbox_id)))  # type: ignore[arg-type]
    request = {"dbName": optional_string(body, "dbName"), "sql": sql, "name": optional_string(body, "name"),
               "description": optional_string(body, "description")}
    now = now_ms()
    query = Query(id=new_uuid(), org_id=scope.org_id, sandbox_id=scope.sandbox_id, name=request["name"],
                  description=request["description"], sql=sql, state="SUBMITTED", errors=[], created=now,
                  updated=now, request={k: v for k, v in request.items() if v is not None}, client=client,
                  user_id=user_id, deleted=False)
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
    allowed = services.settings.data_lake.location(sandbox_id)
    if not services.settings.data_lake.remote:
        Path(allowed).mkdir(parents=True, exist_ok=True)
    target = services.settings.home / "queries" / f"{query_id}.parquet"
    try:
        check_read_only(sql, set(tables))
        settings = services.settings
        result = run_query(sql, tables, allowed, timeout=settings.query_timeout,
                           memory_limit=settings.query_memory_limit, threads=settings.query_threads)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(result.table, target)
    except Exception as exc:  # noqa: BLE001 - a failing query is the user's answer, not a worker crash
        message = (exc.detail if isinstance(exc, BadRequest) else str(exc) if isinstance(exc, QueryLimitExceeded)
                   else failures.describe(exc, services.settings.data_lake.root))
        with services.db.session() as session:
            query = session.get(Query, query_id)
            assert query is not None
            if query.state == "IN_PROGRESS":  # not when cancelled meanwhile: KILLED stays
                query.state, query.errors, query.updated = "FAILED", [{"code": "QS-1001", "message": message}], now_ms()
        return
    with services.db.session() as session:
        query = session.get(Query, query_id)
        assert query is not None
        if query.state != "IN_PROGRESS":
            return
        query.state, query.row_count, query.result_path = "SUCCESS", result.table.num_rows, str(target)
        query.elapsed_ms, query.updated = int(result.seconds * 1000), now_ms()
        if result.truncated:
            query.errors = [{"code": "QS-2001", "message": "the result was cut at the row limit"}]


def run_query_item(services: Services, item: WorkItem) -> None:
    execute(services, item.ref_id)


def query_json(query: Query) -> dict[str, Any]:
    """The query as AEP shows it (``components/schemas/query`` of the Query Service spec); ``name``,
    ``description``, ``sql`` and the ``results`` link are openseg's additions."""
    href = f"/data/foundation/query/queries/{query.id}"
    patch = {"href": href, "method": "PATCH"}
    return {
        "id": query.id,
        "request": query.request or {"sql": query.sql, "name": query.name, "description": query.description},
        "effectiveSQL": query.sql,
        "isCTAS": False,
        "isInsertInto": False,
        "state": query.state,
        "created": rfc3339(ms_to_datetime(query.created)),
        "updated": rfc3339(ms_to_datetime(query.updated)),
        "elapsedTime": query.elapsed_ms or 0,
        "rowCount": query.row_count or 0,
        "userId": query.user_id or "",
        "client": query.client or "API",
        "errors": [{"errorType": "USER_ERROR", **e} for e in query.errors or []],
        "version": 1,
        "name": query.name,
        "description": query.description,
        "sql": query.sql,
        "_links": {"self": {"href": href}, "results": {"href": f"{href}/results"},
                   "cancel": {**patch, "body": '{"op": "cancel"}'},
                   "soft_delete": {**patch, "body": '{"op": "soft_delete"}'}},
    }


def change_query(session: Session, scope: Scope, query_id: str, body: object) -> dict[str, Any]:
    """``PATCH /queries/{id}``: ``{"op": "cancel"}`` kills a query not finished yet (409 once it is);
    ``{"op": "soft_delete"}`` hides it from the list (it stays readable by id).

    Returns:
        AEP's acknowledgement, ``{"message", "statusCode": 202}``.
    """
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", field="body")
    op = body.get("op")
    if op not in ("cancel", "soft_delete"):
        raise BadRequest(f"'op' must be 'cancel' or 'soft_delete', not {op!r}", field="op")
    query = get_query(session, scope, query_id)
    if op == "cancel":
        if query.state in FINISHED:
            raise Conflict(f"query '{query.id}' is {query.state}: only a query not finished yet can be cancelled",
                           field="op")
        query.state, query.updated = "KILLED", now_ms()
        return {"message": "Query cancel request received", "statusCode": 202}
    query.deleted, query.updated = True, now_ms()
    return {"message": "Query soft delete request received", "statusCode": 202}


# --- the list: GET /queries?orderby=&limit=&start=&property= ------------------------------------------------

#: The list's ``orderby`` fields (AEP: ``created`` and ``updated``, ``+`` ascending, ``-`` descending).
ORDER_FIELDS = {"created": Query.created, "updated": Query.updated}
_FILTER = re.compile(r"^(?P<name>[A-Za-z_]+)(?P<op>==|!=|>=|<=|>|<|~)(?P<value>.*)$")
#: Filterable properties and the operators AEP allows on each.
_ALL_OPERATORS = frozenset({"==", "!=", ">=", "<=", ">", "<", "~"})
FILTER_OPERATORS: dict[str, frozenset[str]] = {
    "created": _ALL_OPERATORS, "updated": _ALL_OPERATORS, "state": _ALL_OPERATORS, "id": _ALL_OPERATORS,
    "userId": frozenset({"=="}), "client": frozenset({"=="}), "sql": frozenset({"~"}),
}
_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "created": Query.created, "updated": Query.updated, "state": Query.state, "id": Query.id,
    "userId": Query.user_id, "client": Query.client, "sql": Query.sql,
}
_COMPARE: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "==": lambda c, v: c == v, "!=": lambda c, v: c != v, ">=": lambda c, v: c >= v, "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v, "<": lambda c, v: c < v,
}


@dataclass(frozen=True)
class QueryPage:
    """What ``GET /queries`` asked for, parsed and checked."""

    orderby: str = "-created"
    limit: int = 50
    start: str | None = None
    property: str | None = None
    exclude_soft_deleted: bool = True


def _timestamp_ms(value: str, field: str) -> int:
    """An ISO 8601 timestamp (``2017-04-05T13:30:00Z``) or epoch milliseconds, as epoch milliseconds."""
    if re.fullmatch(r"[0-9]{1,15}", value):  # ASCII digits only ('²'.isdigit() is true), within BIGINT
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"'{field}': {value!r} is not an ISO 8601 timestamp such as 2017-04-05T13:30:00Z",
                         field=field) from None
    if parsed.tzinfo is None:
        raise BadRequest(f"'{field}': {value!r} has no time zone; end it with Z for UTC", field=field)
    return int(parsed.timestamp() * 1000)


def _filters(prop: str) -> list[ColumnElement[bool]]:
    """AEP's comma-separated ``property`` filters as conditions (values are bound parameters)."""
    conditions: list[ColumnElement[bool]] = []
    for part in (p.strip() for p in prop.split(",")):
        match = _FILTER.match(part)
        if not part or match is None:
            raise BadRequest(f"'property': {part!r} is not a filter such as state==SUCCESS", field="property")
        name, op, value = match["name"], match["op"], match["value"]
        if name not in FILTER_OPERATORS:
            raise BadRequest(f"'property': cannot filter on {name!r}; filter on {', '.join(FILTER_OPERATORS)}",
                             field="property")
        if op not in FILTER_OPERATORS[name]:
            allowed = " ".join(sorted(FILTER_OPERATORS[name]))
            raise BadRequest(f"'property': {name} allows the operators {allowed}, not {op}", field="property")
        column = _COLUMNS[name]
        if name == "userId":  # AEP: up to 10 users joined by ||
            users = value.split("||")
            if len(users) > 10:
                raise BadRequest("'property': userId takes at most 10 values joined by ||", field="property")
            conditions.append(column.in_(users))
            continue
        bound: Any = _timestamp_ms(value, "property") if name in ORDER_FIELDS else value
        conditions.append(column.contains(value, autoescape=True) if op == "~" else _COMPARE[op](column, bound))
    return conditions


def list_queries(session: Session, scope: Scope, page: QueryPage) -> dict[str, Any]:
    """One page of the sandbox's queries (AEP's ``query_list``): ``start`` is the ``orderby`` value the page
    begins at, and ``_page.next`` the one the next page begins at."""
    field, descending = page.orderby.lstrip("+-"), page.orderby.startswith("-")
    if field not in ORDER_FIELDS:
        raise BadRequest(f"'orderby': {page.orderby!r} orders by none of created, updated (prefix + or -)",
                         field="orderby")
    column = ORDER_FIELDS[field]
    statement = select(Query).where(Query.org_id == scope.org_id, Query.sandbox_id == scope.sandbox_id)
    if page.exclude_soft_deleted:
        statement = statement.where(Query.deleted.is_(False))
    if page.property:
        statement = statement.where(*_filters(page.property))
    if page.start is not None:
        begin = _timestamp_ms(page.start, "start")
        statement = statement.where(column <= begin if descending else column >= begin)
    order = (column.desc(), Query.id.desc()) if descending else (column.asc(), Query.id.asc())
    found = list(session.scalars(statement.order_by(*order).limit(page.limit + 1)))
    shown, rest = found[:page.limit], found[page.limit:]
    page_json: dict[str, Any] = {"orderby": page.orderby, "count": len(shown)}
    if shown:
        page_json["start"] = rfc3339(ms_to_datetime(getattr(shown[0], field)))
    if page.property:
        page_json["property"] = page.property
    links: dict[str, Any] = {}
    if rest:
        page_json["next"] = rfc3339(ms_to_datetime(getattr(rest[0], field)))
        links["next"] = {"href": _list_href(page, page_json["next"])}
    return {"queries": [query_json(q) for q in shown], "_page": page_json, "_links": links, "version": 1}


def _list_href(page: QueryPage, start: str) -> str:
    params: dict[str, Any] = {"orderby": page.orderby, "limit": page.limit, "start": start}
    if page.property:
        params["property"] = page.property
    if not page.exclude_soft_deleted:
        params["excludeSoftDeleted"] = "false"
    return "/data/foundation/query/queries?" + urlencode(params)


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

