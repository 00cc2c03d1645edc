"""Segmentation bodies: definitions (create, patch, conversion, dry run), jobs, preview, bulk gets.

After AEP's ``segmentation.yaml`` (``SegmentDefinition``, ``SegmentJob`` request, ``Preview`` request).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from openseg.api.models._base import MAX_ITEMS, MAX_PQL, Id, Name, RequestModel, RootModel, Text, WholeNumber, said_as
from openseg.segmentation.definitions import MAX_LIFECYCLE_STATE, MAX_TTL_DAYS

Pql = Annotated[str, StringConstraints(max_length=MAX_PQL)]


class Expression(RequestModel):
    """``{type: PQL, format: pql/text | pql/json, value}``: the value is PQL text or a pql/json tree in a string."""

    type: Id | None = Field(None, description="PQL")
    format: Literal["pql/text", "pql/json"] | None = None
    value: Pql


class SchemaName(RequestModel):
    name: Id | None = Field(None, description="_xdm.context.profile")


class Enabled(RequestModel):
    enabled: bool | None = None


class EvaluationInfo(RequestModel):
    batch: Enabled | None = None
    continuous: Enabled | None = None
    synchronous: Enabled | None = None


class DefinitionChanges(RequestModel):
    """The fields of a segment definition a PATCH changes (any of them); AEP's read-only fields may be sent back."""

    name: Name | None = None
    description: Text | None = None
    expression: Expression | None = None
    schema_: SchemaName | None = Field(None, alias="schema")
    mergePolicyId: Id | None = None
    profileInstanceId: Id | None = None
    evaluationInfo: EvaluationInfo | None = None
    ttlInDays: Annotated[int, Field(ge=1, le=MAX_TTL_DAYS), WholeNumber] | None = None
    labels: Annotated[list[Id], Field(max_length=MAX_ITEMS)] | None = None
    lifecycleState: Annotated[str, StringConstraints(max_length=MAX_LIFECYCLE_STATE)] | None = None
    payloadSchema: Id | None = None
    streamingOptIn: Annotated[bool, said_as("must be true or false")] | None = Field(
        None, alias="openseg:streamingOptIn",
        description="openseg: stream this definition whatever its shape (evaluationInfo stays AEP's answer)")


class DefinitionCreate(DefinitionChanges):
    """``POST /segment/definitions``: ``schema`` defaults to ``_xdm.context.profile``."""

    name: Name
    expression: Expression


class ConversionRequest(DefinitionChanges):
    """``POST /segment/conversion``: a definition whose expression is converted to the other format."""

    expression: Expression


class DryRunRequest(RequestModel):
    """openseg's ``dryRun``: the expression to try (the definition's own when absent)."""

    expression: Expression | None = None


class SegmentRef(RequestModel):
    segmentId: Id = Field(description='a segment definition id, or "*" for every one')


class SegmentJobRequest(RootModel[Annotated[list[SegmentRef], Field(min_length=1, max_length=MAX_ITEMS),
                                            said_as('must be a non-empty array of {"segmentId": ...}')]]):
    """``POST /segment/jobs``: the definitions to evaluate."""


class PreviewRequest(RequestModel):
    """``POST /preview``: a PQL expression to count and sample."""

    predicateExpression: Pql
    predicateType: Literal["pql/text", "pql/json"] | None = None
    predicateModel: Id | None = Field(None, description="_xdm.context.profile")
    graphType: Id | None = None
    mergePolicyId: Id | None = None


class IdRef(RequestModel):
    id: Id


class BulkGetRequest(RequestModel):
    """``POST .../bulk-get`` (definitions, jobs, merge policies): ``{"ids": [{"id": ...}, ...]}``."""

    ids: Annotated[list[IdRef], Field(max_length=MAX_ITEMS), said_as('must be a list of {"id": ...}', items_too=True)]
