"""UPS merge policies: ``/data/core/ups/config/mergePolicies``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

from openseg.api import bulk
from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, services, tenant, typed_body
from openseg.api.models._base import plain
from openseg.api.models.patch import JsonPatch
from openseg.api.models.policies import MergePolicyRequest
from openseg.api.models.segments import BulkGetRequest
from openseg.api.paging import AsciiInteger, QueryFlag, Start, children_page
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
           body: MergePolicyRequest = typed_body(MergePolicyRequest)) -> JSONResponse:
    """AEP answers a created merge policy with 200 (``profile.yaml``), not 201. The worker builds its store."""
    policy = policies.create_policy(svc.uow(), scope_of(who), plain(body))
    return JSONResponse(policies.policy_json(policy, who.sandbox.to_json()), status_code=200)


@router.get("/mergePolicies")
def list_(who: Tenant = Depends(tenant), svc: Services = Depends(services),
          limit: Annotated[int, Query(ge=1, le=100, description="merge policies per page"), AsciiInteger] = 20,
          start: Start = 0,
          default: Annotated[bool | None, Query(description="only the default policy (true) or the others (false)"),
                             QueryFlag] = None) -> dict[str, Any]:
    items, total = policies.list_policies(svc.uow(), scope_of(who), start=start, limit=limit, default=default)
    children = [policies.policy_json(p, who.sandbox.to_json()) for p in items]
    page: dict[str, Any] = dict(children_page(children, total=total, start=start, limit=limit, path=PATH))
    page["_page"] = {"count": len(children), **page["_page"]}  # profile.yaml requires count: policies on this page
    return page


@router.post("/mergePolicies/bulk-get", status_code=bulk.MULTI_STATUS)
def bulk_get(who: Tenant = Depends(tenant), svc: Services = Depends(services),
             body: BulkGetRequest = typed_body(BulkGetRequest)) -> JSONResponse:
    ids = bulk.requested_ids(plain(body))
    found = policies.read_policies(svc.uow(), scope_of(who), ids)
    return bulk.multi_status(ids, found, "merge policy", lambda pair: policies.policy_json(
        pair[0], who.sandbox.to_json(), pair[1]))


@router.get("/mergePolicies/{policy_id}")
def get(policy_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    policy, store = policies.read_policy(svc.uow(), scope_of(who), policy_id)
    return policies.policy_json(policy, who.sandbox.to_json(), store)


@router.put("/mergePolicies/{policy_id}")
def put(policy_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
        body: MergePolicyRequest = typed_body(MergePolicyRequest)) -> dict[str, Any]:
    """A new version: the policy's build is stale until the worker rebuilds it."""
    policy = policies.replace_policy(svc.uow(), scope_of(who), policy_id, plain(body))
    return policies.policy_json(policy, who.sandbox.to_json())


@router.patch("/mergePolicies/{policy_id}")
def patch(policy_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
          body: JsonPatch = typed_body(JsonPatch)) -> dict[str, Any]:
    """JSON Patch over the policy as GET shows it; AEP's dotted paths (``/identityGraph.type``) are taken too.
    A change of identity graph or attribute merge is a new version, whose store the worker rebuilds."""

    def patched(stored: MergePolicy) -> dict[str, Any]:
        current = policies.policy_json(stored, who.sandbox.to_json())
        return _one_order(current, apply_patch(current, _pointers(body.root), allowed=(
            "/name", "/identityGraph", "/attributeMerge", "/default", "/isActiveOnEdge", "/schema")))

    policy = policies.replace_policy(svc.uow(), scope_of(who), policy_id, patched)
    return policies.policy_json(policy, who.sandbox.to_json())


@router.delete("/mergePolicies/{policy_id}")
def delete(policy_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> Response:
    policies.delete_policy(svc.uow(), scope_of(who), policy_id)
    return Response(status_code=200)


def _pointers(operations: list[Any]) -> list[Any]:
    """The operations with AEP's dotted paths as JSON Pointers (anything malformed is left to ``apply_patch``)."""
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
