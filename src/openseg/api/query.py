"""Query Service: ``/data/foundation/query/queries`` and openseg's ``/results``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError, PydanticUseDefault

from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, services, tenant, typed_body
from openseg.api.models._base import plain
from openseg.api.models.queries import QueryChange, QueryRequest
from openseg.api.paging import MAX_QUERY_TEXT, AsciiInteger, Start
from openseg.catalog import query_jobs
from openseg.container import Services

router = APIRouter(prefix="/data/foundation/query", tags=["query service"])


def _true_or_false(value: Any) -> Any:
    """Query Service's booleans are ``true`` or ``false`` (any case); empty is the default."""
    if isinstance(value, str):
        if value == "":
            raise PydanticUseDefault()
        if value.lower() not in ("true", "false"):
            raise PydanticCustomError("flag", "must be true or false, not '{value}'", {"value": value[:40]})
        return value.lower() == "true"
    return value


@router.get("/queries")
def list_queries(who: Tenant = Depends(tenant), svc: Services = Depends(services),
                 orderby: Annotated[str | None, Query(max_length=MAX_QUERY_TEXT,
                                                      description="created or updated, - first for descending")] = None,
                 limit: Annotated[int, Query(ge=1, le=1000, description="queries per page"), AsciiInteger] = 50,
                 start: Annotated[str | None, Query(max_length=MAX_QUERY_TEXT,
                                                    description="the cursor (the next page's 'start')")] = None,
                 filters: Annotated[str | None, Query(alias="property", max_length=MAX_QUERY_TEXT,
                                                      description="filters, such as state==SUCCESS")] = None,
                 exclude_soft_deleted: Annotated[bool, Query(alias="excludeSoftDeleted", description="true or false"),
                                                 BeforeValidator(_true_or_false)] = True) -> dict[str, Any]:
    page = query_jobs.QueryPage(orderby=orderby or "-created", limit=limit, start=start or None,
                                property=filters or None, exclude_soft_deleted=exclude_soft_deleted)
    with svc.db.session() as session:
        return query_jobs.list_queries(session, scope_of(who), page)


@router.post("/queries")
def submit(who: Tenant = Depends(tenant), svc: Services = Depends(services),
           body: QueryRequest = typed_body(QueryRequest)) -> JSONResponse:
    with svc.db.session() as session:
        query = query_jobs.submit_query(session, scope_of(who), plain(body), user_id=who.credential_id)
        return JSONResponse(query_jobs.query_json(query), status_code=202)


@router.get("/queries/{query_id}")
def get(query_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    with svc.db.session() as session:
        return query_jobs.query_json(query_jobs.get_query(session, scope_of(who), query_id))


@router.patch("/queries/{query_id}")
def change(query_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
           body: QueryChange = typed_body(QueryChange)) -> JSONResponse:
    with svc.db.session() as session:
        return JSONResponse(query_jobs.change_query(session, scope_of(who), query_id, plain(body)), status_code=202)


@router.get("/queries/{query_id}/results")
def results(query_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
            limit: Annotated[int, Query(ge=1, le=100_000, description="rows per page"), AsciiInteger] = 1000,
            start: Start = 0) -> dict[str, Any]:
    with svc.db.session() as session:
        query = query_jobs.get_query(session, scope_of(who), query_id)
        return query_jobs.query_results(query, start=start, limit=limit)
