"""Merge policy resources (UPS ``/config/mergePolicies``): validation, defaults, versions."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openseg.clock import new_uuid, now_ms
from openseg.errors import BadRequest, Conflict
from openseg.profiles.merge_policy import (
    ATTRIBUTE_MERGE_TYPES,
    IDENTITY_GRAPH_TYPES,
    MergePolicyError,
    MergePolicySpec,
)
from openseg.profiles.model import PROFILE_SCHEMA_NAME
from openseg.profiles.model import MergePolicy as MergePolicyValue
from openseg.request_fields import optional_object
from openseg.scope import Scope
from openseg.store.models import Dataset, MergePolicy, ProfileStore, SegmentDefinition


def spec_of(policy: MergePolicy) -> MergePolicySpec:
    """The engine-side view of a stored policy."""
    order = tuple((policy.attribute_merge.get("data") or {}).get("order") or ())
    return MergePolicySpec(
        id=policy.id, identity_graph=policy.identity_graph,  # type: ignore[arg-type]
        attribute_merge=policy.attribute_merge["type"], dataset_order=order, version=policy.version,
    )


def ensure_default(session: Session, scope: Scope) -> MergePolicy:
    """Every sandbox has a default policy: pdg + timestampOrdered (contract.md), created on first need."""
    existing = session.scalars(
        select(MergePolicy).where(MergePolicy.sandbox_id == scope.sandbox_id, MergePolicy.is_default.is_(True))
    ).first()
    if existing is not None:
        return existing
    policy = MergePolicy(**asdict(MergePolicyValue.default_for(scope.org_id, scope.sandbox_id, policy_id=new_uuid(),
                                                               now=now_ms())))
    session.add(policy)
    session.flush()
    return policy


def _validated(session: Session, scope: Scope, body: dict[str, Any]) -> dict[str, Any]:
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
        known = set(session.scalars(select(Dataset.id).where(Dataset.sandbox_id == scope.sandbox_id,
                                                             Dataset.id.in_(order))))
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


def _make_default(session: Session, scope: Scope, policy: MergePolicy) -> None:
    for other in session.scalars(select(MergePolicy).where(MergePolicy.sandbox_id == scope.sandbox_id,
                                                           MergePolicy.id != policy.id,
                                                           MergePolicy.is_default.is_(True))):
        other.is_default = False
        other.updated = now_ms()


def create_policy(session: Session, scope: Scope, body: dict[str, Any]) -> MergePolicy:
    ensure_default(session, scope)
    values = _validated(session, scope, body)
    now = now_ms()
    policy = MergePolicy(id=new_uuid(), org_id=scope.org_id, sandbox_id=scope.sandbox_id,
                         schema_name=PROFILE_SCHEMA_NAME, version=1, created=now, updated=now, **values)
    session.add(policy)
    session.flush()
    if policy.is_default:
        _make_default(session, scope, policy)
    return policy


def get_policy(session: Session, scope: Scope, policy_id: str) -> MergePolicy:
    return scope.get(session, MergePolicy, policy_id, "merge policy")


def list_policies(session: Session, scope: Scope, *, start: int, limit: int,
                  default: bool | None = None) -> tuple[list[MergePolicy], int]:
    ensure_default(session, scope)
    query = select(MergePolicy).where(MergePolicy.sandbox_id == scope.sandbox_id)
    if default is not None:
        query = query.where(MergePolicy.is_default.is_(default))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(session.scalars(query.order_by(MergePolicy.created, MergePolicy.id).offset(start).limit(limit)))
    return items, int(total)


def count_policies(session: Session, sandbox_id: str) -> int:
    return int(session.scalar(select(func.count()).select_from(MergePolicy)
                              .where(MergePolicy.sandbox_id == sandbox_id)) or 0)


def replace_policy(session: Session, scope: Scope, policy_id: str, body: dict[str, Any]) -> MergePolicy:
    policy = get_policy(session, scope, policy_id)
    values = _validated(session, scope, body)
    if policy.is_default and not values["is_default"]:
        raise BadRequest("a sandbox always has a default merge policy: make another one default instead",
                         field="default")
    for key, value in values.items():
        setattr(policy, key, value)
    policy.version += 1
    policy.updated = now_ms()
    if policy.is_default:
        _make_default(session, scope, policy)
    return policy


def delete_policy(session: Session, scope: Scope, policy_id: str) -> None:
    policy = get_policy(session, scope, policy_id)
    users = list(session.scalars(select(SegmentDefinition.id).where(SegmentDefinition.merge_policy_id == policy.id)))
    if users:
        raise Conflict(f"merge policy '{policy_id}' is used by segment definitions: {', '.join(sorted(users))}",
                       report={"segmentDefinitions": sorted(users)})
    if policy.is_default:
        raise Conflict(f"merge policy '{policy_id}' is the sandbox's default; make another policy default first")
    session.delete(policy)


def store_json(store: ProfileStore | None) -> dict[str, Any] | None:
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
        "oversizedIdentityGraphs": len(oversized),
        "oversizedIdentityGraphSamples": [
            {"identities": len(g.get("identities", [])), "splitInto": g.get("profile_ids", [])[:10],
             "someIdentities": [":".join(i) for i in g.get("identities", [])[:5]]}
            for g in oversized[:5]
        ],
        "lastMembershipJobId": store.membership_job_id,
    }


def policy_json(policy: MergePolicy, sandbox: dict[str, Any], store: ProfileStore | None = None) -> dict[str, Any]:
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
