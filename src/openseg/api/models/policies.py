"""Merge policy bodies, after AEP's ``profile.yaml`` (``MergePolicy``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from openseg.api.models._base import MAX_ITEMS, Count, Id, Name, RequestModel
from openseg.api.models.segments import SchemaName

DatasetIds = Annotated[list[Id], Field(max_length=MAX_ITEMS)]


class DatasetOrder(RequestModel):
    order: DatasetIds | None = None


class AttributeMerge(RequestModel):
    """``timestampOrdered``, or ``dataSetPrecedence`` with the dataset ids first to last (``order``, or
    openseg's ``data.order``)."""

    type: Literal["timestampOrdered", "dataSetPrecedence"]
    order: DatasetIds | None = None
    data: DatasetOrder | None = None


class IdentityGraph(RequestModel):
    type: Literal["none", "pdg"]


class MergePolicyRequest(RequestModel):
    """``POST /config/mergePolicies`` and ``PUT /config/mergePolicies/{id}``."""

    name: Name
    identityGraph: IdentityGraph
    attributeMerge: AttributeMerge
    schema_: SchemaName | None = Field(None, alias="schema")
    default: bool | None = None
    isActiveOnEdge: bool | None = None
    id: Id | None = None
    version: Count | None = None
