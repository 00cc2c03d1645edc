"""UPS merge policies: ``/data/core/ups/config/mergePolicies``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from openseg.api import bulk
from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, json_body, json_object, query_bool, services, tenant
from openseg.api.paging import children_page, parse_int
from openseg.container import Services
from openseg.json_patch import apply_patch
from openseg.profiles import policies
from openseg.profiles.model import MergePolicy

router = APIRouter(prefix="/data/core/ups/config", tags=["merge policies"])
PATH = "/data/core/ups/config/mergePolicies"
#: The paths AEP's PATCH takes (``profile.yaml``: ``/identityGraph.type``, ``/attributeMerge.type``,
#: ``/schema.name``, and ``/idActiveOnEdge`` as it spells ``isActiveOnEdge``) as the JSON Pointers they mean.
AEP_PATCH_PATHS = {"/identityGraph.type": "/identityGraph/type", "/attributeMerge.type": "/attributeMerge/type",
                   "/schema.name": "/schema/name", "/idActiveOnEdge": "/isActiveOnEdge"}


@router.post("/mergePolicies", status_code=200)
def create(who: Tenant = Depends(tenant), svc: Services = Depends(services),
           body: dict[str, Any] = Depends(json_object)) -> JSONResponse:
    """AEP answers a created merge policy with 200 (``profile.yaml``), not 201. The worker builds its store."""
    policy = policies.create_policy(svc.uow(), scope_of(who), body)
    return JSONResponse(policies.policy_json(policy, who.sandbox.to_json()), status_code=200)


@router.get("/mergePolicies")
def list_(request: Request, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    params = request.query_params
    limit = parse_int(params.get("limit"), "limit", 20, minimum=1, maximum=100)
    start = parse_int(params.get("start"), "start", 0)
    default = query_bool(params.get("default"), "default") if params.get("default") else None
    items, total = policies.list_policies(svc.uow(), scope_of(who), start=start, limit=limit, default=default)
    children = [policies.policy_json(p, who.sandbox.to_json()) for p in items]
    page: dict[str, Any] = dict(children_page(children, total=total, start=start, limit=limit, path=PATH))
    page["_page"] = {"count": len(children), **page["_page"]}  # profile.yaml requires count: policies on this page
    return page


@router.post("/mergePolicies/bulk-get", status_code=bulk.MULTI_STATUS)
def bulk_get(who: Tenant = Depends(tenant), svc: Services = Depends(services),
             body: dict[str, Any] = Depends(json_object)) -> JSONResponse:
    ids = bulk.requested_ids(body)
    found = policies.read_policies(svc.uow(), scope_of(who), ids)
    return bulk.multi_status(ids, found, "merge policy", lambda pair: policies.policy_json(
        pair[0], who.sandbox.to_json(), pair[1]))


@router.get("/mergePolicies/{policy_id}")
def get(policy_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    policy, store = policies.read_policy(svc.uow(), scope_of(who), policy_id)
    return policies.policy_json(policy, who.sandbox.to_json(), store)


@router.put("/mergePolicies/{policy_id}")
def put(policy_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
        body: dict[str, Any] = Depends(json_object)) -> dict[str, Any]:
    """A new version: the policy's build is stale until the worker rebuilds it."""
    policy = policies.replace_policy(svc.uow(), scope_of(who), policy_id, body)
    return policies.policy_json(policy, who.sandbox.to_json())


@router.patch("/mergePolicies/{policy_id}")
def patch(policy_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
          operations: Any = Depends(json_body)) -> dict[str, Any]:
    """JSON Patch over the policy as GET shows it; AEP's dotted paths (``/identityGraph.type``) are taken too.
    A change of identity graph or attribute merge is a new version, whose store the worker rebuilds."""

    def patched(stored: MergePolicy) -> dict[str, Any]:
        current = policies.policy_json(stored, who.sandbox.to_json())
        return _one_order(current, apply_patch(current, _pointers(operations), allowed=(
            "/name", "/identityGraph", "/attributeMerge", "/default", "/isActiveOnEdge", "/schema")))

    policy = policies.replace_policy(svc.uow(), scope_of(who), policy_id, patched)
    return policies.policy_json(policy, who.sandbox.to_json())


@router.delete("/mergePolicies/{policy_id}")
def delete(policy_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> Response:
    policies.delete_policy(svc.uow(), scope_of(who), policy_id)
    return Response(status_code=200)


def _pointers(operations: Any) -> Any:
    """The operations with AEP's dotted paths as JSON Pointers (anything malformed is left to ``apply_patch``)."""
    if not isinstance(operations, list):
        return operations
    return [{**op, "path": AEP_PATCH_PATHS.get(op["path"], op["path"])}
            if isinstance(op, dict) and isinstance(op.get("path"), str) else op for op in operations]


def _one_order(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """A policy shows its dataset order twice (AEP's ``attributeMerge.order``, openseg's ``data.order``): a patch
    of either one changes the order, the other follows."""
    merge, old = after.get("attributeMerge"), before["attributeMerge"].get("order")
    if not isinstance(merge, dict) or "order" not in merge or not isinstance(merge.get("data"), dict):
        return after
    if merge["order"] == old:
        merge = {**merge, "order": merge["data"].get("order")}
    elif merge["data"].get("order") == old:
        merge = {**merge, "data": {**merge["data"], "order": merge["order"]}}
    return {**after, "attributeMerge": merge}
