"""Profile access bodies, after AEP's ``profile.yaml`` (``POST /access/entities``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from openseg.api.models._base import MAX_ITEMS, Id, RequestModel, Text
from openseg.api.models.segments import SchemaName


class Namespace(RequestModel):
    code: Id


def _code_alone(value: Any) -> Any:
    """A namespace sent as its code alone (``"email"``) is taken as ``{"code": "email"}``."""
    return {"code": value} if isinstance(value, str) else value


class Identity(RequestModel):
    entityId: Text
    entityIdNS: Annotated[Namespace, BeforeValidator(_code_alone)]


#: Most identities one request looks up: each is a lookup in the profile store, all of them inside the request.
MAX_IDENTITIES = 100


class EntitiesRequest(RequestModel):
    """Profiles by identities: each found one is answered under its entity id, the others are left out."""

    identities: Annotated[list[Identity], Field(min_length=1, max_length=MAX_IDENTITIES)]
    schema_: SchemaName | None = Field(None, alias="schema")
    fields: Annotated[list[Text], Field(max_length=MAX_ITEMS)] | None = None
    mergePolicyId: Id | None = None
