"""JSON Patch bodies (RFC 6902), as AEP's PATCH endpoints take them."""

from __future__ import annotations

from typing import Any

import jsonpatch

from openseg.errors import BadRequest

#: RFC 6902's operations and the members each needs beside ``op`` and ``path``.
_MEMBERS = {"add": ("value",), "remove": (), "replace": ("value",), "move": ("from",), "copy": ("from",),
            "test": ("value",)}


def apply_patch(document: dict[str, Any], operations: Any, *, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Apply ``operations`` to ``document``; ``allowed`` limits the paths (by prefix) a patch may touch.

    Raises:
        BadRequest: a malformed operation (naming it, as ``[index].member``), a path outside ``allowed``, or
            a patch that cannot be applied.
    """
    if not isinstance(operations, list) or not operations:
        raise BadRequest("the body must be a non-empty JSON Patch array of {op, path, value}", field="body")
    for index, operation in enumerate(operations):
        _check_operation(index, operation, allowed)
    try:
        return dict(jsonpatch.apply_patch(document, operations))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise BadRequest(f"the JSON Patch cannot be applied: {exc}", field="body") from exc


def _check_operation(index: int, operation: Any, allowed: tuple[str, ...] | None) -> None:
    if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
        raise BadRequest(f"patch operation {index} needs 'op' and 'path'", field=f"[{index}]")
    op = operation["op"]
    if not isinstance(op, str) or op not in _MEMBERS:
        raise BadRequest(f"patch operation {index}: 'op' must be one of {', '.join(_MEMBERS)}", field=f"[{index}].op")
    for member in _MEMBERS[op]:
        if member not in operation:
            raise BadRequest(f"patch operation {index}: '{op}' needs '{member}'", field=f"[{index}].{member}")
    pointers = ("path", "from") if op in ("move", "copy") else ("path",)
    for member in pointers:
        pointer = operation[member]
        if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
            raise BadRequest(f"patch operation {index}: '{member}' must be a JSON Pointer string such as '/name'",
                             field=f"[{index}].{member}")
    for member in pointers:
        pointer = operation[member]
        if allowed is not None and not any(pointer == prefix or pointer.startswith(prefix + "/") for prefix in allowed):
            raise BadRequest(
                f"patch operation {index}: {member} '{pointer}' cannot be changed; allowed: {', '.join(allowed)}",
                field=f"[{index}].{member}",
            )
