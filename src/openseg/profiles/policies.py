"""Merge policy resources (UPS ``/config/mergePolicies``): validation, defaults, versions.

The services take a unit of work (``profiles.ports.ProfilesUnitOfWork``), open it and commit what they
change; a new policy or a new version queues a build of the sandbox's stores in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from openseg.clock import new_uuid, now_ms
from openseg.errors import BadRequest, Conflict, NotFound
from openseg.profiles.defaults import default_policy
from openseg.profiles.merge_policy import (
    ATTRIBUTE_MERGE_TYPES,
    IDENTITY_GRAPH_TYPES,
    MergePolicyError,
    MergePolicySpec,
)
from openseg.profiles.model import PROFILE_SCHEMA_NAME, MergePolicy, ProfileStoreRecord
from openseg.profiles.ports import MergePolicyRepository, ProfilesUnitOfWork
from openseg.profiles.service import request_build
from openseg.request_fields import optional_object
from openseg.scope import Tenancy, in_scope


def read_default(uow: ProfilesUnitOfWork, scope: Tenancy) -> tuple[MergePolicy, ProfileStoreRecord | None]:
    """The sandbox's default policy (created on first need and committed) with its profile store's record."""
    with uow:
        policy = default_policy(uow.merge_policies, scope)
        record = uow.profile_stores.get(policy.id)
        uow.commit()
    return policy, record


def _validated(uow: ProfilesUnitOfWork, scope: Tenancy, body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("'name' is required and must be a non-empty string", field="name")
    graph = (body.get("identityGraph") or {}).get("type") if isinstance(body.get("identityGraph"), dict) else None
    if graph not in IDENTITY_GRAPH_TYPES:
        raise BadRequest(f"'identityGraph.type' must be one of {', '.join(IDENTITY_GRAPH_TYPES)}",
                         field="identityGraph.type")
    merge = body.get("attributeMerge")
    if not isinstance(merge, dict) or merge.get("type") not in ATTRIBUTE_MERGE_TYPES:
        raise BadRequest(f"'attributeMerge.type' must be one of {', '.join(ATTRIBUTE_MERGE_TYPES)}",
                         field="attributeMerge.type")
    schema = body.get("schema") or {"name": PROFILE_SCHEMA_NAME}
    if not isinstance(schema, dict) or schema.get("name") != PROFILE_SCHEMA_NAME:
        raise BadRequest(f"'schema.name' must be {PROFILE_SCHEMA_NAME}", field="schema.name")
    attribute_merge: dict[str, Any] = {"type": merge["type"]}
    if merge["type"] == "dataSetPrecedence":
        order = optional_object(merge, "data", field="attributeMerge.data").get("order")
        if "order" in merge:  # AEP's spelling (profile.yaml); openseg's contract has data.order
            if order is not None and order != merge["order"]:
                raise BadRequest("'attributeMerge.order' and 'attributeMerge.data.order' differ: send one",
                                 field="attributeMerge.order")
            order = merge["order"]
        if not isinstance(order, list) or not order or not all(isinstance(d, str) for d in order):
            raise BadRequest("'attributeMerge.data.order' must list dataset ids for dataSetPrecedence",
                             field="attributeMerge.data.order")
        known = uow.profile_sources.known_datasets(scope.sandbox_id, order)
        unknown = [d for d in order if d not in known]
        if unknown:
            raise BadRequest(f"'attributeMerge.data.order' names datasets that do not exist: {', '.join(unknown)}",
                             field="attributeMerge.data.order")
        attribute_merge["data"] = {"order": order}
    try:
        MergePolicySpec(id="check", identity_graph=graph, attribute_merge=merge["type"],
                        dataset_order=tuple(attribute_merge.get("data", {}).get("order", ())))
    except MergePolicyError as exc:
        raise BadRequest(str(exc), field=str(exc).split(":")[0]) from exc
    for flag in ("default", "isActiveOnEdge"):
        if flag in body and not isinstance(body[flag], bool):
            raise BadRequest(f"'{flag}' must be true or false", field=flag)
    return {"name": name.strip(), "identity_graph": graph, "attribute_merge": attribute_merge,
            "is_default": bool(body.get("default", False)),
            "is_active_on_edge": bool(body.get("isActiveOnEdge", False))}


def _get(policies: MergePolicyRepository, scope: Tenancy, policy_id: str) -> MergePolicy:
    return in_scope(policies.get(policy_id), scope, "merge policy", policy_id)


def _make_default(policies: MergePolicyRepository, scope: Tenancy, policy: MergePolicy) -> None:
    for other in policies.in_sandbox(scope.sandbox_id):
        if other.id != policy.id and other.is_default:
            policies.update(replace(other, is_default=False, updated=now_ms()))


def create_policy(uow: ProfilesUnitOfWork, scope: Tenancy, body: dict[str, Any]) -> MergePolicy:
    """A new policy (its sandbox's default is made first when there is none); the worker builds its store."""
    with uow:
        default_policy(uow.merge_policies, scope)
        values = _validated(uow, scope, body)
        now = now_ms()
        policy = MergePolicy(id=new_uuid(), org_id=scope.org_id, sandbox_id=scope.sandbox_id,
                             schema_name=PROFILE_SCHEMA_NAME, version=1, created=now, updated=now, **values)
        uow.merge_policies.add(policy)
        if policy.is_default:
            _make_default(uow.merge_policies, scope, policy)
        request_build(uow.work_queue, scope.sandbox_id)
        uow.commit()
    return policy


def get_policy(uow: ProfilesUnitOfWork, scope: Tenancy, policy_id: str) -> MergePolicy:
    """The policy, or 404 when it does not exist in the scope."""
    with uow:
        return _get(uow.merge_policies, scope, policy_id)


def read_policies(uow: ProfilesUnitOfWork, scope: Tenancy, policy_ids: list[str]
                  ) -> dict[str, tuple[MergePolicy, ProfileStoreRecord | None]]:
    """Each policy of ``policy_ids`` found in the scope, with its profile store's record (ids not found are
    left out)."""
    found: dict[str, tuple[MergePolicy, ProfileStoreRecord | None]] = {}
    with uow:
        for policy_id in policy_ids:
            try:
                policy = _get(uow.merge_policies, scope, policy_id)
            except NotFound:
                continue
            found[policy_id] = (policy, uow.profile_stores.get(policy.id))
    return found


def read_policy(uow: ProfilesUnitOfWork, scope: Tenancy, policy_id: str
                ) -> tuple[MergePolicy, ProfileStoreRecord | None]:
    """The policy (404 when it does not exist in the scope) with its profile store's record."""
    with uow:
        policy = _get(uow.merge_policies, scope, policy_id)
        return policy, uow.profile_stores.get(policy.id)


def list_policies(uow: ProfilesUnitOfWork, scope: Tenancy, *, start: int, limit: int,
                  default: bool | None = None) -> tuple[list[MergePolicy], int]:
    """A page of the sandbox's policies, oldest first, and how many there are (the default one is created
    first when there is none)."""
    with uow:
        default_policy(uow.merge_policies, scope)
        found = [p for p in uow.merge_policies.in_sandbox(scope.sandbox_id)
                 if default is None or p.is_default is default]
        uow.commit()
    return found[start:start + limit], len(found)


def replace_policy(uow: ProfilesUnitOfWork, scope: Tenancy, policy_id: str,
                   body: dict[str, Any] | Callable[[MergePolicy], dict[str, Any]]) -> MergePolicy:
    """The policy replaced by ``body`` (or by what ``body`` makes of the stored policy: a patch) as its next
    version; the worker rebuilds its store."""
    with uow:
        policy = _get(uow.merge_policies, scope, policy_id)
        values = _validated(uow, scope, body(policy) if callable(body) else body)
        if policy.is_default and not values["is_default"]:
            raise BadRequest("a sandbox always has a default merge policy: make another one default instead",
                             field="default")
        policy = replace(policy, **values, version=policy.version + 1, updated=now_ms())
        uow.merge_policies.update(policy)
        if policy.is_default:
            _make_default(uow.merge_policies, scope, policy)
        request_build(uow.work_queue, scope.sandbox_id)
        uow.commit()
    return policy


def delete_policy(uow: ProfilesUnitOfWork, scope: Tenancy, policy_id: str) -> None:
    """Delete the policy: 409 while segment definitions use it, or while it is the sandbox's default."""
    with uow:
        policy = _get(uow.merge_policies, scope, policy_id)
        users = sorted(uow.merge_policies.users(policy.id))
        if users:
            raise Conflict(f"merge policy '{policy_id}' is used by segment definitions: {', '.join(users)}",
                           report={"segmentDefinitions": users})
        if policy.is_default:
            raise Conflict(f"merge policy '{policy_id}' is the sandbox's default; make another policy default first")
        uow.merge_policies.remove(policy.id)
        uow.commit()


def store_json(store: ProfileStoreRecord | None) -> dict[str, Any] | None:
    """openseg extension: the state of the policy's merged profile store, including identity graphs over
    the 50-identity guardrail (not merged further, reported here rather than dropped)."""
    if store is None or store.built_at is None:
        return None
    stats = store.stats or {}
    oversized = stats.get("oversized_graphs") or []
    return {
        "builtAt": store.built_at,
        "policyVersion": store.policy_version,
        "profiles": stats.get("profiles"),
        "events": stats.get("events"),
        "fragments": stats.get("fragments"),
        "identities": stats.get("identities"),
        "buildSeconds": stats.get("seconds"),
        "lastRefresh": stats.get("refresh"),
        "engine": stats.get("engine"),
        "oversizedIdentityGraphs": len(oversized),
        "oversizedIdentityGraphSamples": [
            {"identities": len(g.get("identities", [])), "splitInto": g.get("profile_ids", [])[:10],
             "someIdentities": [":".join(i) for i in g.get("identities", [])[:5]]}
            for g in oversized[:5]
        ],
        "lastMembershipJobId": store.membership_job_id,
    }


def policy_json(policy: MergePolicy, sandbox: dict[str, Any], store: ProfileStoreRecord | None = None) -> dict[str, Any]:
    body = {
        "id": policy.id,
        "name": policy.name,
        "imsOrgId": policy.org_id,
        "sandbox": sandbox,
        "schema": {"name": policy.schema_name},
        "version": policy.version,
        "identityGraph": {"type": policy.identity_graph},
        "attributeMerge": _attribute_merge(policy.attribute_merge),
        "isActiveOnEdge": policy.is_active_on_edge,
        "default": policy.is_default,
        "updateEpoch": policy.updated // 1000,
    }
    built = store_json(store)
    if built is not None:
        body["openseg:profileStore"] = built
    return body


def _attribute_merge(stored: dict[str, Any]) -> dict[str, Any]:
    """``attributeMerge`` with the dataset order both as openseg's ``data.order`` and AEP's ``order``."""
    order = (stored.get("data") or {}).get("order")
    return {**stored, "order": order} if order is not None else stored
