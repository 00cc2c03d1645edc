"""UPS profile access: ``/data/core/ups/access/entities`` and openseg's ``/access/membership-history``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response

from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, json_body, services, tenant
from openseg.api.paging import parse_int
from openseg.api.profile_build import mark
from openseg.container import Services
from openseg.errors import BadRequest, NotFound
from openseg.profiles import entities
from openseg.request_fields import ascii_integer, optional_object, optional_string, string_list
from openseg.segmentation.history import timeline

router = APIRouter(prefix="/data/core/ups/access", tags=["profile access"])


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise BadRequest(f"query parameter '{name}' is required", field=name)
    return value


@router.get("/membership-history")
def membership_history(request: Request, response: Response, who: Tenant = Depends(tenant),
                       svc: Services = Depends(services)) -> dict[str, Any]:
    """Every entry into and exit from every segment of one profile (found by any of its identities)."""
    entity_id = _required(request, "entityId")
    namespace = _required(request, "entityIdNS")
    located = entities.locate(svc, scope_of(who), namespace, entity_id)
    build = located.build.to_json()
    mark(response, build)
    return {"entityId": entity_id, "entityIdNS": namespace, "profileId": located.profile_id,
            "mergePolicyId": located.policy.id,
            "history": timeline(svc, scope_of(who), located.profile_id, located.policy.id),
            "openseg:profileBuild": build}


PROFILE_SCHEMA = "_xdm.context.profile"
EVENT_SCHEMA = "_xdm.context.experienceevent"


def _fields(value: str | None) -> list[str] | None:
    return [f.strip() for f in value.split(",") if f.strip()] if value else None


#: Milliseconds from the epoch that stay inside Python's datetime range (years 1 to 9999) either way.
_MAX_EPOCH_MS = 60_000_000_000_000


def _time_ms(value: str | None, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    magnitude = ascii_integer(value.removeprefix("-"), maximum=_MAX_EPOCH_MS)
    if magnitude is None:
        raise BadRequest(f"query parameter '{name}' must be milliseconds since the epoch, between "
                         f"-{_MAX_EPOCH_MS} and {_MAX_EPOCH_MS}", field=name)
    return datetime.fromtimestamp((-magnitude if value.startswith("-") else magnitude) / 1000, UTC)


@router.get("/entities")
def get_entities(request: Request, response: Response, who: Tenant = Depends(tenant),
                 svc: Services = Depends(services)) -> dict[str, Any]:
    params = request.query_params
    schema = params.get("schema.name", PROFILE_SCHEMA)
    scope = scope_of(who)
    if schema == PROFILE_SCHEMA:
        located = entities.locate(svc, scope, _required(request, "entityIdNS"), _required(request, "entityId"),
                                  params.get("mergePolicyId"))
        body = entities.profile_entity(located, _fields(params.get("fields")))
        mark(response, located.build.to_json())
        return {body["entityId"]: body}
    if schema != EVENT_SCHEMA:
        raise BadRequest(f"'schema.name' must be {PROFILE_SCHEMA} or {EVENT_SCHEMA}", field="schema.name")
    if params.get("relatedSchema.name", PROFILE_SCHEMA) != PROFILE_SCHEMA:
        raise BadRequest(f"'relatedSchema.name' must be {PROFILE_SCHEMA}", field="relatedSchema.name")
    located = entities.locate(svc, scope, _required(request, "relatedEntityIdNS"), _required(request, "relatedEntityId"),
                              params.get("mergePolicyId"))
    limit = parse_int(params.get("limit"), "limit", 10, minimum=1, maximum=1000)
    start = params.get("start") or None
    orderby = params.get("orderby", "timestamp")
    if orderby not in ("timestamp", "-timestamp", "+timestamp"):
        raise BadRequest("'orderby' must be timestamp or -timestamp", field="orderby")
    children, following = entities.profile_events(
        located, start=_time_ms(params.get("startTime"), "startTime"), end=_time_ms(params.get("endTime"), "endTime"),
        limit=limit, descending=orderby.startswith("-"), after=start)
    mark(response, located.build.to_json())
    href = ""
    if following:
        kept = [(k, v) for k, v in params.multi_items() if k != "start"]
        href = f"{request.url.path}?{urlencode(kept + [('start', following)])}"
    return {
        "_page": {"orderby": orderby, "start": start or "", "count": len(children), "next": following or ""},
        "children": children,
        "_links": {"next": {"href": href}},
    }


@router.post("/entities")
def post_entities(response: Response, who: Tenant = Depends(tenant), svc: Services = Depends(services),
                  body: Any = Depends(json_body)) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("identities"), list) or not body["identities"]:
        raise BadRequest("'identities' must be a non-empty list of {entityId, entityIdNS: {code}}", field="identities")
    schema = optional_object(body, "schema").get("name", PROFILE_SCHEMA)
    if schema != PROFILE_SCHEMA:
        raise BadRequest(f"'schema.name' must be {PROFILE_SCHEMA}", field="schema.name")
    fields = string_list(body, "fields") or None
    policy_id = optional_string(body, "mergePolicyId")
    wanted: list[tuple[str, str]] = []
    for index, identity in enumerate(body["identities"]):
        namespace = identity.get("entityIdNS") if isinstance(identity, dict) else None
        code = namespace.get("code") if isinstance(namespace, dict) else namespace
        if not isinstance(identity, dict) or not isinstance(identity.get("entityId"), str) or not isinstance(code, str):
            raise BadRequest(f"'identities[{index}]' needs entityId and entityIdNS.code", field=f"identities[{index}]")
        wanted.append((code, identity["entityId"]))
    reader = entities.open_reader(svc, scope_of(who), policy_id)
    found: dict[str, Any] = {}
    for code, entity_id in wanted:
        try:
            located = entities.find(reader, code, entity_id)
        except NotFound:
            continue
        entity = entities.profile_entity(located, fields)
        found[entity["entityId"]] = entity
    mark(response, reader.build.to_json() if reader.build is not None else None)
    return found


@router.delete("/entities")
def delete_entity(request: Request, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> Response:
    """Erase a profile: every fragment and event of its identity graph (as the last build knows it) leaves the lake."""
    located = entities.locate(svc, scope_of(who), _required(request, "entityIdNS"), _required(request, "entityId"))
    entities.erase(svc, scope_of(who), located)
    response = Response(status_code=202)
    mark(response, located.build.to_json())
    return response
