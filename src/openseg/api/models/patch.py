"""JSON Patch bodies (RFC 6902): merge policies and schedules are changed by a list of operations."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, WithJsonSchema

from openseg.api.models._base import MAX_ITEMS, RootModel

_OPS = ["add", "remove", "replace", "move", "copy", "test"]
#: An operation as /openapi.json describes it. Each one is checked by ``json_patch.apply_patch``, which names
#: the member at fault (``[0].path``) and what the resource allows there.
OPERATION_SCHEMA = {
    "type": "object",
    "required": ["op", "path"],
    "properties": {"op": {"type": "string", "enum": _OPS}, "path": {"type": "string", "description": "a JSON Pointer"},
                   "value": {}, "from": {"type": "string", "description": "a JSON Pointer (move, copy)"}},
}
Operations = Annotated[list[Any], Field(max_length=MAX_ITEMS),
                       WithJsonSchema({"type": "array", "items": OPERATION_SCHEMA, "maxItems": MAX_ITEMS})]


class JsonPatch(RootModel[Operations]):
    """A JSON Patch: a list of operations."""
