"""AEP's bulk gets (``POST .../bulk-get`` of segment definitions, segment jobs and merge policies).

The request is ``{"ids": [{"id": ...}, ...]}``; the answer is 207 Multi-Status with one entry per id under
``results``: the resource as a single GET shows it, or, for an id this sandbox does not have, the error
entry AEP's audiences bulk-get shows (``segmentation.yaml``, "One audience was not found"):
``{"errors": {"404": [{"code": 404, "message": ...}]}}``. Another tenant's id is answered like one that never
existed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi.responses import JSONResponse

from openseg.errors import BadRequest

MULTI_STATUS = 207


def requested_ids(body: dict[str, Any]) -> list[str]:
    """The ids of a bulk-get body, in the order asked, each once.

    Raises:
        BadRequest: ``ids`` is not a list of ``{"id": "..."}`` objects, or an id holds a NUL character (no store
            can look it up).
    """
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, dict) and isinstance(i.get("id"), str) for i in ids):
        raise BadRequest("'ids' must be a list of {\"id\": ...}", field="ids")
    for index, entry in enumerate(ids):
        if "\x00" in entry["id"]:
            raise BadRequest(f"'ids[{index}].id' holds a NUL character (\\u0000)", field=f"ids[{index}].id")
    return list(dict.fromkeys(entry["id"] for entry in ids))


def not_found(resource: str, resource_id: str) -> dict[str, Any]:
    """The per-item entry of an id that is not found."""
    return {"errors": {"404": [{"code": 404, "message": f"{resource} '{resource_id}' was not found"}]}}


def multi_status(ids: list[str], found: Mapping[str, Any], resource: str,
                 shape: Callable[[Any], dict[str, Any]]) -> JSONResponse:
    """The 207 answer: ``shape(found[id])`` for each id found, the not-found entry for the others."""
    results = {i: shape(found[i]) if i in found else not_found(resource, i) for i in ids}
    return JSONResponse({"results": results}, status_code=MULTI_STATUS)
