"""What every request body model shares: strict JSON types, AEP's other fields kept, bounded sizes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from openseg.request_fields import MAX_INT

#: Longest name (as a streaming connection's, ``streaming/connections.py::MAX_NAME``).
MAX_NAME = 512
#: Longest description or other free text.
MAX_TEXT = 10_000
#: Longest id, key, namespace code or enum-like word.
MAX_ID = 256
#: Longest PQL expression, and Query Service statement.
MAX_PQL = 100_000
MAX_SQL = 1_000_000
#: Most items of a list in a body (ids of a bulk get, segments of a job or a schedule, fields, identities).
MAX_ITEMS = 1000

Name = Annotated[str, StringConstraints(max_length=MAX_NAME)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
Id = Annotated[str, StringConstraints(max_length=MAX_ID)]


def _integral(value: Any) -> Any:
    """``30.0`` is the integer 30, as JSON Schema counts it (so ``type: integer`` means what it says); ``30.5``
    and ``"30"`` are not integers."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: Reads an integer (an integral number such as ``30.0`` is taken as one); after any bounds, which the JSON
#: schema then shows: ``Annotated[int, Field(ge=1), WholeNumber]``.
WholeNumber = BeforeValidator(_integral)
#: A count, size or time in milliseconds: an integer the metadata store's 64-bit columns hold.
Count = Annotated[int, Field(ge=-MAX_INT - 1, le=MAX_INT), WholeNumber]
#: Any JSON object (AEP's free-form maps: ``tags``, ``metrics``, ``properties``), keys bounded.
AnyObject = dict[Id, Any]


class RequestModel(BaseModel):
    """A JSON request body or a part of one: types as JSON has them (no ``"5"`` for 5), AEP's field names,
    and the fields AEP allows beside the ones named here kept for the service."""

    model_config = ConfigDict(strict=True, extra="allow")


def said_as(message: str, *, items_too: bool = False) -> WrapValidator:
    """A validator that words the value's own errors (its type; those of its items with ``items_too``) as
    ``message``, as the service always has (``'ids' must be a list of {"id": ...}``); sizes beyond a bound
    keep their own words."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            errors = exc.errors()
            if all(e["type"] not in _SIZES for e in errors) and (items_too or any(not e["loc"] for e in errors)):
                raise PydanticCustomError("openseg", message) from exc
            raise

    return WrapValidator(validate)


_SIZES = frozenset({"too_long", "string_too_long"})


def plain(body: BaseModel) -> Any:
    """The body as the JSON it was sent as (only the fields sent), for the services that take JSON."""
    return body.model_dump(by_alias=True, exclude_unset=True)


__all__ = [
    "MAX_ID",
    "MAX_ITEMS",
    "MAX_NAME",
    "MAX_PQL",
    "MAX_SQL",
    "MAX_TEXT",
    "AnyObject",
    "Count",
    "Id",
    "Name",
    "RequestModel",
    "RootModel",
    "Text",
    "WholeNumber",
    "plain",
    "said_as",
]
