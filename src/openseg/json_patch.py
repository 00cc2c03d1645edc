"""JSON Patch bodies (RFC 6902), as AEP's PATCH endpoints take them."""

from __future__ import annotations

from typing import Any

import jsonpatch

from openseg.errors import BadRequest


def apply_patch(document: dict[str, Any], operations: Any, *, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Apply ``operations`` to ``document``; ``allowed`` limits the paths (by prefix) a patch may touch."""
    if not isinstance(operations, list) or not operations:
        raise BadRequest("the body must be a non-empty JSON Patch array of {op, path, value}", field="body")
    for index, operation in enumerate(operations):
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise BadRequest(f"patch operation {index} needs 'op' and 'path'", field=f"[{index}]")
        if allowed is not None and not any(
            operation["path"] == prefix or operation["path"].startswith(prefix + "/") for prefix in allowed
        ):
            raise BadRequest(
                f"patch operation {index}: path '{operation['path']}' cannot be changed; allowed: {', '.join(allowed)}",
                field=f"[{index}].path",
            )
    try:
        return dict(jsonpatch.apply_patch(document, operations))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise BadRequest(f"the JSON Patch cannot be applied: {exc}", field="body") from exc
