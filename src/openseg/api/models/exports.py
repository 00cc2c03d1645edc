"""Export job bodies, after AEP's ``segmentation.yaml`` (``POST /export/jobs``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from openseg.api.models._base import MAX_ITEMS, MAX_TEXT, Id, RequestModel
from openseg.api.models.segments import SchemaName

Fields = Annotated[str, Field(max_length=MAX_TEXT, description="comma-separated field paths")]


class MergePolicyRef(RequestModel):
    id: Id | None = None
    version: Any = None


class SegmentFilter(RequestModel):
    segmentId: Id
    segmentNs: Id | None = None
    status: Annotated[list[Id], Field(max_length=10)] | None = None


class QualificationTime(RequestModel):
    startTime: Id | None = None
    endTime: Id | None = None


class ExportFilter(RequestModel):
    segments: Annotated[list[SegmentFilter], Field(max_length=MAX_ITEMS)] | None = None
    segmentQualificationTime: QualificationTime | None = None
    fromIngestTimestamp: Id | None = None
    emptyProfiles: bool | None = None


class EventFilter(RequestModel):
    fromIngestTimestamp: Id | None = None


class EventList(RequestModel):
    fields: Fields | None = None
    filter: EventFilter | None = None


class AdditionalFields(RequestModel):
    eventList: EventList | None = None


class Destination(RequestModel):
    datasetId: Id | None = None
    segmentPerBatch: bool | None = None


class ExportJobRequest(RequestModel):
    """An export of merged profiles (those in ``filter.segments`` when given) to a profile-union dataset."""

    schema_: SchemaName | None = Field(None, alias="schema", description='required: {"name": "_xdm.context.profile"}')
    destination: Destination | None = Field(None, description="required: the profile-union dataset to write")
    fields: Fields | None = None
    mergePolicy: MergePolicyRef | None = None
    filter: ExportFilter | None = None
    additionalFields: AdditionalFields | None = None
