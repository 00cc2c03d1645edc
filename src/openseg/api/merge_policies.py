"""UPS merge policies: ``/data/core/ups/config/mergePolicies``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from openseg.api.catalog import scope_of
from openseg.api.deps import Tenant, json_body, json_object, query_bool, services, tenant
from openseg.api.paging import children_page, parse_int
from openseg.json_patch import apply_patch
from openseg.profiles import policies
from openseg.profiles.service import request_build
from openseg.services import Services
from openseg.store.models import ProfileStore
from openseg.store.repositories import SqlAlchemyWorkQueue

router = APIRouter(prefix="/data/core/ups/config", tags=["merge policies"])
PATH = "/data/core/ups/config/mergePolicies"



@router.post("/mergePolicies", status_code=201)
def create(who: Tenant = Depends(tenant), svc: Services = Depends(services),
           body: dict[str, Any] = Depends(json_object)) -> JSONResponse:
    with svc.db.session() as session:
        policy = policies.create_policy(session, scope_of(who), body)
        request_build(SqlAlchemyWorkQueue(session), who.sandbox.id)  # the worker builds the new policy's store
        return JSONResponse(policies.policy_json(policy, who.sandbox.to_json()), status_code=201)


@router.get("/mergePolicies")
def list_(request: Request, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    params = request.query_params
    limit = parse_int(params.get("limit"), "limit", 20, minimum=1, maximum=100)
    start = parse_int(params.get("start"), "start", 0)
    default = query_bool(params.get("default"), "default") if params.get("default") else None
    with svc.db.session() as session:
        items, total = policies.list_policies(session, scope_of(who), start=start, limit=limit, default=default)
        children = [policies.policy_json(p, who.sandbox.to_json()) for p in items]
    return children_page(children, total=total, start=start, limit=limit, path=PATH)


@router.get("/mergePolicies/{policy_id}")
def get(policy_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> dict[str, Any]:
    with svc.db.session() as session:
        policy = policies.get_policy(session, scope_of(who), policy_id)
        return policies.policy_json(policy, who.sandbox.to_json(), session.get(ProfileStore, policy.id))


@router.put("/mergePolicies/{policy_id}")
def put(policy_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
        body: dict[str, Any] = Depends(json_object)) -> dict[str, Any]:
    with svc.db.session() as session:
        policy = policies.replace_policy(session, scope_of(who), policy_id, body)
        request_build(SqlAlchemyWorkQueue(session), who.sandbox.id)  # a new version: the policy's build is stale until rebuilt
        return policies.policy_json(policy, who.sandbox.to_json())


@router.patch("/mergePolicies/{policy_id}")
def patch(policy_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services),
          operations: Any = Depends(json_body)) -> dict[str, Any]:
    with svc.db.session() as session:
        current = policies.policy_json(policies.get_policy(session, scope_of(who), policy_id), who.sandbox.to_json())
        patched = apply_patch(current, operations,
                              allowed=("/name", "/identityGraph", "/attributeMerge", "/default", "/isActiveOnEdge"))
        policy = policies.replace_policy(session, scope_of(who), policy_id, patched)
        request_build(SqlAlchemyWorkQueue(session), who.sandbox.id)
        return policies.policy_json(policy, who.sandbox.to_json())


@router.delete("/mergePolicies/{policy_id}")
def delete(policy_id: str, who: Tenant = Depends(tenant), svc: Services = Depends(services)) -> Response:
    with svc.db.session() as session:
        policies.delete_policy(session, scope_of(who), policy_id)
    return Response(status_code=200)
