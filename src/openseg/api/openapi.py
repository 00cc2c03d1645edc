"""``/openapi.json`` as openseg answers: every request body described by its model, errors as AEP's 400.

Bodies are read by ``deps.typed_body`` rather than by FastAPI's body parameters (see there why), so FastAPI
does not know them: this adds each operation's ``requestBody`` (``application/json``, the model's schema under
``components/schemas``) and replaces FastAPI's 422 "Validation Error" by the 400 the API answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from openseg.api.deps import body_model

_REF = "#/components/schemas/{model}"
#: AEP's error body (``api/errors.py``), as a 400 of a request that does not validate shows it.
AEP_ERROR = {
    "title": "AEP error",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string"}, "report": {"type": "object"}},
}


def _models(dependant: Dependant) -> Iterator[type[BaseModel]]:
    model = body_model(dependant.call)
    if model is not None:
        yield model
    for dependency in dependant.dependencies:
        yield from _models(dependency)


def body_models(app: FastAPI) -> dict[tuple[str, str], type[BaseModel]]:
    """``(METHOD, path)`` -> the model of its body, for every route reading a typed body."""
    found = {}
    for context in iter_route_contexts(app.routes):  # into included routers too
        route = context.original_route
        if isinstance(route, APIRoute) and context.path_format is not None:
            for model in _models(route.dependant):
                for method in context.methods or ():
                    found[(method, context.path_format)] = model
    return found


def describe_bodies(app: FastAPI, document: dict[str, Any]) -> None:
    """Add the ``requestBody`` of every typed body, and AEP's 400 in place of FastAPI's 422, to ``document``."""
    bodies = body_models(app)
    models = sorted(set(bodies.values()), key=lambda m: m.__qualname__)
    refs, definitions = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(definitions.get("$defs", {}))
    schemas["AEPError"] = AEP_ERROR
    bad_request = {"description": "Bad request: the field at fault is named in report.field",
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AEPError"}}}}
    for (method, path), model in bodies.items():
        operation = document["paths"][path][method.lower()]
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": refs[(model, "validation")]}}}
        operation.setdefault("responses", {})["400"] = bad_request
    for item in document["paths"].values():
        for operation in item.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses["400"] = bad_request
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
