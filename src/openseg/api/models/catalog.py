"""Catalog and batch ingestion bodies, after AEP's ``catalog.yaml`` and ``batch-ingestion.yaml``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag

from openseg.api.models._base import MAX_ITEMS, AnyObject, Count, Id, Name, RequestModel, RootModel, Text
from openseg.api.models.patch import Operations

#: AEP's tags: a name -> a list of values (``{"unifiedProfile": ["enabled:true"]}``).
Tags = dict[Id, Annotated[list[Any], Field(max_length=MAX_ITEMS)]]


class SchemaRef(RequestModel):
    id: Text | None = Field(None, description="an XDM schema id, such as https://ns.adobe.com/xdm/context/profile")
    contentType: Id | None = None


class DatasetFields(RequestModel):
    """The fields of a dataset a PATCH changes (any of them)."""

    name: Name | None = None
    description: Text | None = None
    tags: Tags | None = None
    fileDescription: AnyObject | None = None
    schemaRef: SchemaRef | None = None
    aspect: Id | None = None


class DatasetRequest(DatasetFields):
    """``POST /dataSets`` and ``PUT /dataSets/{id}``: a dataset of an XDM schema (``schemaRef.id`` is required,
    and checked by the service, which names the schemas it knows)."""

    name: Name


def _shape(value: Any) -> str | None:
    """Which of the two a body is (the fields as sent, or as validated when the body is dumped)."""
    return "~patch" if isinstance(value, list) else "~fields" if isinstance(value, dict | DatasetFields) else None


class DatasetChange(RootModel[Annotated[Annotated[DatasetFields, Tag("~fields")] | Annotated[Operations, Tag("~patch")],
                                        Discriminator(_shape, custom_error_type="dataset_change",
                                                      custom_error_message="must be a JSON object of fields, or a JSON "
                                                                           "Patch array")]]):
    """``PATCH /dataSets/{id}``: the fields to change, or a JSON Patch of them (AEP's
    ``application/json-patch+json`` example adds ``/tags/unifiedProfile``)."""


class Classification(RequestModel):
    dataBehavior: Id | None = None
    managedBy: Id | None = None


class DatasetMerge(RequestModel):
    """``PATCH /v2/dataSets/{id}``: merged in depth into the dataset (a null removes a member)."""

    description: Text | None = None
    tags: dict[Id, Any] | None = None
    extensions: AnyObject | None = None
    classification: Classification | None = None


class RelatedObject(RequestModel):
    type: Id
    id: Id


class BatchRecord(RequestModel):
    """A Catalog batch record (``POST``/``PUT``/``PATCH /catalog/batches``); ``status`` is required but for PATCH,
    which the service checks."""

    status: Id | None = None
    relatedObjects: Annotated[list[RelatedObject], Field(max_length=MAX_ITEMS)] | None = None
    externalId: Id | None = None
    recordCount: Count | None = None
    failedRecordCount: Count | None = None
    size: Count | None = None
    started: Count | None = None
    completed: Count | None = None
    tags: Tags | None = None
    metrics: AnyObject | None = None
    errors: Annotated[list[Any], Field(max_length=MAX_ITEMS)] | None = None
    inputFormat: AnyObject | None = None
    replay: AnyObject | None = None


class InputFormat(RequestModel):
    format: Id | None = Field(None, description="json, parquet or csv")


class IngestBatchRequest(RequestModel):
    """``POST /import/batches``: a batch of files to upload into one dataset."""

    datasetId: Id
    inputFormat: InputFormat | None = None
    externalId: Id | None = None
    replay: AnyObject | None = None
    tags: Tags | None = None
