"""openseg extension: ``GET /data/core/ups/segment/schema``, the fields a segment definition can use.

The union schema the PQL checker validates definitions against (standard XDM plus every field of the
sandbox's ingested profile and event data), flattened to one row per field with its type, for the UI's
segment builder and any other client that wants to list fields. Read-only.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from fastapi import APIRouter, Depends

from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, services, tenant
from openseg.container import Services
from openseg.profiles.service import sandbox_schema
from openseg.xdm.schema import FieldKind, FieldType, Schema

router = APIRouter(prefix="/data/core/ups/segment", tags=["segment definitions"])


def _fields(node: FieldType, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(path, type name)`` of every field under ``node``: objects are walked into, everything else
    (scalars, arrays, maps) is one field."""
    for name, child in node.fields:
        path = f"{prefix}{name}"
        if child.kind is FieldKind.OBJECT and child.fields:
            yield from _fields(child, f"{path}.")
        else:
            yield path, child.name()


@cache
def _standard_paths() -> tuple[frozenset[str], frozenset[str]]:
    standard = Schema.standard()
    return frozenset(p for p, _ in _fields(standard.profile)), frozenset(p for p, _ in _fields(standard.event))


def _rows(node: FieldType, standard: frozenset[str]) -> list[dict[str, Any]]:
    return [{"path": path, "type": kind, "standard": path in standard} for path, kind in _fields(node)]


@router.get("/schema")
def union_fields(who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    """Every profile and ExperienceEvent field of the sandbox's union schema, with its type and whether it is a
    standard XDM field (``false``: a tenant field, found in the sandbox's ingested data)."""
    schema = sandbox_schema(svc, scope_of(who))
    profile, event = _standard_paths()
    return {"profile": _rows(schema.profile, profile), "event": _rows(schema.event, event)}
