"""Query Service bodies, after AEP's ``query-service.yaml`` (``POST /queries``, ``PATCH /queries/{id}``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from openseg.api.models._base import MAX_SQL, Id, Name, RequestModel, Text


class QueryRequest(RequestModel):
    """A read-only SELECT over the sandbox's datasets. ``templateId``, ``queryParameters``,
    ``insertIntoParameters`` and ``ctasParameters`` are AEP's, refused by name: openseg does not run them."""

    sql: Annotated[str, Field(max_length=MAX_SQL)]
    dbName: Id | None = None
    name: Name | None = None
    description: Text | None = None
    templateId: Any = None
    queryParameters: Any = None
    insertIntoParameters: Any = None
    ctasParameters: Any = None


class QueryChange(RequestModel):
    op: Literal["cancel", "soft_delete"]
