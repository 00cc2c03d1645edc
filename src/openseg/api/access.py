"""UPS profile access: ``/data/core/ups/access/entities`` and openseg's ``/access/membership-history``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response

from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, services, tenant, typed_body
from openseg.api.lanes import run_in
from openseg.api.models._base import MAX_ID, MAX_TEXT
from openseg.api.models.access import EntitiesRequest
from openseg.api.paging import AsciiInteger
from openseg.api.profile_build import mark
from openseg.container import Services
from openseg.errors import BadRequest, NotFound
from openseg.profiles import entities
from openseg.request_fields import ascii_integer
from openseg.segmentation.history import timeline

router = APIRouter(prefix="/data/core/ups/access", tags=["profile access"])


def _required(value: str | None, name: str) -> str:
    if not value:
        raise BadRequest(f"query parameter '{name}' is required", field=name)
    return value


def _text(name: str, description: str, max_length: int = MAX_TEXT) -> Any:
    """A text query parameter named ``name`` (AEP's names hold dots), at most ``max_length`` long."""
    return Query(alias=name, max_length=max_length, description=description)


EntityId = Annotated[str | None, _text("entityId", "the identity's value, such as an e-mail address")]
EntityNamespace = Annotated[str | None, _text("entityIdNS", "the identity's namespace code, such as email", MAX_ID)]


@router.get("/membership-history")
def membership_history(response: Response, who: Tenant = Depends(tenant), svc: Services = Depends(services),
                       entity_id: EntityId = None, namespace: EntityNamespace = None) -> dict[str, Any]:
    """Every entry into and exit from every segment of one profile (found by any of its identities)."""
    entity_id = _required(entity_id, "entityId")
    namespace = _required(namespace, "entityIdNS")
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
async def get_entities(request: Request, response: Response, who: Tenant = Depends(tenant),
                       entity_id: EntityId = None, namespace: EntityNamespace = None,
                       schema: Annotated[str, _text("schema.name", f"{PROFILE_SCHEMA} or {EVENT_SCHEMA}", MAX_ID)] = PROFILE_SCHEMA,
                       related_schema: Annotated[str, _text("relatedSchema.name", PROFILE_SCHEMA, MAX_ID)] = PROFILE_SCHEMA,
                       related_id: Annotated[str | None, _text("relatedEntityId", "events: the profile's identity")] = None,
                       related_namespace: Annotated[str | None, _text("relatedEntityIdNS", "events: its namespace code",
                                                                      MAX_ID)] = None,
                       policy_id: Annotated[str | None, _text("mergePolicyId", "the merge policy (the default one when absent)",
                                                              MAX_ID)] = None,
                       fields: Annotated[str | None, _text("fields", "profile fields to answer, comma-separated")] = None,
                       limit: Annotated[int, Query(ge=1, le=1000, description="events per page"), AsciiInteger] = 10,
                       start: Annotated[str | None, _text("start", "events: the cursor of the next page", MAX_ID)] = None,
                       orderby: Annotated[str, _text("orderby", "timestamp or -timestamp", MAX_ID)] = "timestamp",
                       start_time: Annotated[str | None, _text("startTime", "events from (ms since the epoch)", MAX_ID)] = None,
                       end_time: Annotated[str | None, _text("endTime", "events until (ms since the epoch)", MAX_ID)] = None,
                       ) -> dict[str, Any]:
    # Reads decode the profile store: in the lookups lane (api/lanes.py), whose work takes plain data.
    body, build = await run_in(request, "lookups", _get_entities, who, request.url.path,
                               request.query_params.multi_items(), entity_id=entity_id, namespace=namespace,
                               schema=schema, related_schema=related_schema, related_id=related_id,
                               related_namespace=related_namespace, policy_id=policy_id, fields=fields, limit=limit,
                               start=start, orderby=orderby, start_time=start_time, end_time=end_time)
    mark(response, build)
    return body


#: A lookup's body and the build it was read from (``ServingStore.to_json``; None: read from none).
Lookup = tuple[dict[str, Any], dict[str, Any] | None]


def _get_entities(svc: Services, who: Tenant, path: str, query: list[tuple[str, str]], *, entity_id: str | None,
                  namespace: str | None, schema: str, related_schema: str, related_id: str | None,
                  related_namespace: str | None, policy_id: str | None, fields: str | None, limit: int,
                  start: str | None, orderby: str, start_time: str | None, end_time: str | None) -> Lookup:
    scope = scope_of(who)
    if schema == PROFILE_SCHEMA:
        located = entities.locate(svc, scope, _required(namespace, "entityIdNS"), _required(entity_id, "entityId"),
                                  policy_id)
        body = entities.profile_entity(located, _fields(fields))
        return {body["entityId"]: body}, located.build.to_json()
    if schema != EVENT_SCHEMA:
        raise BadRequest(f"'schema.name' must be {PROFILE_SCHEMA} or {EVENT_SCHEMA}", field="schema.name")
    if related_schema != PROFILE_SCHEMA:
        raise BadRequest(f"'relatedSchema.name' must be {PROFILE_SCHEMA}", field="relatedSchema.name")
    located = entities.locate(svc, scope, _required(related_namespace, "relatedEntityIdNS"),
                              _required(related_id, "relatedEntityId"), policy_id)
    cursor = start or None
    if orderby not in ("timestamp", "-timestamp", "+timestamp"):
        raise BadRequest("'orderby' must be timestamp or -timestamp", field="orderby")
    children, following = entities.profile_events(
        located, start=_time_ms(start_time, "startTime"), end=_time_ms(end_time, "endTime"),
        limit=limit, descending=orderby.startswith("-"), after=cursor)
    href = ""
    if following:
        kept = [(k, v) for k, v in query if k != "start"]
        href = f"{path}?{urlencode(kept + [('start', following)])}"
    return {
        "_page": {"orderby": orderby, "start": cursor or "", "count": len(children), "next": following or ""},
        "children": children,
        "_links": {"next": {"href": href}},
    }, located.build.to_json()


@router.post("/entities")
async def post_entities(request: Request, response: Response, who: Tenant = Depends(tenant),
                        body: EntitiesRequest = typed_body(EntitiesRequest)) -> dict[str, Any]:
    found, build = await run_in(request, "lookups", _post_entities, who, body)
    mark(response, build)
    return found


def _post_entities(svc: Services, who: Tenant, body: EntitiesRequest) -> Lookup:
    schema = body.schema_.name if body.schema_ is not None and body.schema_.name is not None else PROFILE_SCHEMA
    if schema != PROFILE_SCHEMA:
        raise BadRequest(f"'schema.name' must be {PROFILE_SCHEMA}", field="schema.name")
    fields = body.fields or None
    wanted = [(identity.entityIdNS.code, identity.entityId) for identity in body.identities]
    reader = entities.open_reader(svc, scope_of(who), body.mergePolicyId)
    found: dict[str, Any] = {}
    for code, entity_id in wanted:
        try:
            located = entities.find(reader, code, entity_id)
        except NotFound:
            continue
        entity = entities.profile_entity(located, fields)
        found[entity["entityId"]] = entity
    return found, reader.build.to_json() if reader.build is not None else None


@router.delete("/entities")
def delete_entity(who: Tenant = Depends(tenant), svc: Services = Depends(services), entity_id: EntityId = None,
                  namespace: EntityNamespace = None) -> Response:
    """Erase a profile: every fragment and event of its identity graph (as the last build knows it) leaves the lake."""
    located = entities.locate(svc, scope_of(who), _required(namespace, "entityIdNS"), _required(entity_id, "entityId"))
    entities.erase(svc, scope_of(who), located)
    response = Response(status_code=202)
    mark(response, located.build.to_json())
    return response
